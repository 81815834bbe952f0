package disk

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"
	"unsafe"

	"github.com/diskfs/go-diskfs/backend/file"
	"github.com/diskfs/go-diskfs/filesystem/fat32"
	"github.com/diskfs/go-diskfs/partition/gpt"
	"github.com/diskfs/go-diskfs/partition/mbr"
	"golang.org/x/sys/unix"
)

// PartitionLayout is the disk a partition image gets (IPA's
// make_partitions): sizes in MiB, 0 for an absent partition.
type PartitionLayout struct {
	Label          string // "gpt" or "msdos"
	UEFI           bool   // an EFI system partition first
	ESPMiB         int
	EphemeralMiB   int
	SwapMiB        int
	ConfigDriveMiB int
	RootMiB        int
}

// PartitionRole names what a partition of a partition-image disk holds.
type PartitionRole string

// The roles, with IPA's names (get_partition_uuids' "partitions" keys).
const (
	RoleESP         PartitionRole = "efi system partition"
	RoleBIOSBoot    PartitionRole = "BIOS Boot partition"
	RoleEphemeral   PartitionRole = "ephemeral"
	RoleSwap        PartitionRole = "swap"
	RoleConfigDrive PartitionRole = "configdrive"
	RoleRoot        PartitionRole = "root"
)

// GPT partition types.
const (
	typeLinuxFS   = "0FC63DAF-8483-4772-8E79-3D69D8477DE4"
	typeLinuxSwap = "0657FD6D-A4AB-43C4-84E5-0933C84B4F4F"
)

type plannedPart struct {
	role    PartitionRole
	mib     int
	gptType gpt.Type
	mbrType mbr.Type
}

// Plan returns the partitions in IPA's order (ESP, BIOS boot, ephemeral,
// swap, config drive, root last), or an error when they cannot fit.
func (l PartitionLayout) plan(diskBytes int64) ([]plannedPart, error) {
	if l.Label != "gpt" && l.Label != "msdos" {
		return nil, fmt.Errorf("disk label %q: want gpt or msdos", l.Label)
	}
	if l.RootMiB <= 0 {
		return nil, errors.New("root_mb must be positive")
	}
	var p []plannedPart
	if l.UEFI {
		p = append(p, plannedPart{RoleESP, l.ESPMiB, gpt.EFISystemPartition, mbr.EFISystem})
	} else if l.Label == "gpt" {
		p = append(p, plannedPart{RoleBIOSBoot, 1, gpt.BIOSBoot, 0})
	}
	if l.EphemeralMiB > 0 {
		p = append(p, plannedPart{RoleEphemeral, l.EphemeralMiB, typeLinuxFS, mbr.Linux})
	}
	if l.SwapMiB > 0 {
		p = append(p, plannedPart{RoleSwap, l.SwapMiB, typeLinuxSwap, mbr.LinuxSwap})
	}
	if l.ConfigDriveMiB > 0 {
		p = append(p, plannedPart{RoleConfigDrive, l.ConfigDriveMiB, typeLinuxFS, mbr.Linux})
	}
	p = append(p, plannedPart{RoleRoot, l.RootMiB, typeLinuxFS, mbr.Linux})
	if l.Label == "msdos" && len(p) > 4 {
		return nil, fmt.Errorf("%d partitions do not fit an MBR's four primaries; use a GPT (disk_label gpt)", len(p))
	}
	need := int64(1) // the first MiB holds the table
	for _, x := range p {
		need += int64(x.mib)
	}
	if l.Label == "gpt" {
		need++ // the backup table
	}
	if need<<20 > diskBytes {
		return nil, fmt.Errorf("the partitions need %d MiB (root_mb %d), more than the disk's %d MiB", need, l.RootMiB, diskBytes>>20)
	}
	return p, nil
}

