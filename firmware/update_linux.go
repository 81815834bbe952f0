package firmware

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

func systemDevices() (func(root, name string) (NVMeDevice, error), Devlink) {
	return openNVMe, netlinkDevlink{}
}

// firmwareClassPath is the kernel's extra firmware search directory.
const firmwareClassPath = "/sys/module/firmware_class/parameters/path"

// UseFirmwareDir makes dir a tmpfs (unless it is one already) and the
// kernel's firmware search path, so devlink's flash finds the staged
// images there. It changes the kernel's loader for every driver: only
// the ramdisk calls it.
func UseFirmwareDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return err
	}
	if st.Type != unix.TMPFS_MAGIC {
		if err := unix.Mount("goipa-firmware", dir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "mode=0700"); err != nil {
			return fmt.Errorf("mounting a tmpfs on %s: %w", dir, err)
		}
	}
	if err := os.WriteFile(firmwareClassPath, []byte(dir), 0); err != nil {
		return fmt.Errorf("setting the kernel's firmware search path: %w", err)
	}
	return nil
}

var openNVMeDevice = openNVMeReadOnly
