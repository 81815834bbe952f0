package boot

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// mount is one kernel file system PID 1 must provide.
type mount struct {
	source, target, fstype string
	flags                  uintptr
	data                   string
}

var kernelMounts = []mount{
	{"proc", "/proc", "proc", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC, ""},
	{"sysfs", "/sys", "sysfs", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC, ""},
	{"devtmpfs", "/dev", "devtmpfs", unix.MS_NOSUID, "mode=0755"},
	{"devpts", "/dev/pts", "devpts", unix.MS_NOSUID | unix.MS_NOEXEC, "gid=5,mode=620,ptmxmode=666"},
	{"tmpfs", "/run", "tmpfs", unix.MS_NOSUID | unix.MS_NODEV, "mode=0755"},
	{"tmpfs", "/tmp", "tmpfs", unix.MS_NOSUID | unix.MS_NODEV, "mode=1777"},
}

// MountKernelFilesystems mounts /proc, /sys, /dev, /run and /tmp,
// skipping what is already mounted. A mount
// that fails is reported, but the others are still tried: a ramdisk that
// boots half-way is easier to debug than one that stops.
func MountKernelFilesystems() error {
	var errs []error
	for _, m := range kernelMounts {
		if err := os.MkdirAll(m.target, 0o755); err != nil {
			errs = append(errs, err)
			continue
		}
		err := unix.Mount(m.source, m.target, m.fstype, m.flags, m.data)
		if err != nil && !errors.Is(err, unix.EBUSY) {
			errs = append(errs, fmt.Errorf("mount %s on %s: %w", m.fstype, m.target, err))
		}
	}
	return errors.Join(errs...)
}

// MountEFIVars mounts efivarfs on a UEFI-booted machine, loading its
// module first where the kernel has it as one (Debian's do): the agent
// writes boot entries there. A BIOS boot has nothing to mount.
func MountEFIVars() error {
	if _, err := os.Stat("/sys/firmware/efi"); err != nil {
		return nil
	}
	const target = "/sys/firmware/efi/efivars"
	if b, err := os.ReadFile("/proc/self/mounts"); err == nil && strings.Contains(string(b), " "+target+" efivarfs ") {
		return nil
	}
	loadErr := LoadModules("efivarfs")
	if err := unix.Mount("efivarfs", target, "efivarfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		return fmt.Errorf("mount efivarfs on %s: %w (module: %v)", target, err, loadErr)
	}
	return nil
}
