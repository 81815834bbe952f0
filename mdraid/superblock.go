package mdraid

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
)

// Magic is MD_SB_MAGIC, the first word of every md superblock.
const Magic = 0xa92b4efc

// Sizes of the version-1 superblock: a 256-byte fixed part followed by
// one 16-bit role per device slot (max_dev of them). mdadm writes the
// superblock rounded up to 512 bytes and never more than 4 KiB.
const (
	headerSize  = 256
	maxSBSize   = 4096
	MaxDevSlots = (maxSBSize - headerSize) / 2 // 1920, the kernel's (4096-256)/2
)

// Device roles beyond the raid slot numbers (md_p.h).
const (
	RoleSpare  = 0xffff
	RoleFaulty = 0xfffe
)

// featureKnown is every feature bit the kernel's MD_FEATURE_ALL knows (the
// kernel's numbering: 4096 is RAID0_LAYOUT, 128 and 256 recovery bitmap
// and clustered, where mdadm's own header differs);
// a superblock with others is refused by the kernel, and by Parse.
const featureKnown = 1 | 2 | 4 | 8 | 16 | 32 | 64 | 128 | 256 | 512 | 1024 | 2048 | 4096

// Superblock is struct mdp_superblock_1, field by field. Sector values
// are 512-byte sectors, as on disk.
type Superblock struct {
	FeatureMap     uint32
	SetUUID        [16]byte
	SetName        string // at most 32 bytes; mdadm writes "host:name"
	CTime          uint64 // low 40 bits seconds, high 24 microseconds
	Level          int32  // 0, 1, 4, 5, 6, 10; -1 linear, -4 multipath
	Layout         uint32
	Size           uint64 // used sectors of each member (the array's per-device size)
	ChunkSize      uint32 // sectors
	RaidDisks      uint32
	BitmapOffset   uint32
	NewLevel       uint32
	ReshapePos     uint64
	DeltaDisks     uint32
	NewLayout      uint32
	NewChunk       uint32
	NewOffset      uint32
	DataOffset     uint64 // first data sector on this member
	DataSize       uint64 // data sectors on this member
	SuperOffset    uint64 // sector of this superblock on this member
	RecoveryOffset uint64
	DevNumber      uint32 // this member's slot in DevRoles
	CntCorrected   uint32
	DeviceUUID     [16]byte
	DevFlags       uint8
	BBLogShift     uint8
	BBLogSize      uint16
	BBLogOffset    uint32
	UTime          uint64
	Events         uint64
	ResyncOffset   uint64 // ^0: in sync; 0: resync from the start
	Checksum       uint32 // as read; Marshal computes its own
	DevRoles       []uint16
}

// ParseError says why bytes are not a valid version-1 superblock.
type ParseError struct{ Reason string }

func (e *ParseError) Error() string { return "md superblock: " + e.Reason }

// ErrNoSuperblock is returned by Examine when a device carries no md
// superblock at any version-1 position.
var ErrNoSuperblock = errors.New("no md superblock detected")

var le = binary.LittleEndian

// Len is the number of bytes the superblock occupies: the header and
// its role table.
func (s *Superblock) Len() int { return headerSize + 2*len(s.DevRoles) }

