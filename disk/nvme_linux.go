package disk

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

var nvmeNamespaceName = regexp.MustCompile(`^nvme[0-9]+(c[0-9]+)?n[0-9]+$`)

// nvmeSiblingNamespaces counts the namespaces of the controller behind
// the namespace kname, as sysfs lists them.
func nvmeSiblingNamespaces(kname string) int {
	entries, err := os.ReadDir(filepath.Join("/sys/class/block", kname, "device"))
	if err != nil {
		return 0
	}
	n := 0
	for _, e := range entries {
		if nvmeNamespaceName.MatchString(e.Name()) {
			n++
		}
	}
	return n
}

func nvmeIdentifyController(f *os.File) (NVMeController, error) {
	buf, free, err := alignedBuffer(4096)
	if err != nil {
		return NVMeController{}, err
	}
	defer free()
	cmd := nvmeAdminCmd{Opcode: nvmeIdentify, Addr: uint64(uintptr(unsafe.Pointer(&buf[0]))), DataLen: 4096, Cdw10: 1}
	if err := nvmeAdmin(f, &cmd); err != nil {
		return NVMeController{}, fmt.Errorf("identify controller: %w", err)
	}
	return ParseIdentifyController(buf)
}

func nvmeSanitizeLog(f *os.File) (NVMeSanitizeStatus, error) {
	buf, free, err := alignedBuffer(4096)
	if err != nil {
		return NVMeSanitizeStatus{}, err
	}
	defer free()
	cmd := nvmeAdminCmd{Opcode: nvmeGetLogPage, NSID: nvmeNSIDAll, Addr: uint64(uintptr(unsafe.Pointer(&buf[0]))),
		DataLen: nvmeSanitizeLogSize, Cdw10: GetLogPageCdw10(nvmeLogSanitize, nvmeSanitizeLogSize)}
	if err := nvmeAdmin(f, &cmd); err != nil {
		return NVMeSanitizeStatus{}, fmt.Errorf("get log page 0x81 (sanitize status): %w", err)
	}
	return ParseSanitizeStatus(buf[:nvmeSanitizeLogSize])
}

// NVMeSanitize runs the NVMe Sanitize command on the controller behind
// the namespace dev: the action the controller's SANICAP offers (block
// erase, else crypto erase; sanact picks one, overwrite included), then
// polls the Sanitize Status log until it ends. A sanitize erases every
// namespace of the controller, so goipa refuses (ErrSanitizeUnsupported,
// the caller falls back to Format NVM of the one namespace) when the
// controller shows more than dev. The controller goes on sanitizing
// when ctx is cancelled: goipa stops waiting.
func NVMeSanitize(ctx context.Context, dev string, sanact uint8, log *slog.Logger) (string, error) {
	if log == nil {
		log = slog.Default()
	}
	if err := CheckSafe(ctx, dev); err != nil {
		return "", err
	}
	kname, _, err := members(dev)
	if err != nil {
		return "", err
	}
	f, err := os.OpenFile(dev, os.O_RDONLY|unix.O_EXCL|unix.O_CLOEXEC, 0)
	if err != nil {
		return "", fmt.Errorf("opening %s: %w", dev, err)
	}
	defer f.Close()
	if _, _, errno := unix.Syscall(unix.SYS_IOCTL, f.Fd(), nvmeIoctlID, 0); errno != 0 {
		return "", fmt.Errorf("%w: %s is not an NVMe namespace: %v", ErrSanitizeUnsupported, dev, errno)
	}
	ctrl, err := nvmeIdentifyController(f)
	if err != nil {
		return "", err
	}
	act, method, ok := nvmeSanitizeMethod(ctrl, sanact)
	if !ok {
		return "", fmt.Errorf("%w: %s's controller offers no usable sanitize action (SANICAP crypto %v, block %v, overwrite %v)",
			ErrSanitizeUnsupported, dev, ctrl.SanitizeCrypto, ctrl.SanitizeBlock, ctrl.SanitizeOverwrite)
	}
	if n := nvmeSiblingNamespaces(kname); n != 1 {
		return "", fmt.Errorf("%w: the controller of %s has %d namespaces and a sanitize would erase them all", ErrSanitizeUnsupported, dev, n)
	}
	// An earlier sanitize (a previous cleaning that was cut short) must
	// end before the controller takes another.
	if err := nvmeWaitSanitize(ctx, f, dev, log); err != nil && ctx.Err() != nil {
		return "", err
	}
	log.Info("NVMe sanitize", "device", dev, "method", method)
	cmd := nvmeAdminCmd{Opcode: nvmeSanitize, Cdw10: SanitizeCdw10(act, 1), TimeoutMs: 60 * 1000}
	if err := nvmeAdmin(f, &cmd); err != nil {
		return "", fmt.Errorf("sanitize %s: %w", dev, err)
	}
	if err := nvmeWaitSanitize(ctx, f, dev, log); err != nil {
		return "", err
	}
	rereadPartitions(f)
	return method, nil
}

// nvmeWaitSanitize polls the Sanitize Status log until no sanitize is in
// progress, and reports a failed one.
func nvmeWaitSanitize(ctx context.Context, f *os.File, dev string, log *slog.Logger) error {
	lastLog := time.Now()
	for {
		st, err := nvmeSanitizeLog(f)
		if err != nil {
			return err
		}
		if done, ok := st.Done(); done {
			if !ok && st.Status == NVMeSanitizeFailed {
				return fmt.Errorf("sanitize of %s failed (the controller stays in sanitize failure mode until a sanitize succeeds)", dev)
			}
			return nil
		}
		if time.Since(lastLog) > time.Minute {
			log.Info("NVMe sanitize in progress", "device", dev, "status", st.String())
			lastLog = time.Now()
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for the sanitize of %s (it goes on in the controller): %w", dev, ctx.Err())
		case <-time.After(time.Second):
		}
	}
}
