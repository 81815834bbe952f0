package disk

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"strings"
	"unicode/utf16"

	"golang.org/x/sys/unix"
)

// ConfigDriveSize is the partition IPA makes for a whole-disk image's
// config drive: the last 64 MiB of the disk.
const ConfigDriveSize = 64 << 20

// linuxFS is the GPT type IPA's sgdisk call gives the config drive.
var linuxFS = guidBytes("0FC63DAF-8483-4772-8E79-3D69D8477DE4")

// WriteConfigDrive puts iso (a config-2 ISO9660 or vfat image) into a
// partition at the end of dev, which already holds a whole-disk image,
// as IPA does: an existing config-2 partition is reused; otherwise a GPT
// disk gets a new entry (and its backup table moved to the real end of
// the disk), an MBR disk a new primary partition. It returns the
// partition's path.
func WriteConfigDrive(ctx context.Context, dev string, iso []byte) (string, error) {
	path, err := writeConfigDrive(ctx, dev, iso)
	if err != nil {
		return "", err
	}
	// A map's partition devices claim it: made once it is closed.
	if err := SyncMapPartitions(ctx, dev); err != nil {
		return "", err
	}
	return path, nil
}

func writeConfigDrive(ctx context.Context, dev string, iso []byte) (string, error) {
	if len(iso) > ConfigDriveSize {
		return "", fmt.Errorf("config drive is %d bytes, more than %d MiB", len(iso), ConfigDriveSize>>20)
	}
	if err := CheckSafe(ctx, dev); err != nil {
		return "", err
	}
	if err := ReleaseMapPartitions(dev); err != nil {
		return "", err
	}
	f, err := os.OpenFile(dev, os.O_RDWR|unix.O_EXCL|unix.O_CLOEXEC, 0)
	if err != nil {
		return "", fmt.Errorf("opening %s: %w", dev, err)
	}
	defer f.Close()
	size, err := DeviceSize(f)
	if err != nil {
		return "", err
	}
	const sector = 512
	if n, err := unix.IoctlGetInt(int(f.Fd()), unix.BLKSSZGET); err == nil && n != sector {
		return "", fmt.Errorf("%s has %d-byte sectors; goipa writes config drives on 512-byte-sector disks only", dev, n)
	}
	head := make([]byte, 34*sector)
	if _, err := f.ReadAt(head, 0); err != nil {
		return "", fmt.Errorf("reading the partition table of %s: %w", dev, err)
	}
	table, err := ParseTable(head, sector)
	if err != nil {
		return "", fmt.Errorf("partition table of %s: %w", dev, err)
	}
	var part Partition
	var found []Partition
	for _, p := range table.Partitions {
		if isConfigDrive(f, p) {
			found = append(found, p)
		}
	}
	switch {
	case len(found) > 1:
		return "", fmt.Errorf("%s has %d config-2 partitions; IPA refuses too", dev, len(found))
	case len(found) == 1:
		part = found[0]
		if part.Size < int64(len(iso)) {
			return "", fmt.Errorf("the image's config-2 partition (%d bytes) is smaller than the config drive (%d bytes)", part.Size, len(iso))
		}
	case table.Kind == "gpt":
		if part, err = addGPTPartition(f, head, size, sector); err != nil {
			return "", fmt.Errorf("%s: %w", dev, err)
		}
	case table.Kind == "mbr":
		if part, err = addMBRPartition(f, head, table, size, sector); err != nil {
			return "", fmt.Errorf("%s: %w", dev, err)
		}
	default:
		return "", fmt.Errorf("%s has no partition table after the image was written; cannot add a config drive", dev)
	}
	if _, err := f.WriteAt(iso, part.Start); err != nil {
		return "", fmt.Errorf("writing the config drive to %s: %w", dev, err)
	}
	// Zero the rest of the partition so nothing stale follows the ISO.
	if rest := min(part.Size, ConfigDriveSize) - int64(len(iso)); rest > 0 {
		if err := ZeroRange(f, part.Start+int64(len(iso)), rest); err != nil {
			return "", err
		}
	}
	if err := f.Sync(); err != nil {
		return "", err
	}
	if err := rereadPartitions(f); err != nil {
		return "", err
	}
	return partitionPath(dev, part.Number), nil
}

