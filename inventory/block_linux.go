package inventory

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/goipa/goipa/disk"
	"github.com/goipa/goipa/firmware"
)

// Disk is one block device as IPA reports it.
type Disk struct {
	Name               string  `json:"name"`
	Model              *string `json:"model"`
	Size               int64   `json:"size"`
	Rotational         bool    `json:"rotational"`
	WWN                *string `json:"wwn"`
	Serial             *string `json:"serial"`
	Vendor             *string `json:"vendor"`
	WWNWithExtension   *string `json:"wwn_with_extension"`
	WWNVendorExtension *string `json:"wwn_vendor_extension"`
	HCTL               *string `json:"hctl"`
	ByPath             *string `json:"by_path"`
	LogicalSectors     int     `json:"logical_sectors"`
	PhysicalSectors    int     `json:"physical_sectors"`
	Tran               *string `json:"tran"`
	// FirmwareRevision is goipa's addition: the drive's firmware version.
	FirmwareRevision *string `json:"goipa_firmware_revision,omitempty"`
	ReadOnly         bool    `json:"-"`
	Kname            string  `json:"-"`

	// Firmware is an NVMe controller's firmware slots (goipa's addition).
	Firmware *firmware.NVMeInventory `json:"goipa_firmware,omitempty"`
}

// BlockDevices lists the disks goipa may touch: with WithDevices exactly
// those (loop devices too), otherwise what IPA lists (spec 7.3). Install
// disk selection, erase and the inventory all take their list from here.
func BlockDevices(ctx context.Context, opts ...Option) ([]Disk, error) {
	return blockDevices(ctx, newOptions(opts))
}

