package disk

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// sgATA sends ATA commands through SG_IO as ATA PASS-THROUGH (16), which
// libata's SATL (and SAS HBAs' SATLs) translate for SATA drives.
type sgATA struct{ f *os.File }

func (s sgATA) ata(ctx context.Context, c ATACommand, data []byte, timeout time.Duration) error {
	dir := sgNone
	switch c.Protocol {
	case ATAProtoPIOIn:
		dir = sgFromDev
	case ATAProtoPIOOut:
		dir = sgToDev
	}
	if len(data) != 512*c.Sectors {
		return fmt.Errorf("ATA command 0x%02x moves %d blocks, got %d bytes", c.Command, c.Sectors, len(data))
	}
	_, err := sgCommand(ctx, s.f, c.PassThrough16(), dir, data, timeout)
	return err
}

// ATASecureErase runs IPA's ATA security erase on dev (see
// ataSecureErase) and returns the method's report name. A device that
// does not answer ATA PASS-THROUGH (NVMe, virtio, loop) or lacks the
// Security feature set gives ErrATASecurityUnsupported; a frozen one an
// *ATAFrozenError.
func ATASecureErase(ctx context.Context, dev string, log *slog.Logger) (string, error) {
	if log == nil {
		log = slog.Default()
	}
	if err := CheckSafe(ctx, dev); err != nil {
		return "", err
	}
	f, err := os.OpenFile(dev, os.O_RDWR|unix.O_EXCL|unix.O_CLOEXEC, 0)
	if err != nil {
		return "", fmt.Errorf("opening %s: %w", dev, err)
	}
	defer f.Close()
	method, err := ataSecureErase(ctx, sgATA{f}, dev, log)
	if err == nil {
		rereadPartitions(f)
	}
	return method, err
}