// partitionPath is the kernel's name for partition n of dev, or for a
// multipath map the /dev/mapper link of its partition device.
func partitionPath(dev string, n int) string {
	if p, ok := mapPartitionPath("/sys", dev, n); ok {
		return p
	}
	if last := dev[len(dev)-1]; last >= '0' && last <= '9' {
		return fmt.Sprintf("%sp%d", dev, n)
	}
	return fmt.Sprintf("%s%d", dev, n)
}

// isConfigDrive reports whether partition p carries a filesystem
// labelled config-2 (ISO9660 volume id or vfat label).
func isConfigDrive(f *os.File, p Partition) bool {
	buf := make([]byte, 72)
	if _, err := f.ReadAt(buf, p.Start+32768); err == nil && string(buf[1:6]) == "CD001" {
		if strings.EqualFold(strings.TrimSpace(string(buf[40:72])), "config-2") {
			return true
		}
	}
	if _, err := f.ReadAt(buf[:11], p.Start+71); err == nil && strings.EqualFold(strings.TrimSpace(string(buf[:11])), "config-2") {
		return true // FAT32 volume label
	}
	return false
}

func guidBytes(s string) [16]byte {
	var g [16]byte
	h := strings.ReplaceAll(s, "-", "")
	var raw [16]byte
	for i := 0; i < 16; i++ {
		fmt.Sscanf(h[2*i:2*i+2], "%02x", &raw[i])
	}
	binary.LittleEndian.PutUint32(g[0:4], binary.BigEndian.Uint32(raw[0:4]))
	binary.LittleEndian.PutUint16(g[4:6], binary.BigEndian.Uint16(raw[4:6]))
	binary.LittleEndian.PutUint16(g[6:8], binary.BigEndian.Uint16(raw[6:8]))
	copy(g[8:], raw[8:])
	return g
}

