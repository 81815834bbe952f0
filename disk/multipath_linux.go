package disk

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// MultipathMap is a dm-multipath map: /dev/dm-N over its paths.
type MultipathMap struct {
	Device string // /dev/dm-N
	Name   string // the device-mapper name: the WWID
	WWID   string
	Paths  []string // /dev/sdX, in name order
}

// MultipathMapOf returns the kernel name of the dm-multipath map that
// kernel device k is a path of ("dm-0"), or "" when it is none. sys is
// the sysfs mount ("/sys", or a copy in tests).
func MultipathMapOf(sys, k string) string {
	holders, _ := os.ReadDir(blockDir(sys, k, "holders"))
	for _, h := range holders {
		if _, ok := MultipathWWIDOf(sys, h.Name()); ok {
			return h.Name()
		}
	}
	return ""
}

// blockDir is a file of block device k in sysfs: class/block has
// partitions too, block (all a saved snapshot may have) whole devices.
func blockDir(sys, k, file string) string {
	p := filepath.Join(sys, "class/block", k)
	if _, err := os.Stat(p); err != nil {
		p = filepath.Join(sys, "block", k)
	}
	return filepath.Join(p, file)
}

// MultipathWWIDOf returns the WWID of kernel device k when it is a
// dm-multipath map.
func MultipathWWIDOf(sys, k string) (string, bool) {
	if !strings.HasPrefix(k, "dm-") {
		return "", false
	}
	b, err := os.ReadFile(blockDir(sys, k, "dm/uuid"))
	if err != nil {
		return "", false
	}
	return MultipathWWIDFromUUID(strings.TrimSpace(string(b)))
}

// MultipathPaths lists the kernel names of the paths of map k (its
// slaves), in name order.
func MultipathPaths(sys, k string) []string {
	es, _ := os.ReadDir(blockDir(sys, k, "slaves"))
	var out []string
	for _, e := range es {
		out = append(out, e.Name())
	}
	slices.SortFunc(out, func(a, b string) int {
		if lessKernelName(a, b) {
			return -1
		}
		if a == b {
			return 0
		}
		return 1
	})
	return out
}

// pathSettle is how long the set of SCSI disks must stay the same
// before the paths are grouped: the HBAs' asynchronous scans add a LUN's
// second path after its first.
const (
	pathSettle    = 750 * time.Millisecond
	pathSettleMax = 15 * time.Second
)

// AssembleMultipath makes a dm-multipath map for every logical unit the
// machine reaches through two SCSI disks or more (the same WWID, read
// from VPD page 0x83 or the kernel's wwid), as multipathd would at boot
// with its defaults, after waiting for the SCSI scans to settle. Maps
// that already exist are kept. The device-mapper modules (dm_mod,
// dm_multipath, dm_service_time) must be loaded. A group that cannot
// be made (a path in use, differing sizes) is skipped and named in the
// error; the others are still made.
func AssembleMultipath(ctx context.Context, log *slog.Logger) ([]MultipathMap, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := settleSCSIDisks(ctx); err != nil {
		return nil, err
	}
	const sys = "/sys"
	existing := map[string]bool{}
	blocks, _ := os.ReadDir(filepath.Join(sys, "block"))
	var paths []MultipathPath
	for _, e := range blocks {
		k := e.Name()
		if w, ok := MultipathWWIDOf(sys, k); ok {
			existing[w] = true
			continue
		}
		p, ok := scsiPath(sys, k)
		if ok {
			paths = append(paths, p)
		}
	}
	groups := GroupByWWID(paths)
	if len(groups) == 0 {
		return nil, nil
	}
	ctl, err := openDMControl()
	if err != nil {
		return nil, err
	}
	defer ctl.Close()
	var maps []MultipathMap
	var errs []error
	for _, g := range groups {
		if existing[g.WWID] {
			continue
		}
		m, err := assembleMap(ctx, ctl, sys, g)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		log.Info("multipath map assembled", "device", m.Device, "wwid", m.WWID, "paths", m.Paths)
		maps = append(maps, m)
	}
	return maps, errors.Join(errs...)
}