// MakePartitions writes a fresh partition table for a partition image
// onto dev, formats the ESP (FAT32, label efi-part) and swap (label
// swap1) in Go, and returns each role's partition. Whatever dev held is
// gone: the caller wiped its metadata first.
func MakePartitions(ctx context.Context, dev string, l PartitionLayout) (map[PartitionRole]Partition, error) {
	parts, err := makePartitions(ctx, dev, l)
	if err != nil {
		return nil, err
	}
	// A map's partition devices claim it: made once it is closed.
	if err := SyncMapPartitions(ctx, dev); err != nil {
		return nil, err
	}
	return parts, nil
}

func makePartitions(ctx context.Context, dev string, l PartitionLayout) (map[PartitionRole]Partition, error) {
	if err := CheckSafe(ctx, dev); err != nil {
		return nil, err
	}
	if err := ReleaseMapPartitions(dev); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(dev, os.O_RDWR|unix.O_EXCL|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("opening %s: %w", dev, err)
	}
	defer f.Close()
	size, err := DeviceSize(f)
	if err != nil {
		return nil, err
	}
	sector := 512
	if n, err := unix.IoctlGetInt(int(f.Fd()), unix.BLKSSZGET); err == nil && n > 0 {
		sector = n
	}
	plan, err := l.plan(size)
	if err != nil {
		return nil, err
	}
	perMiB := uint64(1<<20) / uint64(sector)
	start := perMiB // 1 MiB aligned, as parted -a optimal
	out := map[PartitionRole]Partition{}
	b := file.New(f, false)
	w, err := b.Writable()
	if err != nil {
		return nil, err
	}
	if l.Label == "gpt" {
		t := &gpt.Table{LogicalSectorSize: sector, PhysicalSectorSize: sector, ProtectiveMBR: true}
		for i, x := range plan {
			n := uint64(x.mib) * perMiB
			t.Partitions = append(t.Partitions, &gpt.Partition{Index: i + 1, Start: start, End: start + n - 1, Size: n * uint64(sector), Type: x.gptType, Name: "primary"})
			start += n
		}
		if err := t.Write(w, size); err != nil {
			return nil, fmt.Errorf("writing the GPT on %s: %w", dev, err)
		}
	} else {
		t := &mbr.Table{LogicalSectorSize: sector, PhysicalSectorSize: sector}
		for i, x := range plan {
			n := uint64(x.mib) * perMiB
			t.Partitions = append(t.Partitions, &mbr.Partition{Index: i + 1, Start: uint32(start), Size: uint32(n), Type: x.mbrType,
				Bootable: x.role == RoleRoot && !l.UEFI})
			start += n
		}
		if err := t.Write(w, size); err != nil {
			return nil, fmt.Errorf("writing the MBR on %s: %w", dev, err)
		}
	}
	if err := f.Sync(); err != nil {
		return nil, err
	}
	table, err := ReadTable(dev)
	if err != nil {
		return nil, err
	}
	if len(table.Partitions) != len(plan) {
		return nil, fmt.Errorf("%s: wrote %d partitions, read back %d", dev, len(plan), len(table.Partitions))
	}
	for i, x := range plan {
		out[x.role] = table.Partitions[i]
	}
	if p, ok := out[RoleESP]; ok {
		if _, err := fat32.Create(b, p.Size, p.Start, int64(sector), "efi-part", false); err != nil {
			return nil, fmt.Errorf("formatting the EFI system partition: %w", err)
		}
	}
	if p, ok := out[RoleSwap]; ok {
		if err := writeSwapHeader(f, p, "swap1"); err != nil {
			return nil, err
		}
	}
	if err := f.Sync(); err != nil {
		return nil, err
	}
	if err := rereadPartitions(f); err != nil {
		return nil, err
	}
	if err := ensurePartitionNodes(f, dev, table); err != nil {
		return nil, err
	}
	return out, nil
}

