package disk

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"
)

// metadataSpan is how much is zeroed at each end of the device and of
// each partition. One MiB covers every signature a later boot or udev
// could pick up at the start (MBR, GPT, LVM label, md 1.1/1.2, bcache,
// ext*, xfs, btrfs's 64 KiB superblock, ISO9660, vfat) and at the end
// (backup GPT, md 0.90/1.0).
const metadataSpan = 1 << 20

// DeviceSize returns a block device's (or a file's) size in bytes.
func DeviceSize(f *os.File) (int64, error) {
	st, err := f.Stat()
	if err != nil {
		return 0, err
	}
	if st.Mode().IsRegular() {
		return st.Size(), nil
	}
	var n uint64
	if _, _, errno := unix.Syscall(unix.SYS_IOCTL, f.Fd(), unix.BLKGETSIZE64, uintptr(unsafe.Pointer(&n))); errno != 0 {
		return 0, fmt.Errorf("BLKGETSIZE64: %w", errno)
	}
	return int64(n), nil
}

// MetadataExtents lists what WipeMetadata zeroes on a device of size
// bytes carrying table: both ends of the device and of each partition.
func MetadataExtents(size int64, table Table) []Extent {
	var out []Extent
	add := func(start, length int64) {
		end := start + length
		if start < 0 {
			start = 0
		}
		if end > size {
			end = size
		}
		if end > start {
			out = append(out, Extent{Start: start, Length: end - start})
		}
	}
	span := func(start, length int64) {
		n := min(int64(metadataSpan), length)
		add(start, n)
		add(start+length-n, n)
	}
	span(0, size)
	for _, p := range table.Partitions {
		if p.Start >= size || p.Size <= 0 {
			continue
		}
		span(p.Start, min(p.Size, size-p.Start))
	}
	return out
}

// WipeMetadata removes every partition table and signature a later boot
// could pick up (erase_devices_metadata), then makes the kernel re-read
// the now empty table. It refuses a device in use.
func WipeMetadata(ctx context.Context, dev string) error {
	if err := CheckSafe(ctx, dev); err != nil {
		return err
	}
	// A multipath map's partition devices hold it; they describe the
	// table about to go.
	if err := ReleaseMapPartitions(dev); err != nil {
		return err
	}
	// O_EXCL on a block device fails while the kernel uses it (mounted,
	// an md or dm member): a second guard after CheckSafe.
	f, err := os.OpenFile(dev, os.O_RDWR|unix.O_EXCL|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("opening %s: %w", dev, err)
	}
	defer f.Close()
	size, err := DeviceSize(f)
	if err != nil {
		return fmt.Errorf("%s: %w", dev, err)
	}
	sector := 512
	if n, err := unix.IoctlGetInt(int(f.Fd()), unix.BLKSSZGET); err == nil && n > 0 {
		sector = n
	}
	head := make([]byte, min(int64(34*sector+128*128), size))
	if _, err := f.ReadAt(head, 0); err != nil {
		return fmt.Errorf("reading the partition table of %s: %w", dev, err)
	}
	// A damaged table still gets the device's ends wiped.
	table, _ := ParseTable(head, sector)
	zeros := make([]byte, metadataSpan)
	for _, e := range MetadataExtents(size, table) {
		if err := ctx.Err(); err != nil {
			return err
		}
		if _, err := f.WriteAt(zeros[:e.Length], e.Start); err != nil {
			return fmt.Errorf("wiping %s at %d: %w", dev, e.Start, err)
		}
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("syncing %s: %w", dev, err)
	}
	if err := rereadPartitions(f); err != nil {
		return fmt.Errorf("%s: %w", dev, err)
	}
	// Some kernels (loop devices in containers among them) keep the old
	// partitions after the re-read: the table is empty now, so any that
	// is left is stale and goes.
	return dropPartitions(f, dev)
}

// dropPartitions deletes the kernel's partitions of dev (BLKPG).
func dropPartitions(f *os.File, dev string) error {
	kname, _, err := members(dev)
	if err != nil {
		return nil
	}
	entries, _ := os.ReadDir(filepath.Join("/sys/class/block", kname))
	var errs []error
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join("/sys/class/block", kname, e.Name(), "partition"))
		if err != nil {
			continue
		}
		pno, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil {
			continue
		}
		part := unix.BlkpgPartition{Pno: int32(pno)}
		arg := unix.BlkpgIoctlArg{Op: unix.BLKPG_DEL_PARTITION, Datalen: int32(unsafe.Sizeof(part)), Data: (*byte)(unsafe.Pointer(&part))}
		if _, _, errno := unix.Syscall(unix.SYS_IOCTL, f.Fd(), unix.BLKPG, uintptr(unsafe.Pointer(&arg))); errno != 0 {
			errs = append(errs, fmt.Errorf("removing stale partition %s: %w", e.Name(), errno))
		}
	}
	return errors.Join(errs...)
}

// rereadPartitions asks the kernel to re-read the partition table. A
// device without partition support (a loop device made without -P) has
// nothing to re-read.
func rereadPartitions(f *os.File) error {
	st, err := f.Stat()
	if err != nil || st.Mode().IsRegular() {
		return err
	}
	err = unix.IoctlSetInt(int(f.Fd()), unix.BLKRRPART, 0)
	if err == nil || errors.Is(err, unix.EINVAL) {
		return nil
	}
	return fmt.Errorf("BLKRRPART: %w", err)
}

// ZeroRange makes [off, off+n) read as zeros: BLKZEROOUT on a block
// device (the kernel uses the device's write-zeroes or unmap-with-zeroes,
// or writes zeros itself), zero writes otherwise.
func ZeroRange(f *os.File, off, n int64) error {
	if off%512 == 0 && n%512 == 0 {
		r := [2]uint64{uint64(off), uint64(n)}
		_, _, errno := unix.Syscall(unix.SYS_IOCTL, f.Fd(), unix.BLKZEROOUT, uintptr(unsafe.Pointer(&r)))
		if errno == 0 {
			return nil
		}
	}
	z := make([]byte, min(n, 4<<20))
	for n > 0 {
		k := min(n, int64(len(z)))
		if _, err := f.WriteAt(z[:k], off); err != nil {
			return err
		}
		off, n = off+k, n-k
	}
	return nil
}
