package timesync

import (
	"fmt"
	"time"

	"golang.org/x/sys/unix"
)

// Step moves the system clock (CLOCK_REALTIME) by offset. It needs
// CAP_SYS_TIME, and it changes the whole machine's clock: only the
// ramdisk's agent may call it, never an agent on a host.
func Step(offset time.Duration) error {
	ts := unix.NsecToTimespec(time.Now().Add(offset).UnixNano())
	if err := unix.ClockSettime(unix.CLOCK_REALTIME, &ts); err != nil {
		return fmt.Errorf("setting the clock: %w", err)
	}
	return nil
}
