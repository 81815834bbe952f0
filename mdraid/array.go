package mdraid

import (
	"fmt"
	"time"
)

// Metadata versions this package writes (the minor of 1.x).
const (
	// Metadata12 is what `mdadm --metadata=1` creates: mdadm takes a
	// bare "1" as the default 1.x, which is 1.2.
	Metadata12 = 2
	// Metadata10 keeps the superblock at the end so each member of a
	// mirrored ESP reads as a plain FAT filesystem (IPA's --metadata=1.0).
	Metadata10 = 0
)

// Kernel constants for RAID-0's layout (md_p.h, raid0.h).
const (
	featureRAID0Layout     = 4096
	raid0AltMultizone      = 2
	defaultChunkKiB        = 512 // mdadm's default chunk
	raid1SizeAlignSectors  = 128 // mdadm rounds a mirror's size to 64 KiB
	maxHeadroomSectors     = 128 * 1024 * 2
	oneMiBSectors          = 2048
	defaultSlotsPerSB      = 128 // (512-256)/2: the role table in one sector
	superblockReservedSecs = 12 * 2
)

// UnsupportedLevelError names a RAID level this package does not build.
type UnsupportedLevelError struct{ Level string }

func (e *UnsupportedLevelError) Error() string {
	return fmt.Sprintf("RAID level %s is not supported by goipa's software RAID (RAID-0 and RAID-1 are)", e.Level)
}

// Spec describes an array to create.
type Spec struct {
	Name     string // the volume name (IPA: volume_name, else "md<N>")
	HomeHost string // mdadm prefixes the name with "<homehost>:" when it fits
	Level    int    // 0 or 1
	Metadata int    // Metadata12 or Metadata10
	ChunkKiB int    // RAID-0 chunk; mdadm's 512 KiB when 0
	UUID     [16]byte
	Time     time.Time
}

// Superblocks computes each member's superblock for a new array whose
// members have the given sizes in 512-byte sectors: the data offset,
// data size and the array's per-member size as mdadm chooses them, the
// members in slots 0..n-1, a resync requested for a mirror (mdadm
// without --assume-clean). devUUIDs gives each member's device UUID.
func (s Spec) Superblocks(memberSectors []uint64, devUUIDs [][16]byte) ([]*Superblock, error) {
	n := len(memberSectors)
	switch s.Level {
	case 0, 1:
	default:
		return nil, &UnsupportedLevelError{Level: fmt.Sprint(s.Level)}
	}
	if n < 2 {
		return nil, fmt.Errorf("md: RAID-%d needs at least 2 members, got %d", s.Level, n)
	}
	if len(devUUIDs) != n {
		return nil, fmt.Errorf("md: %d device UUIDs for %d members", len(devUUIDs), n)
	}
	if s.Metadata != Metadata12 && s.Metadata != Metadata10 {
		return nil, fmt.Errorf("md: metadata 1.%d is not written by goipa", s.Metadata)
	}
	chunk := uint64(0)
	if s.Level == 0 {
		kib := s.ChunkKiB
		if kib == 0 {
			kib = defaultChunkKiB
		}
		chunk = uint64(kib) * 2
	}
	smallest := memberSectors[0]
	for _, m := range memberSectors {
		smallest = min(smallest, m)
	}
	dataOffset := uint64(0)
	if s.Metadata == Metadata12 {
		dataOffset = DataOffset12(smallest, chunk)
	}
	type member struct{ sbOff, dataSize uint64 }
	ms := make([]member, n)
	size := uint64(0)
	for i, dev := range memberSectors {
		off, err := SuperOffset(s.Metadata, dev)
		if err != nil {
			return nil, err
		}
		var data uint64
		if s.Metadata == Metadata12 {
			if dev <= dataOffset+oneMiBSectors {
				return nil, fmt.Errorf("md: member %d of %d sectors is too small for data at sector %d", i, dev, dataOffset)
			}
			data = dev - dataOffset
		} else {
			reserve := chooseBitmapSpace(dev) + 8 // bitmap room and the bad-block log before the superblock
			if off <= reserve+oneMiBSectors {
				return nil, fmt.Errorf("md: member %d of %d sectors is too small", i, dev)
			}
			data = off - reserve
		}
		ms[i] = member{off, data}
		if i == 0 || data < size {
			size = data
		}
	}
	if s.Level == 1 {
		size &^= raid1SizeAlignSectors - 1
	} else {
		size -= size % chunk
	}
	name := s.Name
	if s.HomeHost != "" && len(s.HomeHost)+1+len(name) < 32 {
		name = s.HomeHost + ":" + name
	}
	if len(name) > 31 {
		name = name[:31] // mdadm keeps a terminating NUL
	}
	slots := defaultSlotsPerSB
	if n > slots {
		slots = ((headerSize+2*n+511)&^511 - headerSize) / 2
	}
	t := uint64(s.Time.Unix()) & (1<<40 - 1)
	out := make([]*Superblock, n)
	for i := range memberSectors {
		roles := make([]uint16, slots)
		for j := range roles {
			roles[j] = RoleSpare
			if j < n {
				roles[j] = uint16(j)
			}
		}
		sb := &Superblock{
			SetUUID: s.UUID, SetName: name, CTime: t, UTime: t,
			Level: int32(s.Level), Size: size, ChunkSize: uint32(chunk), RaidDisks: uint32(n),
			DataOffset: dataOffset, DataSize: ms[i].dataSize, SuperOffset: ms[i].sbOff,
			DevNumber: uint32(i), DeviceUUID: devUUIDs[i], DevRoles: roles,
		}
		if s.Level == 0 {
			// Say which multi-zone layout this is, or newer kernels refuse
			// to assemble a RAID-0 whose members differ in size.
			sb.FeatureMap |= featureRAID0Layout
			sb.Layout = raid0AltMultizone
			sb.ResyncOffset = ^uint64(0)
		}
		out[i] = sb
	}
	return out, nil
}

// DataOffset12 is where mdadm starts the data on a 1.2 member of
// devSectors sectors: headroom for a later reshape (128 MiB, halved
// while it exceeds a thousandth of the device, but kept above two
// chunks), the superblock area and room for a bitmap, rounded up to
// 1 MiB.
func DataOffset12(devSectors, chunkSectors uint64) uint64 {
	headroom := uint64(maxHeadroomSectors)
	for headroom<<10 > devSectors && (chunkSectors == 0 || headroom/2 >= chunkSectors*2) {
		headroom >>= 1
	}
	off := superblockReservedSecs + chooseBitmapSpace(devSectors) + headroom
	return (off + oneMiBSectors - 1) / oneMiBSectors * oneMiBSectors
}

// chooseBitmapSpace is mdadm's room for a write-intent bitmap: 64 KiB
// above 8 GiB, 128 KiB above 200 GiB, else 4 KiB.
func chooseBitmapSpace(devSectors uint64) uint64 {
	switch {
	case devSectors < 64*2:
		return 0
	case devSectors-64*2 >= 200*1024*1024*2:
		return 128 * 2
	case devSectors-4*2 > 8*1024*1024*2:
		return 64 * 2
	}
	return 4 * 2
}

// ArraySectors is the size of the assembled array in sectors.
func ArraySectors(level int, sbs []*Superblock) uint64 {
	if len(sbs) == 0 {
		return 0
	}
	if level == 1 {
		return sbs[0].Size
	}
	var sum uint64
	for _, sb := range sbs {
		c := uint64(sb.ChunkSize)
		if c == 0 {
			c = 1
		}
		sum += sb.DataSize - sb.DataSize%c
	}
	return sum
}
