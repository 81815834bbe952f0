package mdraid

import (
	"context"
	"fmt"
	"os"

	"github.com/diskfs/go-diskfs/backend/file"
	"github.com/diskfs/go-diskfs/partition/gpt"
	"github.com/diskfs/go-diskfs/partition/mbr"
	"golang.org/x/sys/unix"

	"github.com/goipa/goipa/disk"
)

// WriteTable writes a fresh partition table holding spans onto a holder
// disk, as IPA's parted mklabel and mkpart calls leave it (GPT entries
// named "primary" of type Linux filesystem; MBR type 0x83), and makes
// the kernel show the partitions. The caller checked the disk is free.
func WriteTable(ctx context.Context, dev, label string, spans []Span) error {
	if err := disk.CheckSafe(ctx, dev); err != nil {
		return err
	}
	f, err := os.OpenFile(dev, os.O_RDWR|unix.O_EXCL|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("opening %s: %w", dev, err)
	}
	size, err := disk.DeviceSize(f)
	if err != nil {
		f.Close()
		return err
	}
	sector := int64(512)
	if n, err := unix.IoctlGetInt(int(f.Fd()), unix.BLKSSZGET); err == nil && n > 0 {
		sector = int64(n)
	}
	w, err := file.New(f, false).Writable()
	if err != nil {
		f.Close()
		return err
	}
	if label == "gpt" {
		t := &gpt.Table{LogicalSectorSize: int(sector), PhysicalSectorSize: int(sector), ProtectiveMBR: true}
		for _, s := range spans {
			t.Partitions = append(t.Partitions, &gpt.Partition{Index: s.Number, Start: uint64(s.Start / sector), End: uint64(s.End/sector - 1),
				Size: uint64(s.End - s.Start), Type: gpt.LinuxFilesystem, Name: "primary"})
		}
		err = t.Write(w, size)
	} else {
		t := &mbr.Table{LogicalSectorSize: int(sector), PhysicalSectorSize: int(sector)}
		for _, s := range spans {
			t.Partitions = append(t.Partitions, &mbr.Partition{Index: s.Number, Start: uint32(s.Start / sector), Size: uint32((s.End - s.Start) / sector), Type: mbr.Linux})
		}
		err = t.Write(w, size)
	}
	if err != nil {
		f.Close()
		return fmt.Errorf("writing the %s table on %s: %w", label, dev, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	// Re-read so the kernel drops stale partitions; kernels (or loop
	// devices) that parse no tables get theirs through BLKPG below.
	unix.IoctlSetInt(int(f.Fd()), unix.BLKRRPART, 0)
	f.Close()
	if err := disk.EnsurePartitionNodes(ctx, dev); err != nil {
		return err
	}
	for _, s := range spans {
		if err := disk.WaitForPartition(ctx, disk.PartitionPath(dev, s.Number)); err != nil {
			return err
		}
	}
	return nil
}

// AddPartition adds one partition to a holder's existing GPT, keeping
// the others (and their GUIDs) as they are, as IPA's `sgdisk -n` does
// for the ESPs it adds beside RAID partitions; the kernel gets the new
// partition through BLKPG even while the others are busy (md members).
// It returns the table as written.
func AddPartition(ctx context.Context, dev string, s Span, typeGUID, name string) (disk.Table, error) {
	f, err := os.OpenFile(dev, os.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return disk.Table{}, fmt.Errorf("opening %s: %w", dev, err)
	}
	size, err := disk.DeviceSize(f)
	if err != nil {
		f.Close()
		return disk.Table{}, err
	}
	sector := int64(512)
	if n, err := unix.IoctlGetInt(int(f.Fd()), unix.BLKSSZGET); err == nil && n > 0 {
		sector = int64(n)
	}
	b := file.New(f, false)
	t, err := gpt.Read(b, int(sector), int(sector))
	if err != nil {
		f.Close()
		return disk.Table{}, fmt.Errorf("reading the GPT of %s: %w", dev, err)
	}
	var parts []*gpt.Partition
	for _, p := range t.Partitions {
		if p == nil || p.Type == gpt.Unused {
			continue
		}
		if p.Index == s.Number {
			f.Close()
			return disk.Table{}, fmt.Errorf("%s already has a partition %d", dev, s.Number)
		}
		if int64(p.Start)*sector < s.End && s.Start < (int64(p.End)+1)*sector {
			f.Close()
			return disk.Table{}, fmt.Errorf("%s: the new partition overlaps partition %d", dev, p.Index)
		}
		parts = append(parts, p)
	}
	parts = append(parts, &gpt.Partition{Index: s.Number, Start: uint64(s.Start / sector), End: uint64(s.End/sector - 1),
		Size: uint64(s.End - s.Start), Type: gpt.Type(typeGUID), Name: name})
	t.Partitions = parts
	w, err := b.Writable()
	if err == nil {
		err = t.Write(w, size)
	}
	if err == nil {
		err = f.Sync()
	}
	f.Close()
	if err != nil {
		return disk.Table{}, fmt.Errorf("writing the GPT of %s: %w", dev, err)
	}
	if err := disk.EnsurePartitionNodes(ctx, dev); err != nil {
		return disk.Table{}, err
	}
	if err := disk.WaitForPartition(ctx, disk.PartitionPath(dev, s.Number)); err != nil {
		return disk.Table{}, err
	}
	return disk.ReadTable(dev)
}
