package logbundle

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/goipa/goipa/disk"
)

// blockDev is one block device as lsblk shows it, read from sysfs and,
// for its signatures, from the device itself (read-only).
type blockDev struct {
	Name, Type, MajMin, Model, Vendor, Serial, WWN, Tran, HCTL string
	Size                                                       int64 // bytes
	Rota, RO, RM                                               bool
	LogSec, PhySec                                             int
	FSType, UUID, Label                                        string
	PTType, PartUUID, PartType, PartLabel                      string
	MountPoint, Parent                                         string
	Children                                                   []*blockDev
	DMName, DMUUID                                             string
	Slaves                                                     []string
}

func readTrim(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

func readInt(path string) int64 {
	n, _ := strconv.ParseInt(readTrim(path), 10, 64)
	return n
}

func names(dir string) []string {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	sort.Strings(out)
	return out
}

// transport is lsblk's TRAN, told from the device's sysfs path.
func transport(devpath string) string {
	switch {
	case strings.Contains(devpath, "/nvme"):
		return "nvme"
	case strings.Contains(devpath, "/usb"):
		return "usb"
	case strings.Contains(devpath, "/rport-"):
		return "fc"
	case strings.Contains(devpath, "/session"):
		return "iscsi"
	case strings.Contains(devpath, "/end_device-") || strings.Contains(devpath, "/sas_"):
		return "sas"
	case strings.Contains(devpath, "/ata"):
		return "sata"
	}
	return ""
}

// parseMountInfo maps "major:minor" to the first mount point of that
// device, from /proc/self/mountinfo.
func parseMountInfo(data []byte) map[string]string {
	out := map[string]string{}
	for _, l := range strings.Split(string(data), "\n") {
		f := strings.Fields(l)
		if len(f) < 5 {
			continue
		}
		if _, ok := out[f[2]]; !ok {
			out[f[2]] = unescapeMount(f[4])
		}
	}
	return out
}

// blockTree is readBlockTree once per Collect: four members show the
// same devices, and each read probes every device's signatures.
func (c *Collector) blockTree() ([]*blockDev, map[string]*blockDev, error) {
	c.blockMu.Lock()
	defer c.blockMu.Unlock()
	if c.block == nil {
		order, all, err := c.readBlockTree()
		c.block = &blockSnapshot{order, all, err}
	}
	return c.block.order, c.block.all, c.block.err
}

type blockSnapshot struct {
	order []*blockDev
	all   map[string]*blockDev
	err   error
}

// readBlockTree reads every block device of /sys/block with its
// partitions and, under each, the md and dm devices it holds.
func (c *Collector) readBlockTree() ([]*blockDev, map[string]*blockDev, error) {
	disks := names(filepath.Join(c.sys, "block"))
	if disks == nil {
		if _, err := os.Stat(filepath.Join(c.sys, "block")); err != nil {
			return nil, nil, err
		}
	}
	mounts := map[string]string{}
	if b, err := os.ReadFile(filepath.Join(c.proc, "self/mountinfo")); err == nil {
		mounts = parseMountInfo(b)
	}
	all := map[string]*blockDev{}
	var order []*blockDev
	for _, name := range disks {
		dir := filepath.Join(c.sys, "block", name)
		d := c.readDevice(dir, name, "", mounts)
		all[name] = d
		order = append(order, d)
		var table *disk.Table
		for _, p := range names(dir) {
			if _, err := os.Stat(filepath.Join(dir, p, "partition")); err != nil {
				continue
			}
			if table == nil {
				t, _ := c.readTable(name)
				table = &t
				d.PTType = map[string]string{"gpt": "gpt", "mbr": "dos"}[t.Kind]
			}
			pd := c.readDevice(filepath.Join(dir, p), p, name, mounts)
			pd.Type = "part"
			pd.Tran, pd.Model, pd.Serial, pd.WWN, pd.HCTL, pd.Vendor = "", "", "", "", "", ""
			n := int(readInt(filepath.Join(dir, p, "partition")))
			for _, tp := range table.Partitions {
				if tp.Number != n {
					continue
				}
				if table.Kind == "gpt" {
					pd.PartUUID, pd.PartType = strings.ToLower(tp.UUID), strings.ToLower(tp.TypeGUID)
				} else {
					pd.PartUUID, pd.PartType = fmt.Sprintf("%08x-%02d", table.DiskSignature, n), fmt.Sprintf("0x%x", tp.MBRType)
				}
			}
			d.Children = append(d.Children, pd)
			all[p] = pd
		}
	}
	// md and dm devices hang under every device they are built from.
	for _, d := range order {
		for _, holder := range names(filepath.Join(c.sys, "block", d.Name, "holders")) {
			if h, ok := all[holder]; ok {
				d.Children = append(d.Children, h)
			}
		}
		for _, p := range d.Children {
			if p.Type != "part" {
				continue
			}
			for _, holder := range names(filepath.Join(c.sys, "block", d.Name, p.Name, "holders")) {
				if h, ok := all[holder]; ok {
					p.Children = append(p.Children, h)
				}
			}
		}
	}
	return order, all, nil
}

// readTable reads the partition table of /dev/<name>, read-only.
func (c *Collector) readTable(name string) (disk.Table, error) {
	return disk.ReadTable(filepath.Join(c.dev, name))
}

func (c *Collector) readDevice(dir, name, parent string, mounts map[string]string) *blockDev {
	d := &blockDev{Name: name, Parent: parent}
	d.MajMin = readTrim(filepath.Join(dir, "dev"))
	d.Size = readInt(filepath.Join(dir, "size")) * 512
	d.RO = readTrim(filepath.Join(dir, "ro")) == "1"
	d.RM = readTrim(filepath.Join(dir, "removable")) == "1"
	q := filepath.Join(dir, "queue")
	if parent != "" {
		q = filepath.Join(filepath.Dir(dir), "queue")
	}
	d.Rota = readTrim(filepath.Join(q, "rotational")) == "1"
	d.LogSec = int(readInt(filepath.Join(q, "logical_block_size")))
	d.PhySec = int(readInt(filepath.Join(q, "physical_block_size")))
	d.Model = readTrim(filepath.Join(dir, "device", "model"))
	d.Vendor = readTrim(filepath.Join(dir, "device", "vendor"))
	d.Serial = readTrim(filepath.Join(dir, "device", "serial"))
	d.WWN = readTrim(filepath.Join(dir, "wwid"))
	if d.WWN == "" {
		d.WWN = readTrim(filepath.Join(dir, "device", "wwid"))
	}
	if real, err := filepath.EvalSymlinks(filepath.Join(dir, "device")); err == nil {
		d.Tran = transport(real)
		if b := filepath.Base(real); strings.Count(b, ":") == 3 {
			d.HCTL = b
		}
	}
	d.DMName = readTrim(filepath.Join(dir, "dm", "name"))
	d.DMUUID = readTrim(filepath.Join(dir, "dm", "uuid"))
	d.Slaves = names(filepath.Join(dir, "slaves"))
	switch {
	case strings.HasPrefix(name, "loop"):
		d.Type = "loop"
	case strings.HasPrefix(name, "md"):
		d.Type = readTrim(filepath.Join(dir, "md", "level"))
		if d.Type == "" {
			d.Type = "md"
		}
	case strings.HasPrefix(name, "dm-"):
		d.Type = "dm"
		if _, ok := disk.MultipathWWIDFromUUID(d.DMUUID); ok {
			d.Type = "mpath"
		} else if uuid := strings.ToLower(d.DMUUID); strings.HasPrefix(uuid, "lvm-") {
			d.Type = "lvm"
		} else if strings.HasPrefix(uuid, "crypt-") {
			d.Type = "crypt"
		}
	case strings.HasPrefix(name, "sr"):
		d.Type = "rom"
	default:
		d.Type = "disk"
	}
	d.MountPoint = mounts[d.MajMin]
	// Signatures only of devices with a medium: opening an empty drive
	// or loop device can block or fail for nothing.
	if d.Size > 0 {
		if fs, err := disk.ProbeDevice(filepath.Join(c.dev, name)); err == nil {
			d.FSType, d.UUID, d.Label = fs.Type, fs.UUID, fs.Label
		}
	}
	return d
}

func yesNo(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

// humanSize is lsblk's SIZE without --bytes: one decimal in binary units.
func humanSize(n int64) string {
	const units = "BKMGTPE"
	f, u := float64(n), 0
	for f >= 1024 && u < len(units)-1 {
		f /= 1024
		u++
	}
	if u == 0 {
		return fmt.Sprintf("%dB", n)
	}
	s := strconv.FormatFloat(f, 'f', 1, 64)
	return strings.TrimSuffix(s, ".0") + units[u:u+1]
}

// lsblk is IPA's `lsblk --all -oKNAME,MODEL,SIZE,ROTA,TYPE,UUID,PARTUUID,
// SERIAL,WWN,LOG-SEC,PHY-SEC,TRAN`, drawn as lsblk's tree (partitions and
// the md/dm devices built on them under their disk) with the filesystem
// type and mount point added.
func (c *Collector) lsblk(context.Context) ([]byte, error) {
	order, _, err := c.blockTree()
	if err != nil {
		return nil, err
	}
	var b strings.Builder
	tw := tabwriter.NewWriter(&b, 0, 8, 1, ' ', 0)
	fmt.Fprintln(tw, "NAME\tKNAME\tMODEL\tSIZE\tROTA\tTYPE\tFSTYPE\tUUID\tPARTUUID\tSERIAL\tWWN\tLOG-SEC\tPHY-SEC\tTRAN\tMOUNTPOINT")
	var walk func(d *blockDev, prefix, branch string)
	walk = func(d *blockDev, prefix, branch string) {
		fmt.Fprintf(tw, "%s%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%d\t%s\t%s\n", prefix, branch+d.Name, d.Name, d.Model, humanSize(d.Size),
			yesNo(d.Rota), d.Type, d.FSType, d.UUID, d.PartUUID, d.Serial, d.WWN, d.LogSec, d.PhySec, d.Tran, d.MountPoint)
		next := prefix
		switch branch {
		case "├─":
			next += "│ "
		case "└─":
			next += "  "
		}
		for i, ch := range d.Children {
			br := "├─"
			if i == len(d.Children)-1 {
				br = "└─"
			}
			walk(ch, next, br)
		}
	}
	// Devices built on others (md, dm) appear under what they are built
	// from, as in lsblk's tree.
	for _, d := range order {
		if len(d.Slaves) == 0 {
			walk(d, "", "")
		}
	}
	tw.Flush()
	return []byte(b.String()), nil
}

// lsblkFull is IPA's `lsblk --all --bytes --output-all --pairs`: one
// line of KEY="value" pairs per device, for the columns goipa knows.
func (c *Collector) lsblkFull(context.Context) ([]byte, error) {
	order, _, err := c.blockTree()
	if err != nil {
		return nil, err
	}
	var b strings.Builder
	var line func(d *blockDev, pkname string)
	line = func(d *blockDev, pkname string) {
		kv := [][2]string{
			{"NAME", d.Name}, {"KNAME", d.Name}, {"PATH", filepath.Join("/dev", d.Name)}, {"MAJ:MIN", d.MajMin},
			{"FSTYPE", d.FSType}, {"MOUNTPOINT", d.MountPoint}, {"LABEL", d.Label}, {"UUID", d.UUID},
			{"PTTYPE", d.PTType}, {"PARTTYPE", d.PartType}, {"PARTUUID", d.PartUUID},
			{"RO", yesNo(d.RO)}, {"RM", yesNo(d.RM)}, {"MODEL", d.Model}, {"SERIAL", d.Serial},
			{"SIZE", strconv.FormatInt(d.Size, 10)}, {"ROTA", yesNo(d.Rota)}, {"TYPE", d.Type},
			{"LOG-SEC", strconv.Itoa(d.LogSec)}, {"PHY-SEC", strconv.Itoa(d.PhySec)},
			{"HCTL", d.HCTL}, {"TRAN", d.Tran}, {"VENDOR", d.Vendor}, {"WWN", d.WWN}, {"PKNAME", pkname},
		}
		for i, p := range kv {
			if i > 0 {
				b.WriteByte(' ')
			}
			fmt.Fprintf(&b, "%s=%s", p[0], strconv.Quote(p[1]))
		}
		b.WriteByte('\n')
		for _, ch := range d.Children {
			line(ch, d.Name)
		}
	}
	// In tree order, as lsblk: a device built on others follows each of
	// them, with that one as PKNAME.
	for _, d := range order {
		if len(d.Slaves) == 0 {
			line(d, "")
		}
	}
	return []byte(b.String()), nil
}

// multipath is `multipath -ll` read from sysfs: each dm-multipath map
// with its WWID, size and paths (H:C:T:L, name, major:minor and the SCSI
// device state). Other dm devices follow with their slaves.
func (c *Collector) multipath(context.Context) ([]byte, error) {
	order, all, err := c.blockTree()
	if err != nil {
		return nil, err
	}
	var b strings.Builder
	maps := 0
	for _, d := range order {
		if !strings.HasPrefix(d.Name, "dm-") {
			continue
		}
		if d.Type != "mpath" {
			fmt.Fprintf(&b, "# %s %s (uuid %q) on %s\n", d.Name, d.DMName, d.DMUUID, strings.Join(d.Slaves, ","))
			continue
		}
		maps++
		wwid, _ := disk.MultipathWWIDFromUUID(d.DMUUID)
		var vendor, model string
		for _, s := range d.Slaves {
			if p, ok := all[s]; ok && p.Model != "" {
				vendor, model = p.Vendor, p.Model
				break
			}
		}
		wp := "rw"
		if d.RO {
			wp = "ro"
		}
		fmt.Fprintf(&b, "%s (%s) %s %s,%s\nsize=%s wp=%s\n", d.DMName, wwid, d.Name, vendor, model, humanSize(d.Size), wp)
		for i, s := range d.Slaves {
			br := "|-"
			if i == len(d.Slaves)-1 {
				br = "`-"
			}
			p := all[s]
			if p == nil {
				fmt.Fprintf(&b, "  %s %s\n", br, s)
				continue
			}
			state := readTrim(filepath.Join(c.sys, "block", s, "device", "state"))
			fmt.Fprintf(&b, "  %s %s %s %s %s\n", br, p.HCTL, s, p.MajMin, state)
		}
	}
	if maps == 0 {
		b.WriteString("# no multipath maps\n")
	}
	return []byte(b.String()), nil
}

// parseUdevData reads a udev database entry (/run/udev/data/b<maj>:<min>):
// its E:KEY=VALUE lines are the device's properties.
func parseUdevData(data []byte, into map[string]string) {
	for _, l := range strings.Split(string(data), "\n") {
		if kv, ok := strings.CutPrefix(l, "E:"); ok {
			if k, v, ok := strings.Cut(kv, "="); ok && k != "" {
				into[k] = v
			}
		}
	}
}

// parseUevent reads a sysfs uevent file (KEY=VALUE lines).
func parseUevent(data []byte, into map[string]string) {
	for _, l := range strings.Split(string(data), "\n") {
		if k, v, ok := strings.Cut(l, "="); ok && k != "" {
			into[k] = v
		}
	}
}

// udev gives IPA's udev/<kname> members: each block device's udev
// properties as JSON, from the kernel's uevent and, where udev runs, its
// database. Devices without a medium are left out, as `lsblk -no KNAME`
// leaves them.
func (c *Collector) udev() ([]Member, error) {
	order, all, err := c.blockTree()
	if err != nil {
		return nil, err
	}
	var names []string
	for _, d := range order {
		if d.Size == 0 {
			continue
		}
		names = append(names, d.Name)
		for _, ch := range d.Children {
			if ch.Type == "part" {
				names = append(names, ch.Name)
			}
		}
	}
	var out []Member
	for _, n := range names {
		d := all[n]
		props := map[string]string{"SUBSYSTEM": "block"}
		dir := filepath.Join(c.sys, "block", n)
		if d.Parent != "" {
			dir = filepath.Join(c.sys, "block", d.Parent, n)
		}
		if b, err := os.ReadFile(filepath.Join(dir, "uevent")); err == nil {
			parseUevent(b, props)
		}
		if real, err := filepath.EvalSymlinks(dir); err == nil {
			if rel, err := filepath.Rel(c.sys, real); err == nil {
				props["DEVPATH"] = "/" + rel
			}
		}
		if dn := props["DEVNAME"]; dn != "" && !strings.HasPrefix(dn, "/") {
			props["DEVNAME"] = "/dev/" + dn
		}
		if d.MajMin != "" {
			if b, err := os.ReadFile(filepath.Join(c.run, "udev", "data", "b"+d.MajMin)); err == nil {
				parseUdevData(b, props)
			}
		}
		js, err := json.Marshal(props)
		if err != nil {
			return nil, err
		}
		out = append(out, Member{Name: "udev/" + n, Read: func(context.Context) ([]byte, error) { return js, nil }})
	}
	return out, nil
}
