package disk

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Extent is a byte range on a device.
type Extent struct {
	Start, Length int64
}

// Partition is one entry of a partition table.
type Partition struct {
	Number   int
	Start    int64 // bytes
	Size     int64 // bytes
	TypeGUID string
	UUID     string // GPT unique partition GUID, upper case; "" on MBR
	MBRType  byte
	Bootable bool // MBR active flag, or GPT's legacy BIOS bootable attribute
	Name     string
}

// Table is what a device's partition table says.
type Table struct {
	Kind          string // "gpt", "mbr" or "" (none)
	Partitions    []Partition
	SectorSize    int    // the logical block size the table was read with
	DiskSignature uint32 // the MBR's signature at byte 440 (EFI HD nodes on MBR disks use it)
}

const gptSignature = "EFI PART"

// ParseTable reads an MBR or GPT partition table from the first bytes of
// a device (at least 34 sectors for GPT with 128 entries). Entries that
// point past devSize are kept: erasers clip them, and a damaged table
// must not hide the partitions it still names.
func ParseTable(head []byte, sectorSize int) (Table, error) {
	if sectorSize <= 0 {
		return Table{}, errors.New("sector size must be positive")
	}
	if len(head) < 512 {
		return Table{}, errors.New("need at least one sector")
	}
	if head[510] != 0x55 || head[511] != 0xaa {
		return Table{SectorSize: sectorSize}, nil
	}
	sig := binary.LittleEndian.Uint32(head[440:444])
	var mbr []Partition
	protective := false
	for i := 0; i < 4; i++ {
		e := head[446+16*i : 446+16*(i+1)]
		typ := e[4]
		if typ == 0 {
			continue
		}
		if typ == 0xee {
			protective = true
			continue
		}
		lba := int64(binary.LittleEndian.Uint32(e[8:12]))
		n := int64(binary.LittleEndian.Uint32(e[12:16]))
		mbr = append(mbr, Partition{Number: i + 1, Start: lba * int64(sectorSize), Size: n * int64(sectorSize), MBRType: typ, Bootable: e[0]&0x80 != 0})
	}
	if !protective {
		return Table{Kind: "mbr", Partitions: mbr, SectorSize: sectorSize, DiskSignature: sig}, nil
	}
	if len(head) < 2*sectorSize {
		return Table{Kind: "gpt"}, errors.New("GPT header not in the bytes given")
	}
	hdr := head[sectorSize : 2*sectorSize]
	if string(hdr[:8]) != gptSignature {
		return Table{Kind: "gpt"}, errors.New("protective MBR but no GPT header")
	}
	entLBA := int64(binary.LittleEndian.Uint64(hdr[72:80]))
	count := int(binary.LittleEndian.Uint32(hdr[80:84]))
	size := int(binary.LittleEndian.Uint32(hdr[84:88]))
	if size < 128 || size > 4096 || count > 1024 {
		return Table{Kind: "gpt"}, fmt.Errorf("implausible GPT entry array: %d entries of %d bytes", count, size)
	}
	t := Table{Kind: "gpt", SectorSize: sectorSize, DiskSignature: sig}
	for i := 0; i < count; i++ {
		off := entLBA*int64(sectorSize) + int64(i*size)
		if off < 0 || off+int64(size) > int64(len(head)) {
			break // the caller gave fewer bytes than the array: keep what is here
		}
		e := head[off : off+int64(size)]
		if allZero(e[:16]) {
			continue
		}
		first := int64(binary.LittleEndian.Uint64(e[32:40]))
		last := int64(binary.LittleEndian.Uint64(e[40:48]))
		if last < first {
			continue
		}
		t.Partitions = append(t.Partitions, Partition{Number: i + 1, Start: first * int64(sectorSize),
			Size: (last - first + 1) * int64(sectorSize), TypeGUID: guidString(e[:16]), UUID: guidString(e[16:32]),
			Bootable: binary.LittleEndian.Uint64(e[48:56])&(1<<2) != 0})
	}
	return t, nil
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// guidString renders a GPT GUID (mixed-endian) in its usual text form.
func guidString(b []byte) string {
	return fmt.Sprintf("%08X-%04X-%04X-%X-%X", binary.LittleEndian.Uint32(b[0:4]), binary.LittleEndian.Uint16(b[4:6]),
		binary.LittleEndian.Uint16(b[6:8]), b[8:10], b[10:16])
}
