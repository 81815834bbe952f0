package disk

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// scsiSupports asks the device whether it supports opcode with service
// action sa. A device that cannot answer (no REPORT SUPPORTED OPERATION
// CODES, not a SCSI device) counts as not supporting it.
func scsiSupports(ctx context.Context, f *os.File, opcode uint8, sa uint16) (bool, error) {
	buf := make([]byte, 64)
	if _, err := sgCommand(ctx, f, ReportSupportedOpCDB(opcode, sa, uint32(len(buf))), sgFromDev, buf, 30*time.Second); err != nil {
		return false, err
	}
	return ParseOneCommandSupport(buf)
}

// SCSISanitize runs SANITIZE on a SCSI disk: the first of block erase,
// crypto erase and overwrite that REPORT SUPPORTED OPERATION CODES lists
// (or only sa when it is not zero), with IMMED, then polls REQUEST SENSE
// until the sanitize is over. The device keeps sanitizing when ctx is
// cancelled (SANITIZE cannot be aborted); goipa stops waiting.
func SCSISanitize(ctx context.Context, dev string, sa uint8, log *slog.Logger) (string, error) {
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
	method := ""
	for _, m := range scsiSanitizeMethods {
		if sa != 0 && m.SA != sa {
			continue
		}
		ok, err := scsiSupports(ctx, f, scsiSanitize, uint16(m.SA))
		if err != nil {
			if ctx.Err() != nil {
				return "", ctx.Err()
			}
			return "", fmt.Errorf("%w: %s does not report its SANITIZE support: %v", ErrSanitizeUnsupported, dev, err)
		}
		if ok {
			sa, method = m.SA, m.Name
			break
		}
	}
	if method == "" {
		return "", fmt.Errorf("%w: %s lists no usable SANITIZE service action", ErrSanitizeUnsupported, dev)
	}
	var params []byte
	if sa == SanitizeOverwrite {
		params = SanitizeOverwriteParams(1, make([]byte, 4))
	}
	dir := sgNone
	if len(params) > 0 {
		dir = sgToDev
	}
	log.Info("SCSI sanitize", "device", dev, "method", method)
	if _, err := sgCommand(ctx, f, SanitizeCDB(sa, uint16(len(params))), dir, params, 60*time.Second); err != nil {
		return "", fmt.Errorf("SANITIZE on %s: %w", dev, err)
	}
	if err := scsiWaitSanitize(ctx, f, dev, log); err != nil {
		return "", err
	}
	rereadPartitions(f)
	return method, nil
}

// scsiWaitSanitize polls REQUEST SENSE until the device no longer says
// "sanitize in progress", and fails when it says the sanitize failed.
func scsiWaitSanitize(ctx context.Context, f *os.File, dev string, log *slog.Logger) error {
	lastLog := time.Now()
	for {
		buf := make([]byte, 252)
		if _, err := sgCommand(ctx, f, RequestSenseCDB(uint8(len(buf))), sgFromDev, buf, 30*time.Second); err != nil {
			var sge *SGError
			if !errors.As(err, &sge) {
				return fmt.Errorf("REQUEST SENSE on %s: %w", dev, err)
			}
			buf = sge.Sense
		}
		s, err := ParseSense(buf)
		if err != nil && !isZero(buf) {
			return fmt.Errorf("REQUEST SENSE on %s: %w", dev, err)
		}
		switch {
		case s.SanitizeFailed():
			return fmt.Errorf("SANITIZE on %s failed: %s", dev, s)
		case !s.SanitizeInProgress():
			return nil
		}
		if time.Since(lastLog) > time.Minute {
			log.Info("SCSI sanitize in progress", "device", dev, "sense", s.String())
			lastLog = time.Now()
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for the sanitize of %s (it goes on in the device): %w", dev, ctx.Err())
		case <-time.After(2 * time.Second):
		}
	}
}

func isZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}
