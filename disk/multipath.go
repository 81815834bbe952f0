package disk

import (
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// Multipath: a SAN LUN reached through two HBAs shows up as one SCSI
// disk per path, each with the same WWID. The ramdisk has no multipathd,
// so goipa assembles one dm-multipath map per WWID itself
// (AssembleMultipath) and names it as multipathd does without
// user_friendly_names: the map's name is the WWID, its device-mapper
// UUID "mpath-" + WWID. Everything else (inventory, scope, log bundle)
// recognises a map by that UUID and its paths as the map's slaves.

// MultipathUUIDPrefix starts the device-mapper UUID of every map
// multipathd (and goipa) makes; lsblk calls such a device TYPE "mpath".
const MultipathUUIDPrefix = "mpath-"

// MultipathWWIDFromUUID returns the WWID of a dm-multipath map from its
// device-mapper UUID ("mpath-3600a0b80..." gives "3600a0b80..."), and
// false for any other device-mapper UUID (LVM, crypt, kpartx's
// "part1-mpath-..." partitions). The prefix is compared without case,
// as lsblk does.
func MultipathWWIDFromUUID(uuid string) (string, bool) {
	if len(uuid) <= len(MultipathUUIDPrefix) || !strings.EqualFold(uuid[:len(MultipathUUIDPrefix)], MultipathUUIDPrefix) {
		return "", false
	}
	return uuid[len(MultipathUUIDPrefix):], true
}

// MultipathWWN is the WWN a multipath map reports, as multipath-tools'
// kpartx_id gives it to udev (DM_WWN) and IPA reads it: "0x" and the
// WWID without its leading designator type digit. A WWID that is not a
// hexadecimal NAA (3) or EUI-64 (2) designator has no WWN.
func MultipathWWN(wwid string) string {
	if len(wwid) < 3 || (wwid[0] != '3' && wwid[0] != '2') {
		return ""
	}
	for _, c := range wwid[1:] {
		if !strings.ContainsRune("0123456789abcdef", c) {
			return ""
		}
	}
	return "0x" + wwid[1:]
}

// ErrNoWWID: a VPD page 0x83 without a designator that identifies the
// logical unit (or a device with no such page): such a disk is never
// grouped with another.
var ErrNoWWID = errors.New("no logical unit designator usable as a WWID")

// wwidSize is the longest WWID multipath-tools keeps (WWID_SIZE).
const wwidSize = 128

// ParseVPD83 turns a SCSI Device Identification VPD page (0x83, as the
// kernel exposes it in sysfs vpd_pg83) into the WWID multipath-tools
// would give the device: of the designators associated with the logical
// unit, the best by multipath-tools' order (NAA IEEE Registered
// Extended, Registered, Extended; EUI-64; SCSI name string; T10 vendor
// id; NAA locally assigned last), written as its designator type digit
// followed by the hexadecimal bytes (NAA, EUI-64), the lower-cased name
// (a SCSI name string of naa./eui. form; iqn. names keep their case
// after '8'), or the vendor id with each run of blanks made one '_'
// (T10).
func ParseVPD83(page []byte) (string, error) {
	if len(page) < 4 || page[1] != 0x83 {
		return "", fmt.Errorf("not a device identification page: %w", ErrNoWWID)
	}
	n := int(page[2])<<8 | int(page[3])
	if 4+n < len(page) {
		page = page[:4+n]
	}
	var best []byte
	prio := -1
	for d := page[4:]; len(d) >= 4; {
		l := int(d[3])
		if 4+l > len(d) {
			break // a designator longer than the page: stop, keep what was found
		}
		des := d[:4+l]
		d = d[4+l:]
		if des[1]&0x30 != 0 { // association: not the logical unit itself
			continue
		}
		p := -1
		switch des[1] & 0xf {
		case 0x3: // NAA
			if l == 0 {
				continue
			}
			want := 8
			switch des[4] >> 4 {
			case 6:
				p, want = 8, 16
			case 5:
				p = 7
			case 2:
				p = 6
			case 3:
				p = 1
			default:
				continue
			}
			if l != want {
				continue
			}
		case 0x2: // EUI-64
			if l != 8 && l != 12 && l != 16 {
				continue
			}
			p = 4
		case 0x8: // SCSI name string
			if l < 4 {
				continue
			}
			if s := string(des[4:8]); s != "eui." && s != "naa." && s != "iqn." {
				continue
			}
			p = 3
		case 0x1: // T10 vendor identification
			if l < 8 {
				continue
			}
			p = 2
		}
		if p > prio {
			best, prio = des, p
		}
	}
	if prio <= 0 {
		return "", ErrNoWWID
	}
	typ, val := best[1]&0xf, best[4:]
	if len(val) > wwidSize {
		val = val[:wwidSize]
	}
	var b strings.Builder
	switch typ {
	case 0x2, 0x3:
		b.WriteByte('0' + typ)
		for _, c := range val {
			fmt.Fprintf(&b, "%02x", c)
		}
	case 0x8:
		name := string(val)
		if i := strings.IndexByte(name, 0); i >= 0 {
			name = name[:i] // the string is NUL-padded to a multiple of 4
		}
		switch name[:4] {
		case "eui.":
			b.WriteString("2" + strings.ToLower(name[4:]))
		case "naa.":
			b.WriteString("3" + strings.ToLower(name[4:]))
		default:
			b.WriteString("8" + name[4:])
		}
	case 0x1:
		b.WriteString("1" + underscoreBlanks(string(val)))
	}
	w := b.String()
	if len(w) >= wwidSize {
		w = w[:wwidSize-1]
	}
	if len(w) <= 1 || !printable(w) {
		return "", ErrNoWWID
	}
	return w, nil
}

// underscoreBlanks makes each run of spaces one '_', except at the end,
// as multipath-tools writes a T10 vendor id.
func underscoreBlanks(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); {
		if s[i] != ' ' {
			b.WriteByte(s[i])
			i++
			continue
		}
		for i < len(s) && s[i] == ' ' {
			i++
		}
		if i < len(s) {
			b.WriteByte('_')
		}
	}
	return b.String()
}