func blockDevices(ctx context.Context, o *options) ([]Disk, error) {
	var knames []string
	if len(o.devices) > 0 {
		for _, p := range o.devices {
			k, err := kernelName(o, p)
			if err != nil {
				o.log.Warn("inventory: goipa-devices entry skipped", "device", p, "error", err)
				continue
			}
			// A path of a multipath map is the map: the logical unit is
			// listed, and written, once.
			if m := disk.MultipathMapOf(o.path("sys"), k); m != "" {
				o.log.Info("inventory: goipa-devices names a path of a multipath map; the map is listed", "device", p, "map", "/dev/"+m)
				k = m
			}
			knames = append(knames, k)
		}
	} else {
		entries, err := os.ReadDir(o.path("sys/block"))
		if err != nil {
			return nil, err
		}
		for _, e := range entries {
			k := e.Name()
			// IPA (lsblk TYPE mpath, `multipath -c`): a dm-multipath map
			// is a disk, its paths are not.
			if _, isMap := disk.MultipathWWIDOf(o.path("sys"), k); !isMap && skipByName(k) {
				continue
			}
			if disk.MultipathMapOf(o.path("sys"), k) != "" {
				continue
			}
			knames = append(knames, k)
		}
	}
	var out []Disk
	seen := map[string]bool{}
	for _, k := range knames {
		if ctx.Err() != nil {
			return out, ctx.Err()
		}
		if seen[k] {
			continue
		}
		seen[k] = true
		d, err := readDisk(o, k)
		if err != nil {
			// A disk can vanish mid-scan; the others still count.
			o.log.Warn("inventory: disk skipped", "disk", k, "error", err)
			continue
		}
		if d.Size == 0 && len(o.devices) == 0 {
			continue
		}
		out = append(out, d)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// skipByName drops what IPA never lists: ramdisks, loop devices (unless
// named in goipa-devices), floppies, optical drives, device-mapper and
// md partitions.
func skipByName(k string) bool {
	for _, p := range []string{"loop", "ram", "zram", "fd", "sr", "dm-", "nbd", "mtdblock"} {
		if strings.HasPrefix(k, p) {
			return true
		}
	}
	return strings.HasPrefix(k, "md") && strings.Contains(k, "p")
}

// kernelName resolves a /dev path (or a by-path link) to its /sys/block name.
func kernelName(o *options, p string) (string, error) {
	real := p
	if o.sysRoot == "/" {
		r, err := filepath.EvalSymlinks(p)
		if err != nil {
			return "", err
		}
		real = r
	}
	k := filepath.Base(real)
	if _, err := os.Stat(o.path(filepath.Join("sys/block", k))); err != nil {
		return "", fmt.Errorf("%s is not a whole block device", p)
	}
	return k, nil
}

func readDisk(o *options, k string) (Disk, error) {
	dir := o.path(filepath.Join("sys/block", k))
	sectors, err := strconv.ParseInt(readTrim(filepath.Join(dir, "size")), 10, 64)
	if err != nil {
		return Disk{}, fmt.Errorf("size: %w", err)
	}
	d := Disk{Name: "/dev/" + k, Kname: k, Size: sectors * 512}
	d.Rotational = readTrim(filepath.Join(dir, "queue/rotational")) == "1"
	d.ReadOnly = readTrim(filepath.Join(dir, "ro")) == "1"
	d.LogicalSectors, _ = strconv.Atoi(readTrim(filepath.Join(dir, "queue/logical_block_size")))
	d.PhysicalSectors, _ = strconv.Atoi(readTrim(filepath.Join(dir, "queue/physical_block_size")))
	if wwid, ok := disk.MultipathWWIDOf(o.path("sys"), k); ok {
		readMultipathMap(o, &d, wwid)
		return d, nil
	}
	d.Model = strPtr(readTrim(filepath.Join(dir, "device/model")))
	d.Vendor = strPtr(readTrim(filepath.Join(dir, "device/vendor")))
	d.FirmwareRevision = strPtr(firstOf(readTrim(filepath.Join(dir, "device/rev")), readTrim(filepath.Join(dir, "device/firmware_rev"))))
	udev := udevProperties(o, readTrim(filepath.Join(dir, "dev")))
	d.Serial = strPtr(firstOf(udev["ID_SERIAL_SHORT"], udev["ID_SERIAL"], readTrim(filepath.Join(dir, "serial")), readTrim(filepath.Join(dir, "device/serial")), vpdSerial(filepath.Join(dir, "device/vpd_pg80"))))
	wwn, withExt, vendorExt := udev["ID_WWN"], udev["ID_WWN_WITH_EXTENSION"], udev["ID_WWN_VENDOR_EXTENSION"]
	if wwn == "" { // no udev in the ramdisk: what its rules would make of the kernel's wwid
		wwn, withExt, vendorExt = wwnFromWWID(firstOf(readTrim(filepath.Join(dir, "device/wwid")), readTrim(filepath.Join(dir, "wwid"))))
	}
	d.WWN, d.WWNWithExtension, d.WWNVendorExtension = strPtr(wwn), strPtr(withExt), strPtr(vendorExt)
	if hs, err := os.ReadDir(filepath.Join(dir, "device/scsi_device")); err == nil && len(hs) > 0 {
		d.HCTL = strPtr(hs[0].Name())
	}
	if p := udev["ID_PATH"]; p != "" {
		d.ByPath = strPtr("/dev/disk/by-path/" + p)
	} else {
		d.ByPath = byPathLink(o, k)
	}
	d.Tran = strPtr(transport(o, k, udev))
	return d, nil
}

// readMultipathMap fills in a dm-multipath map as IPA reports one: lsblk
// has no model, vendor, HCTL, transport or serial for a dm device and
// udev's by-path rules skip dm-*, so what is left are the properties
// multipath-tools' udev rules (kpartx_id) give the map, which IPA reads
// next: DM_SERIAL, the WWID, and DM_WWN, "0x" and the WWID without its
// type digit. Without udev (the ramdisk) they are made from the WWID the
// same way.
func readMultipathMap(o *options, d *Disk, wwid string) {
	udev := udevProperties(o, readTrim(filepath.Join(o.path("sys/block"), d.Kname, "dev")))
	d.Serial = strPtr(firstOf(udev["ID_SERIAL_SHORT"], udev["DM_SERIAL_SHORT"], udev["ID_SERIAL"], udev["DM_SERIAL"], wwid))
	d.WWN = strPtr(firstOf(udev["ID_WWN"], udev["DM_WWN"], disk.MultipathWWN(wwid)))
	d.WWNWithExtension = strPtr(firstOf(udev["ID_WWN_WITH_EXTENSION"], udev["DM_WWN_WITH_EXTENSION"]))
	d.WWNVendorExtension = strPtr(firstOf(udev["ID_WWN_VENDOR_EXTENSION"], udev["DM_WWN_VENDOR_EXTENSION"]))
}

func firstOf(vals ...string) string {
	for _, v := range vals {
		if v != "" {
			return v
		}
	}
	return ""
}

// udevProperties reads udev's database entry for a device number "M:m".
func udevProperties(o *options, devno string) map[string]string {
	props := map[string]string{}
	if devno == "" {
		return props
	}
	f, err := os.Open(o.path(filepath.Join("run/udev/data", "b"+devno)))
	if err != nil {
		return props
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "E:") {
			continue
		}
		if k, v, ok := strings.Cut(line[2:], "="); ok {
			props[k] = v
		}
	}
	return props
}

func byPathLink(o *options, k string) *string {
	dir := o.path("dev/disk/by-path")
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	for _, e := range entries {
		if t, err := os.Readlink(filepath.Join(dir, e.Name())); err == nil && filepath.Base(t) == k {
			return strPtr("/dev/disk/by-path/" + e.Name())
		}
	}
	return nil
}

// transport is lsblk's TRAN column.
func transport(o *options, k string, udev map[string]string) string {
	switch {
	case strings.HasPrefix(k, "nvme"):
		return "nvme"
	case strings.HasPrefix(k, "vd"):
		return "virtio"
	}
	link, err := os.Readlink(o.path(filepath.Join("sys/block", k)))
	if err != nil {
		return ""
	}
	switch {
	case strings.Contains(link, "/usb"):
		return "usb"
	case strings.Contains(link, "/ata"):
		return "sata"
	case strings.Contains(link, "/end_device-") || strings.Contains(link, "/sas_"):
		return "sas"
	case strings.Contains(link, "/session"):
		return "iscsi"
	case strings.Contains(link, "/virtio"):
		return "virtio"
	}
	if b := udev["ID_BUS"]; b == "ata" {
		return "sata"
	}
	return ""
}

// vpdSerial reads the unit serial number from a SCSI (or SATA behind
// libata's SCSI translation) VPD page 0x80, as udev's scsi_id does.
func vpdSerial(path string) string {
	b, err := os.ReadFile(path)
	if err != nil || len(b) < 4 || b[1] != 0x80 {
		return ""
	}
	n := int(b[2])<<8 | int(b[3])
	if 4+n > len(b) {
		n = len(b) - 4
	}
	return strings.TrimSpace(strings.Trim(string(b[4:4+n]), "\x00"))
}

// wwnFromWWID turns the kernel's wwid attribute into udev's ID_WWN,
// ID_WWN_WITH_EXTENSION and ID_WWN_VENDOR_EXTENSION: NVMe keeps the
// wwid as it is; a SCSI NAA or EUI-64 designator becomes 0x<hex>, a
// 16-byte NAA split into the WWN and its vendor extension; a T10 vendor
// id (what QEMU's and many SATA disks give) is no WWN at all.
func wwnFromWWID(wwid string) (wwn, withExt, vendorExt string) {
	switch {
	case strings.HasPrefix(wwid, "nvme.") || (strings.HasPrefix(wwid, "eui.") && len(wwid) > 20):
		return wwid, "", ""
	case strings.HasPrefix(wwid, "naa.") || strings.HasPrefix(wwid, "eui."):
		h := strings.ToLower(wwid[4:])
		if len(h) == 32 {
			return "0x" + h[:16], "0x" + h, "0x" + h[16:]
		}
		return "0x" + h, "0x" + h, ""
	}
	return "", "", ""
}

// EraseTarget is what disk's erase needs to know about d.
func (d Disk) EraseTarget() disk.Target {
	return disk.Target{Path: d.Name, Serial: deref(d.Serial), Model: deref(d.Model), Size: d.Size, ReadOnly: d.ReadOnly}
}
