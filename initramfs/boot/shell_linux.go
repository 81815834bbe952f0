package boot

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"time"
)

// RescueShell keeps a shell on the console until ctx ends, restarting it
// when it exits: what PID 1 offers after a fatal error instead of a
// kernel panic. Without a shell in the ramdisk (built without debug
// commands) it says so and waits.
func RescueShell(ctx context.Context, why error) {
	fmt.Fprintf(os.Stderr, "goipa init: %v\n", why)
	shell := "/bin/sh"
	if _, err := os.Stat(shell); err != nil {
		fmt.Fprintln(os.Stderr, "goipa init: no shell in this ramdisk (build it with debug commands for one); waiting")
		<-ctx.Done()
		return
	}
	for ctx.Err() == nil {
		fmt.Fprintln(os.Stderr, "goipa init: starting a rescue shell on the console")
		cmd := exec.CommandContext(ctx, shell)
		// A serial console may not answer the line editor's colour and
		// cursor queries; a plain terminal type keeps it from asking.
		cmd.Env = append(os.Environ(), "TERM=dumb")
		if tty, err := os.OpenFile("/dev/console", os.O_RDWR, 0); err == nil {
			cmd.Stdin, cmd.Stdout, cmd.Stderr = tty, tty, tty
			// A session of its own with the console as controlling tty,
			// so Ctrl-C reaches the shell's children.
			cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
			err = cmd.Run()
			tty.Close()
			if err != nil {
				fmt.Fprintln(os.Stderr, "goipa init: shell ended:", err)
			}
		} else {
			fmt.Fprintln(os.Stderr, "goipa init: no console:", err)
			<-ctx.Done()
			return
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}