// printable: a WWID becomes a device-mapper name and UUID, which the
// kernel refuses with control characters or '/'.
func printable(s string) bool {
	for _, c := range []byte(s) {
		if c <= ' ' || c >= 0x7f || c == '/' {
			return false
		}
	}
	return true
}

// WWIDFromSysfs turns the kernel's SCSI wwid attribute ("naa.6000...",
// "eui.0025...", "t10.ATA     QEMU HARDDISK   QM00001") into the same
// WWID form as ParseVPD83, for devices whose VPD page 0x83 the kernel
// does not expose.
func WWIDFromSysfs(s string) string {
	s = strings.TrimSpace(s)
	typ, val, ok := strings.Cut(s, ".")
	if !ok || val == "" {
		return ""
	}
	var w string
	switch typ {
	case "naa":
		w = "3" + strings.ToLower(val)
	case "eui":
		w = "2" + strings.ToLower(val)
	case "t10":
		w = "1" + underscoreBlanks(val)
	default:
		return ""
	}
	if !printable(w) || len(w) >= wwidSize {
		return ""
	}
	return w
}

// MultipathPath is one SCSI disk and the WWID of its logical unit.
type MultipathPath struct {
	Name  string // kernel name: sda
	DevNo string // "major:minor"
	WWID  string
}

// MultipathGroup is the paths of one logical unit, in name order.
type MultipathGroup struct {
	WWID  string
	Paths []MultipathPath
}

// GroupByWWID returns the WWIDs reached through two paths or more, in
// WWID order: those become maps. A disk without a WWID, or alone with
// its WWID, stays a plain disk.
func GroupByWWID(paths []MultipathPath) []MultipathGroup {
	by := map[string][]MultipathPath{}
	for _, p := range paths {
		if p.WWID == "" {
			continue
		}
		by[p.WWID] = append(by[p.WWID], p)
	}
	var out []MultipathGroup
	for w, ps := range by {
		if len(ps) < 2 {
			continue
		}
		sort.Slice(ps, func(i, j int) bool { return lessKernelName(ps[i].Name, ps[j].Name) })
		out = append(out, MultipathGroup{WWID: w, Paths: ps})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].WWID < out[j].WWID })
	return out
}

// lessKernelName orders sdb before sdaa, as the kernel hands them out.
func lessKernelName(a, b string) bool {
	if len(a) != len(b) {
		return len(a) < len(b)
	}
	return a < b
}

// MultipathTable is the device-mapper table of a map over paths (their
// "major:minor"), as multipathd loads it with its defaults and no
// hardware handler: no features (I/O fails when every path has failed:
// with no multipathd to reinstate a path, queueing would hang the
// agent), one path group with the service-time selector, each path with
// a repeat count of 1. sectors is the LUN's size in 512-byte sectors.
func MultipathTable(sectors uint64, devnos []string) (target, params string, err error) {
	if sectors == 0 || len(devnos) == 0 {
		return "", "", errors.New("a multipath map needs a size and at least one path")
	}
	var b strings.Builder
	b.WriteString("0 0 1 1 service-time 0 ")
	b.WriteString(strconv.Itoa(len(devnos)))
	b.WriteString(" 1")
	for _, d := range devnos {
		ma, mi, ok := strings.Cut(d, ":")
		if _, err1 := strconv.ParseUint(ma, 10, 32); !ok || err1 != nil {
			return "", "", fmt.Errorf("path %q is not major:minor", d)
		}
		if _, err2 := strconv.ParseUint(mi, 10, 32); err2 != nil {
			return "", "", fmt.Errorf("path %q is not major:minor", d)
		}
		b.WriteString(" " + d + " 1")
	}
	return "multipath", b.String(), nil
}