// scsiPath reads a whole SCSI disk's WWID; ok is false for anything
// that is not a candidate path (not SCSI, empty, already held by a map
// or an array).
func scsiPath(sys, k string) (MultipathPath, bool) {
	dir := filepath.Join(sys, "block", k)
	if _, err := os.Stat(filepath.Join(dir, "device/scsi_disk")); err != nil {
		return MultipathPath{}, false // not a SCSI disk (sr, vd, nvme, loop, md, dm)
	}
	// USB and SATA disks have one port: two of them with one WWID are
	// two disks with a bogus identifier, never two paths to one.
	if link, err := os.Readlink(dir); err == nil && (strings.Contains(link, "/usb") || strings.Contains(link, "/ata")) {
		return MultipathPath{}, false
	}
	if hs, _ := os.ReadDir(filepath.Join(dir, "holders")); len(hs) > 0 {
		return MultipathPath{}, false
	}
	if s, _ := os.ReadFile(filepath.Join(dir, "size")); strings.TrimSpace(string(s)) == "0" {
		return MultipathPath{}, false
	}
	devno, err := os.ReadFile(filepath.Join(dir, "dev"))
	if err != nil {
		return MultipathPath{}, false
	}
	p := MultipathPath{Name: k, DevNo: strings.TrimSpace(string(devno))}
	if pg, err := os.ReadFile(filepath.Join(dir, "device/vpd_pg83")); err == nil {
		p.WWID, _ = ParseVPD83(pg)
	}
	if p.WWID == "" {
		if w, err := os.ReadFile(filepath.Join(dir, "device/wwid")); err == nil {
			p.WWID = WWIDFromSysfs(string(w))
		}
	}
	return p, p.WWID != ""
}

// settleSCSIDisks waits until the set of SCSI disks has stayed the same
// for pathSettle (at most pathSettleMax). Without SCSI hosts there is
// nothing to wait for.
func settleSCSIDisks(ctx context.Context) error {
	if hosts, _ := os.ReadDir("/sys/class/scsi_host"); len(hosts) == 0 {
		return nil
	}
	list := func() string {
		ds, _ := filepath.Glob("/sys/block/*/device/scsi_disk")
		return strings.Join(ds, " ")
	}
	deadline := time.Now().Add(pathSettleMax)
	last, since := list(), time.Now()
	for time.Since(since) < pathSettle && time.Now().Before(deadline) {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		if now := list(); now != last {
			last, since = now, time.Now()
		}
	}
	return nil
}

func assembleMap(ctx context.Context, ctl *dmControl, sys string, g MultipathGroup) (MultipathMap, error) {
	var sectors uint64
	var devnos, names []string
	for _, p := range g.Paths {
		b, err := os.ReadFile(filepath.Join(sys, "block", p.Name, "size"))
		if err != nil {
			return MultipathMap{}, fmt.Errorf("multipath %s: %s: %w", g.WWID, p.Name, err)
		}
		n, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
		if err != nil {
			return MultipathMap{}, fmt.Errorf("multipath %s: size of %s: %w", g.WWID, p.Name, err)
		}
		if sectors != 0 && n != sectors {
			return MultipathMap{}, fmt.Errorf("multipath %s: paths %s disagree on the size (%d and %d sectors): not one logical unit", g.WWID, strings.Join(names, ","), sectors, n)
		}
		sectors = n
		devnos = append(devnos, p.DevNo)
		names = append(names, p.Name)
	}
	typ, params, err := MultipathTable(sectors, devnos)
	if err != nil {
		return MultipathMap{}, fmt.Errorf("multipath %s: %w", g.WWID, err)
	}
	name := g.WWID
	dev, err := ctl.create(name, MultipathUUIDPrefix+g.WWID)
	if err != nil {
		return MultipathMap{}, err
	}
	if err := ctl.load(name, []dmTarget{{Length: sectors, Type: typ, Params: params}}); err != nil {
		ctl.remove(name)
		return MultipathMap{}, fmt.Errorf("%w (table %q)", err, params)
	}
	if err := ctl.resume(name); err != nil {
		ctl.remove(name)
		return MultipathMap{}, err
	}
	m := MultipathMap{Name: name, WWID: g.WWID}
	for _, n := range names {
		m.Paths = append(m.Paths, "/dev/"+n)
	}
	k, err := waitBlockNode(ctx, sys, unix.Major(dev), unix.Minor(dev))
	if err != nil {
		return m, fmt.Errorf("multipath %s: %w", g.WWID, err)
	}
	m.Device = "/dev/" + k
	// What libdevmapper makes for operators at the console.
	if err := os.MkdirAll("/dev/mapper", 0o755); err == nil {
		os.Symlink("../"+k, filepath.Join("/dev/mapper", name))
	}
	return m, nil
}

// waitBlockNode waits (bounded) for sysfs and devtmpfs to show the block
// device with this number, and returns its kernel name.
func waitBlockNode(ctx context.Context, sys string, major, minor uint32) (string, error) {
	deadline := time.Now().Add(5 * time.Second)
	for {
		if link, err := os.Readlink(filepath.Join(sys, fmt.Sprintf("dev/block/%d:%d", major, minor))); err == nil {
			k := filepath.Base(link)
			var st unix.Stat_t
			if err := unix.Stat("/dev/"+k, &st); err == nil && st.Rdev == unix.Mkdev(major, minor) {
				return k, nil
			}
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("no device node for %d:%d", major, minor)
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}
