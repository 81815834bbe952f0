package mdraid

import (
	"fmt"
	"sort"
)

// Sizes IPA's raid_utils reserves in front of the RAID partitions.
const (
	// ESPMiB is the ESP IPA later creates on every holder for UEFI.
	ESPMiB = 550
	mib    = 1 << 20
	gib    = 1 << 30
)

// LogicalDisk is one requested array as the layout needs it.
type LogicalDisk struct {
	SizeGiB int      // 0 means "MAX": the rest of each holder
	Disks   []string // holder disks, in order
}

// Span is one partition on a holder, in bytes: [Start, End).
type Span struct {
	Number     int
	Start, End int64
}

// Layout is what goes on every holder and which partition of which
// holder backs each logical disk.
type Layout struct {
	Label   string            // "gpt" or "msdos"
	Holders map[string][]Span // holder -> partitions in creation order
	Order   []int             // the logical disks in creation order (MAX last, as IPA)
	// Members holds, per array in creation order, the holder partitions
	// that back it.
	Members [][]MemberRef
}

// MemberRef is partition Number of holder Disk.
type MemberRef struct {
	Disk   string
	Number int
}

// RAIDStart is where IPA's calculate_raid_start puts the first RAID
// partition: past 551 MiB for UEFI (room for the 550 MiB ESP it adds at
// install_bootloader), past 8 MiB on GPT for BIOS (room for a BIOS boot
// partition), else the first free sector of a fresh MBR (1 MiB).
func RAIDStart(bootMode, label string) int64 {
	switch {
	case bootMode == "uefi":
		return (ESPMiB + 1) * mib
	case label == "gpt":
		return 8 * mib
	}
	return 1 * mib
}

// Plan lays the RAID partitions out on the holders as IPA's
// create_configuration does with parted: the logical disk with size
// "MAX" goes last; on each holder the first RAID partition starts at
// RAIDStart and ends at <size_gb> GiB from the start of the disk (so it
// is that much minus the reserved start); later ones follow at whole
// GiB boundaries; "MAX" ends at the last usable 1 MiB boundary (parted
// -a optimal, before the backup GPT). sizes gives each holder in bytes.
func Plan(bootMode, label string, sectorSize int64, sizes map[string]int64, lds []LogicalDisk) (*Layout, error) {
	if label != "gpt" && label != "msdos" {
		return nil, fmt.Errorf("md: partition table %q is neither gpt nor msdos", label)
	}
	order := make([]int, 0, len(lds))
	maxIdx := -1
	for i, ld := range lds {
		if ld.SizeGiB == 0 {
			if maxIdx >= 0 {
				return nil, fmt.Errorf("md: only one logical disk may have size MAX")
			}
			maxIdx = i
			continue
		}
		if ld.SizeGiB < 0 {
			return nil, fmt.Errorf("md: logical disk %d has a negative size", i)
		}
		order = append(order, i)
	}
	if maxIdx >= 0 {
		order = append(order, maxIdx)
	}
	start := RAIDStart(bootMode, label)
	l := &Layout{Label: label, Holders: map[string][]Span{}, Order: order}
	next := map[string]int64{} // per holder: where the next partition starts
	for _, i := range order {
		ld := lds[i]
		var refs []MemberRef
		for _, d := range ld.Disks {
			size, ok := sizes[d]
			if !ok {
				return nil, fmt.Errorf("md: no size known for holder %s", d)
			}
			usable := size
			if label == "gpt" {
				usable = size - 33*sectorSize // backup GPT: header and 32 sectors of entries
			}
			usable -= usable % mib
			from, first := next[d], false
			if from == 0 {
				from, first = start, true
			}
			var end int64
			switch {
			case ld.SizeGiB == 0:
				end = usable
			case first:
				end = int64(ld.SizeGiB) * gib // parted's "<size>GiB" end: absolute
			default:
				end = from + int64(ld.SizeGiB)*gib
			}
			if end <= from {
				return nil, fmt.Errorf("md: logical disk %d of %d GiB does not fit on %s after its first %d MiB", i, ld.SizeGiB, d, from/mib)
			}
			if end > usable {
				return nil, fmt.Errorf("md: logical disk %d of %d GiB does not fit on %s (%d bytes)", i, ld.SizeGiB, d, size)
			}
			n := len(l.Holders[d]) + 1
			l.Holders[d] = append(l.Holders[d], Span{Number: n, Start: from, End: end})
			refs = append(refs, MemberRef{d, n})
			next[d] = end
		}
		l.Members = append(l.Members, refs)
	}
	for d := range l.Holders {
		sort.Slice(l.Holders[d], func(a, b int) bool { return l.Holders[d][a].Start < l.Holders[d][b].Start })
	}
	return l, nil
}
