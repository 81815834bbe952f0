package vmedia

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// Labels IPA accepts for Ironic's boot ISO (copy_config_from_vmedia):
// config-2 when Ironic put network_data.json on it, VMEDIA_BOOT_ISO
// otherwise. The comparison ignores case, as IPA's does.
var ISOLabels = []string{"config-2", "vmedia_boot_iso"}

// FloppyLabel is the label of the virtual floppy holding parameters.txt.
const FloppyLabel = "ir-vfd-dev"

// maxUSBMedia is IPA's bound: a USB disk of 4 GiB or more is a real disk.
const maxUSBMedia = 4 << 30

// Finder finds virtual media devices below a sysfs and a /dev root (the
// machine's own, or a recorded tree in tests).
type Finder struct {
	SysRoot string // "/sys"
	DevRoot string // "/dev"
	Log     func(msg string, args ...any)
}

func (f Finder) logf(msg string, args ...any) {
	if f.Log != nil {
		f.Log(msg, args...)
	}
}

// Filesystem types ReadLabel recognises.
const (
	FSISO9660 = "iso9660"
	FSVFAT    = "vfat"
)

// ReadLabel reads a device's filesystem label the way blkid reports it
// for the two filesystems virtual media carry: the ISO 9660 primary
// volume descriptor's volume identifier, or the FAT boot sector's volume
// label. Anything else has no label here.
func ReadLabel(r io.ReaderAt) (label, fstype string) {
	pvd := make([]byte, 72)
	if n, _ := r.ReadAt(pvd, 16*2048); n == len(pvd) && pvd[0] == 1 && string(pvd[1:6]) == "CD001" {
		return strings.TrimRight(string(pvd[40:72]), " \x00"), FSISO9660
	}
	bs := make([]byte, 512)
	if n, _ := r.ReadAt(bs, 0); n < len(bs) || bs[510] != 0x55 || bs[511] != 0xaa {
		return "", ""
	}
	var lab []byte
	switch {
	case string(bs[82:87]) == "FAT32":
		lab = bs[71:82]
	case bytes.HasPrefix(bs[54:62], []byte("FAT")) && bs[38] == 0x29: // extended boot signature
		lab = bs[43:54]
	default:
		return "", ""
	}
	l := strings.TrimRight(string(lab), " \x00")
	if l == "NO NAME" {
		l = ""
	}
	return l, FSVFAT
}

// Device is a candidate block device.
type Device struct {
	Name   string // kernel name: sr0, sdb
	Path   string // its node below DevRoot
	Label  string
	FSType string
}

// byLabel lists the block devices whose label is one of labels (any
// case), in kernel-name order.
func (f Finder) byLabel(labels []string) []Device {
	entries, err := os.ReadDir(filepath.Join(f.SysRoot, "class", "block"))
	if err != nil {
		f.logf("virtual media: cannot list block devices", "error", err)
		return nil
	}
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	var out []Device
	for _, n := range names {
		p := filepath.Join(f.DevRoot, n)
		fh, err := os.Open(p)
		if err != nil {
			continue // no medium in the drive, or no node
		}
		label, fstype := ReadLabel(fh)
		fh.Close()
		for _, want := range labels {
			if label != "" && strings.EqualFold(label, want) {
				out = append(out, Device{Name: n, Path: p, Label: label, FSType: fstype})
				break
			}
		}
	}
	return out
}

// blockType is lsblk's TYPE column for a kernel block device.
func (f Finder) blockType(name string) string {
	base := filepath.Join(f.SysRoot, "class", "block", name)
	if _, err := os.Stat(filepath.Join(base, "partition")); err == nil {
		return "part"
	}
	switch {
	case strings.HasPrefix(name, "loop"):
		return "loop"
	case strings.HasPrefix(name, "dm-"):
		return "dm"
	case strings.HasPrefix(name, "md"):
		return "raid"
	}
	if b, err := os.ReadFile(filepath.Join(base, "device", "type")); err == nil {
		// SCSI peripheral device type: 5 is a CD/DVD drive (TYPE_ROM).
		switch strings.TrimSpace(string(b)) {
		case "0":
			return "disk"
		case "5":
			return "rom"
		default:
			return "scsi-" + strings.TrimSpace(string(b))
		}
	}
	return "disk"
}