// Marshal encodes s with a fresh checksum, padded to 512 bytes as mdadm
// writes it (the padding is zero; the roles table is as given).
func (s *Superblock) Marshal() ([]byte, error) {
	if len(s.DevRoles) > MaxDevSlots {
		return nil, fmt.Errorf("md superblock: %d device slots, at most %d", len(s.DevRoles), MaxDevSlots)
	}
	if len(s.SetName) > 32 {
		return nil, fmt.Errorf("md superblock: name %q is longer than 32 bytes", s.SetName)
	}
	n := (s.Len() + 511) &^ 511
	b := make([]byte, n)
	le.PutUint32(b[0:], Magic)
	le.PutUint32(b[4:], 1)
	le.PutUint32(b[8:], s.FeatureMap)
	copy(b[16:32], s.SetUUID[:])
	copy(b[32:64], s.SetName)
	le.PutUint64(b[64:], s.CTime)
	le.PutUint32(b[72:], uint32(s.Level))
	le.PutUint32(b[76:], s.Layout)
	le.PutUint64(b[80:], s.Size)
	le.PutUint32(b[88:], s.ChunkSize)
	le.PutUint32(b[92:], s.RaidDisks)
	le.PutUint32(b[96:], s.BitmapOffset)
	le.PutUint32(b[100:], s.NewLevel)
	le.PutUint64(b[104:], s.ReshapePos)
	le.PutUint32(b[112:], s.DeltaDisks)
	le.PutUint32(b[116:], s.NewLayout)
	le.PutUint32(b[120:], s.NewChunk)
	le.PutUint32(b[124:], s.NewOffset)
	le.PutUint64(b[128:], s.DataOffset)
	le.PutUint64(b[136:], s.DataSize)
	le.PutUint64(b[144:], s.SuperOffset)
	le.PutUint64(b[152:], s.RecoveryOffset)
	le.PutUint32(b[160:], s.DevNumber)
	le.PutUint32(b[164:], s.CntCorrected)
	copy(b[168:184], s.DeviceUUID[:])
	b[184] = s.DevFlags
	b[185] = s.BBLogShift
	le.PutUint16(b[186:], s.BBLogSize)
	le.PutUint32(b[188:], s.BBLogOffset)
	le.PutUint64(b[192:], s.UTime)
	le.PutUint64(b[200:], s.Events)
	le.PutUint64(b[208:], s.ResyncOffset)
	le.PutUint32(b[220:], uint32(len(s.DevRoles)))
	for i, r := range s.DevRoles {
		le.PutUint16(b[headerSize+2*i:], r)
	}
	le.PutUint32(b[216:], checksum(b[:s.Len()]))
	return b, nil
}

// checksum is calc_sb_1_csum: the 32-bit little-endian words of the
// header and role table (a trailing half word added alone) summed in 64
// bits with the checksum field read as zero, then folded once.
func checksum(b []byte) uint32 {
	var sum uint64
	i := 0
	for ; i+4 <= len(b); i += 4 {
		if i == 216 {
			continue
		}
		sum += uint64(le.Uint32(b[i:]))
	}
	if len(b)-i == 2 {
		sum += uint64(le.Uint16(b[i:]))
	}
	return uint32(sum&0xffffffff + sum>>32)
}