// ensurePartitionNodes adds (BLKPG, as partx --add does) the partitions
// the kernel did not make when re-reading the table: kernels built
// without a GPT or MBR parser, and loop devices without partition scan.
func ensurePartitionNodes(f *os.File, dev string, t Table) error {
	if _, ok := multipathMapAt("/sys", dev); ok {
		return nil // SyncMapPartitions makes a map's, once it is closed
	}
	var errs []error
	for _, p := range t.Partitions {
		path := partitionPath(dev, p.Number)
		if _, err := os.Stat("/sys/class/block/" + filepath.Base(path)); err == nil {
			continue
		}
		part := unix.BlkpgPartition{Start: p.Start, Length: p.Size, Pno: int32(p.Number)}
		arg := unix.BlkpgIoctlArg{Op: unix.BLKPG_ADD_PARTITION, Datalen: int32(unsafe.Sizeof(part)), Data: (*byte)(unsafe.Pointer(&part))}
		if _, _, errno := unix.Syscall(unix.SYS_IOCTL, f.Fd(), unix.BLKPG, uintptr(unsafe.Pointer(&arg))); errno != 0 && errno != unix.EBUSY {
			errs = append(errs, fmt.Errorf("adding partition %d of %s: %w", p.Number, dev, errno))
		}
	}
	return errors.Join(errs...)
}

// writeSwapHeader makes p a Linux swap area (mkswap's version-1 header
// in the first 4 KiB page), with a random UUID.
func writeSwapHeader(f *os.File, p Partition, label string) error {
	const page = 4096
	pages := p.Size / page
	if pages < 10 {
		return fmt.Errorf("swap partition of %d bytes is too small", p.Size)
	}
	h := make([]byte, page)
	binary.LittleEndian.PutUint32(h[1024:], 1)               // version
	binary.LittleEndian.PutUint32(h[1028:], uint32(pages-1)) // last page
	binary.LittleEndian.PutUint32(h[1032:], 0)               // bad pages
	if _, err := rand.Read(h[1036:1052]); err != nil {       // UUID
		return err
	}
	h[1036+6] = h[1036+6]&0x0f | 0x40 // version 4
	h[1036+8] = h[1036+8]&0x3f | 0x80 // RFC 4122 variant
	copy(h[1052:1068], label)
	copy(h[page-10:], "SWAPSPACE2")
	if _, err := f.WriteAt(h, p.Start); err != nil {
		return fmt.Errorf("writing the swap header: %w", err)
	}
	return nil
}

// MakeFilesystem formats a partition with the ramdisk's mkfs.<fstype>,
// as IPA does for the ephemeral partition; goipa's ramdisk carries none,
// so that fails with an error naming the missing tool.
func MakeFilesystem(ctx context.Context, part, fstype, label string) error {
	tool, err := exec.LookPath("mkfs." + fstype)
	if err != nil {
		return fmt.Errorf("making the %s filesystem on %s needs mkfs.%s, which this system lacks", fstype, part, fstype)
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	args := []string{"-L", label, part}
	if fstype == "ext4" || fstype == "ext3" || fstype == "ext2" {
		args = append([]string{"-F", "-q"}, args...)
	}
	if out, err := exec.CommandContext(ctx, tool, args...).CombinedOutput(); err != nil {
		return fmt.Errorf("mkfs.%s %s: %v: %s", fstype, part, err, out)
	}
	return nil
}

// WaitForPartition waits (bounded) for a partition's device node, which
// the kernel makes a moment after the table is re-read.
func WaitForPartition(ctx context.Context, path string) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := os.Stat(path); err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not appear within 10 s of re-reading the partition table", path)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// EnsurePartitionNodes makes sure the kernel shows every partition of
// dev's table (BLKPG for those it did not add itself).
func EnsurePartitionNodes(ctx context.Context, dev string) error {
	t, err := ReadTable(dev)
	if err != nil {
		return err
	}
	if _, ok := multipathMapAt("/sys", dev); ok {
		// A map's partitions are device-mapper devices goipa makes
		// (kpartx -u): remade when one of the table's is missing, as
		// after a whole-disk image was written onto the map.
		for _, p := range t.Partitions {
			if _, err := os.Stat(partitionPath(dev, p.Number)); err != nil && !isExtendedContainer(p) {
				return SyncMapPartitions(ctx, dev)
			}
		}
		return nil
	}
	f, err := os.Open(dev)
	if err != nil {
		return err
	}
	defer f.Close()
	return ensurePartitionNodes(f, dev, t)
}
