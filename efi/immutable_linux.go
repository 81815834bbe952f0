package efi

import (
	"os"

	"golang.org/x/sys/unix"
)

// clearImmutable drops the immutable flag efivarfs sets on most
// variables, without which writes and deletes fail with EPERM.
func clearImmutable(path string) error {
	f, err := os.OpenFile(path, os.O_RDONLY, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	flags, err := unix.IoctlGetUint32(int(f.Fd()), unix.FS_IOC_GETFLAGS)
	if err != nil {
		return nil // not a filesystem with flags (a test directory on tmpfs)
	}
	if flags&fsImmutableFL == 0 {
		return nil
	}
	return unix.IoctlSetPointerInt(int(f.Fd()), unix.FS_IOC_SETFLAGS, int(flags&^fsImmutableFL))
}

// fsImmutableFL is FS_IMMUTABLE_FL from linux/fs.h.
const fsImmutableFL = 0x00000010
