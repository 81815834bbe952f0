package disk

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// ReadTable reads dev's partition table with the device's logical block
// size.
func ReadTable(dev string) (Table, error) {
	f, err := os.Open(dev)
	if err != nil {
		return Table{}, err
	}
	defer f.Close()
	sector := 512
	if n, err := unix.IoctlGetInt(int(f.Fd()), unix.BLKSSZGET); err == nil && n > 0 {
		sector = n
	}
	size, err := DeviceSize(f)
	if err != nil {
		return Table{}, fmt.Errorf("%s: %w", dev, err)
	}
	head := make([]byte, min(int64(34*sector+128*128), size))
	if _, err := f.ReadAt(head, 0); err != nil {
		return Table{}, fmt.Errorf("reading the partition table of %s: %w", dev, err)
	}
	t, err := ParseTable(head, sector)
	if err != nil {
		return t, fmt.Errorf("partition table of %s: %w", dev, err)
	}
	return t, nil
}

// PartitionPath is the kernel's name for partition n of dev
// (/dev/sda1, /dev/nvme0n1p1, /dev/loop3p1).
func PartitionPath(dev string, n int) string { return partitionPath(dev, n) }