// Parse decodes a version-1 superblock with the checks the kernel's
// super_1_load makes before trusting one: magic, major version 1, a
// role table that fits in 4 KiB, known feature bits, zero padding and a
// matching checksum. The super_offset check needs the device and is the
// caller's (Examine does it).
func Parse(b []byte) (*Superblock, error) {
	if len(b) < headerSize {
		return nil, &ParseError{fmt.Sprintf("%d bytes, need %d", len(b), headerSize)}
	}
	if m := le.Uint32(b); m != Magic {
		return nil, &ParseError{fmt.Sprintf("bad magic %#x", m)}
	}
	if v := le.Uint32(b[4:]); v != 1 {
		return nil, &ParseError{fmt.Sprintf("major version %d, want 1", v)}
	}
	maxDev := le.Uint32(b[220:])
	if maxDev > MaxDevSlots {
		return nil, &ParseError{fmt.Sprintf("max_dev %d exceeds %d", maxDev, MaxDevSlots)}
	}
	if headerSize+2*int(maxDev) > len(b) {
		return nil, &ParseError{fmt.Sprintf("role table of %d slots runs past %d bytes", maxDev, len(b))}
	}
	if f := le.Uint32(b[8:]); f&^featureKnown != 0 {
		return nil, &ParseError{fmt.Sprintf("unknown feature bits %#x", f&^featureKnown)}
	}
	if le.Uint32(b[12:]) != 0 || !allZero(b[224:256]) {
		return nil, &ParseError{"non-zero padding"}
	}
	n := headerSize + 2*int(maxDev)
	want := checksum(b[:n])
	got := le.Uint32(b[216:])
	if got != want {
		return nil, &ParseError{fmt.Sprintf("checksum %#08x, computed %#08x", got, want)}
	}
	s := &Superblock{
		FeatureMap:     le.Uint32(b[8:]),
		SetName:        string(bytes.TrimRight(b[32:64], "\x00")),
		CTime:          le.Uint64(b[64:]),
		Level:          int32(le.Uint32(b[72:])),
		Layout:         le.Uint32(b[76:]),
		Size:           le.Uint64(b[80:]),
		ChunkSize:      le.Uint32(b[88:]),
		RaidDisks:      le.Uint32(b[92:]),
		BitmapOffset:   le.Uint32(b[96:]),
		NewLevel:       le.Uint32(b[100:]),
		ReshapePos:     le.Uint64(b[104:]),
		DeltaDisks:     le.Uint32(b[112:]),
		NewLayout:      le.Uint32(b[116:]),
		NewChunk:       le.Uint32(b[120:]),
		NewOffset:      le.Uint32(b[124:]),
		DataOffset:     le.Uint64(b[128:]),
		DataSize:       le.Uint64(b[136:]),
		SuperOffset:    le.Uint64(b[144:]),
		RecoveryOffset: le.Uint64(b[152:]),
		DevNumber:      le.Uint32(b[160:]),
		CntCorrected:   le.Uint32(b[164:]),
		DevFlags:       b[184],
		BBLogShift:     b[185],
		BBLogSize:      le.Uint16(b[186:]),
		BBLogOffset:    le.Uint32(b[188:]),
		UTime:          le.Uint64(b[192:]),
		Events:         le.Uint64(b[200:]),
		ResyncOffset:   le.Uint64(b[208:]),
		Checksum:       got,
		DevRoles:       make([]uint16, maxDev),
	}
	copy(s.SetUUID[:], b[16:32])
	copy(s.DeviceUUID[:], b[168:184])
	for i := range s.DevRoles {
		s.DevRoles[i] = le.Uint16(b[headerSize+2*i:])
	}
	return s, nil
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// Role is this member's role: its raid slot, RoleSpare or RoleFaulty.
func (s *Superblock) Role() uint16 {
	if int(s.DevNumber) < len(s.DevRoles) {
		return s.DevRoles[s.DevNumber]
	}
	return RoleSpare
}

// VolumeName is the array's name without mdadm's "homehost:" prefix,
// what IPA reads from `mdadm --detail` as the volume name.
func (s *Superblock) VolumeName() string {
	if _, after, ok := strings.Cut(s.SetName, ":"); ok {
		return after
	}
	return s.SetName
}

// UUID renders the set UUID as mdadm does (four groups of eight hex
// digits separated by colons).
func (s *Superblock) UUID() string {
	var b strings.Builder
	for i, c := range s.SetUUID {
		if i > 0 && i%4 == 0 {
			b.WriteByte(':')
		}
		fmt.Fprintf(&b, "%02x", c)
	}
	return b.String()
}

// SuperOffset is where a version-1.minor superblock lives on a member
// of devSectors sectors: 1.0 at least 8 KiB and less than 12 KiB before
// the end (4 KiB aligned), 1.1 at the start, 1.2 4 KiB in.
func SuperOffset(minor int, devSectors uint64) (uint64, error) {
	switch minor {
	case 0:
		if devSectors < 24 {
			return 0, fmt.Errorf("md: device of %d sectors is too small", devSectors)
		}
		return (devSectors - 16) &^ 7, nil
	case 1:
		return 0, nil
	case 2:
		return 8, nil
	}
	return 0, fmt.Errorf("md: metadata 1.%d does not exist", minor)
}