// usbTransport is lsblk's TRAN=usb: the device sits below a USB host.
func (f Finder) usbTransport(name string) bool {
	p, err := filepath.EvalSymlinks(filepath.Join(f.SysRoot, "class", "block", name))
	if err != nil {
		return false
	}
	return strings.Contains(p, "/usb")
}

func (f Finder) sizeBytes(name string) (int64, bool) {
	b, err := os.ReadFile(filepath.Join(f.SysRoot, "class", "block", name, "size"))
	if err != nil {
		return 0, false
	}
	n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return 0, false
	}
	return n * 512, true
}

// Check is IPA's _check_vmedia_device: the device and then the devices
// under it (lsblk -s order); a partition anywhere rules it out, a rom
// drive or a USB disk under 4 GiB makes it virtual media; anything else
// (a fixed disk, NVMe, a loop device) is not.
func (f Finder) Check(name string) (bool, string) {
	seen := map[string]bool{}
	queue := []string{name}
	for len(queue) > 0 {
		d := queue[0]
		queue = queue[1:]
		if seen[d] {
			continue
		}
		seen[d] = true
		switch t := f.blockType(d); {
		case t == "part":
			return false, fmt.Sprintf("%s is a partition", d)
		case t == "rom":
			return true, fmt.Sprintf("%s is a read-only (rom) drive", d)
		case t == "disk" && f.usbTransport(d):
			size, ok := f.sizeBytes(d)
			if ok && size < maxUSBMedia {
				return true, fmt.Sprintf("%s is a USB disk of %d bytes", d, size)
			}
			f.logf("virtual media: USB disk too large to be virtual media", "device", d, "bytes", size)
		}
		slaves, _ := os.ReadDir(filepath.Join(f.SysRoot, "class", "block", d, "slaves"))
		for _, s := range slaves {
			queue = append(queue, s.Name())
		}
	}
	return false, fmt.Sprintf("%s is neither a rom drive nor a USB disk under 4 GiB", name)
}

// Find returns the first device labelled with one of labels that passes
// Check, as IPA's _find_vmedia_device_by_labels does.
func (f Finder) Find(labels []string) (Device, bool) {
	for _, d := range f.byLabel(labels) {
		ok, why := f.Check(d.Name)
		if ok {
			f.logf("virtual media found", "device", d.Path, "label", d.Label, "why", why)
			return d, true
		}
		f.logf("virtual media: labelled device rejected", "device", d.Path, "label", d.Label, "why", why)
	}
	return Device{}, false
}

// FindFloppy finds the virtual floppy as IPA's _get_vmedia_params does:
// by its label, else the first device whose SCSI model says "virtual
// media"; either must pass Check.
func (f Finder) FindFloppy() (Device, bool) {
	if d, ok := f.Find([]string{FloppyLabel}); ok {
		return d, true
	}
	models, _ := filepath.Glob(filepath.Join(f.SysRoot, "class", "block", "*", "device", "model"))
	sort.Strings(models)
	for _, m := range models {
		b, err := os.ReadFile(m)
		if err != nil || !strings.Contains(strings.ToLower(string(b)), "virtual media") {
			continue
		}
		name := filepath.Base(filepath.Dir(filepath.Dir(m)))
		if ok, why := f.Check(name); !ok {
			f.logf("virtual media: device rejected", "device", name, "why", why)
			return Device{}, false // IPA looks at the first such device only
		}
		d := Device{Name: name, Path: filepath.Join(f.DevRoot, name)}
		if fh, err := os.Open(d.Path); err == nil {
			d.Label, d.FSType = ReadLabel(fh)
			fh.Close()
		}
		return d, true
	}
	return Device{}, false
}