// addGPTPartition adds the config drive as a new GPT entry in the last
// 64 MiB and rewrites both tables for the disk's real size (an image is
// usually smaller than the disk: its backup table is not at the end).
func addGPTPartition(f *os.File, head []byte, size int64, sector int64) (Partition, error) {
	hdr := append([]byte(nil), head[sector:2*sector]...)
	entLBA := int64(binary.LittleEndian.Uint64(hdr[72:80]))
	count := int64(binary.LittleEndian.Uint32(hdr[80:84]))
	esize := int64(binary.LittleEndian.Uint32(hdr[84:88]))
	hsize := int64(binary.LittleEndian.Uint32(hdr[12:16]))
	if esize != 128 || count*esize > 64<<10 || hsize < 92 || hsize > sector {
		return Partition{}, fmt.Errorf("unusual GPT (%d entries of %d bytes)", count, esize)
	}
	entries := make([]byte, count*esize)
	if _, err := f.ReadAt(entries, entLBA*sector); err != nil {
		return Partition{}, err
	}
	total := size / sector
	arraySectors := (count*esize + sector - 1) / sector
	lastUsable := total - 1 - arraySectors - 1
	end := lastUsable
	start := (end + 1 - ConfigDriveSize/sector) / 2048 * 2048 // 1 MiB aligned, as sgdisk does
	slot := int64(-1)
	var maxEnd int64
	for i := int64(0); i < count; i++ {
		e := entries[i*esize : (i+1)*esize]
		if allZero(e[:16]) {
			if slot < 0 {
				slot = i
			}
			continue
		}
		maxEnd = max(maxEnd, int64(binary.LittleEndian.Uint64(e[40:48])))
	}
	if slot < 0 {
		return Partition{}, errors.New("no free GPT entry for the config drive")
	}
	if maxEnd >= start {
		return Partition{}, fmt.Errorf("no room for a %d MiB config drive after the image's last partition (ends at sector %d)", ConfigDriveSize>>20, maxEnd)
	}
	e := entries[slot*esize : (slot+1)*esize]
	copy(e[0:16], linuxFS[:])
	if _, err := rand.Read(e[16:32]); err != nil {
		return Partition{}, err
	}
	e[16+7] = e[16+7]&0x0f | 0x40 // version 4 GUID (mixed-endian time_hi)
	e[16+8] = e[16+8]&0x3f | 0x80
	binary.LittleEndian.PutUint64(e[32:40], uint64(start))
	binary.LittleEndian.PutUint64(e[40:48], uint64(end))
	name := utf16.Encode([]rune("config-2"))
	for i, c := range name {
		binary.LittleEndian.PutUint16(e[56+2*i:], c)
	}
	entCRC := crc32.ChecksumIEEE(entries)

	write := func(my, alt, ents int64) error {
		h := append([]byte(nil), hdr[:hsize]...)
		binary.LittleEndian.PutUint64(h[24:32], uint64(my))
		binary.LittleEndian.PutUint64(h[32:40], uint64(alt))
		binary.LittleEndian.PutUint64(h[48:56], uint64(lastUsable))
		binary.LittleEndian.PutUint64(h[72:80], uint64(ents))
		binary.LittleEndian.PutUint32(h[88:92], entCRC)
		binary.LittleEndian.PutUint32(h[16:20], 0)
		binary.LittleEndian.PutUint32(h[16:20], crc32.ChecksumIEEE(h))
		blk := make([]byte, sector)
		copy(blk, h)
		if _, err := f.WriteAt(entries, ents*sector); err != nil {
			return err
		}
		_, err := f.WriteAt(blk, my*sector)
		return err
	}
	// Backup first: a crash in between leaves the primary as it was.
	if err := write(total-1, 1, total-1-arraySectors); err != nil {
		return Partition{}, fmt.Errorf("writing the backup GPT: %w", err)
	}
	if err := write(1, total-1, entLBA); err != nil {
		return Partition{}, fmt.Errorf("writing the primary GPT: %w", err)
	}
	// The protective MBR covers the whole disk now.
	mbrSize := uint32(min(total-1, 0xffffffff))
	var b [4]byte
	binary.LittleEndian.PutUint32(b[:], mbrSize)
	for i := 0; i < 4; i++ {
		if head[446+16*i+4] == 0xee {
			if _, err := f.WriteAt(b[:], int64(446+16*i+12)); err != nil {
				return Partition{}, err
			}
		}
	}
	return Partition{Number: int(slot) + 1, Start: start * sector, Size: (end - start + 1) * sector, TypeGUID: "0FC63DAF-8483-4772-8E79-3D69D8477DE4"}, nil
}

// addMBRPartition adds a primary partition over the last 64 MiB (for
// disks over 2 TiB, below the MBR's 2 TiB limit, as IPA does).
func addMBRPartition(f *os.File, head []byte, table Table, size, sector int64) (Partition, error) {
	slot := -1
	for i := 0; i < 4; i++ {
		if head[446+16*i+4] == 0 {
			slot = i
			break
		}
	}
	if slot < 0 {
		return Partition{}, errors.New("all four MBR primary partitions are used; IPA refuses too")
	}
	limit := min(size/sector, int64(0xffffffff))
	start := (limit - ConfigDriveSize/sector) / 2048 * 2048
	n := limit - start
	for _, p := range table.Partitions {
		if p.Start+p.Size > start*sector {
			return Partition{}, errors.New("no room for the config drive after the image's partitions")
		}
	}
	e := make([]byte, 16)
	copy(e[1:4], []byte{0xfe, 0xff, 0xff}) // CHS: use LBA
	e[4] = 0x83
	copy(e[5:8], []byte{0xfe, 0xff, 0xff})
	binary.LittleEndian.PutUint32(e[8:12], uint32(start))
	binary.LittleEndian.PutUint32(e[12:16], uint32(n))
	if _, err := f.WriteAt(e, int64(446+16*slot)); err != nil {
		return Partition{}, err
	}
	if !bytes.Equal(head[510:512], []byte{0x55, 0xaa}) {
		return Partition{}, errors.New("not an MBR")
	}
	return Partition{Number: slot + 1, Start: start * sector, Size: n * sector, MBRType: 0x83}, nil
}
