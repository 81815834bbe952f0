package disk

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// InUseError says why a device may not be written.
type InUseError struct {
	Device string
	Reason string
}

func (e *InUseError) Error() string {
	return fmt.Sprintf("refusing to write %s: %s", e.Device, e.Reason)
}

// members returns the kernel names and device numbers ("M:m") of dev,
// its partitions and whatever is stacked on them (holders).
func members(dev string) (kname string, devnos map[string]string, err error) {
	real, err := filepath.EvalSymlinks(dev)
	if err != nil {
		return "", nil, err
	}
	kname = filepath.Base(real)
	sys := filepath.Join("/sys/class/block", kname)
	if _, err := os.Stat(sys); err != nil {
		return "", nil, fmt.Errorf("%s is not a block device", dev)
	}
	devnos = map[string]string{}
	var walk func(name string, depth int)
	walk = func(name string, depth int) {
		if depth > 8 {
			return
		}
		dir := filepath.Join("/sys/class/block", name)
		if b, err := os.ReadFile(filepath.Join(dir, "dev")); err == nil {
			devnos[strings.TrimSpace(string(b))] = name
		}
		entries, _ := os.ReadDir(dir)
		for _, e := range entries {
			if strings.HasPrefix(e.Name(), name) && e.Name() != name {
				if _, err := os.Stat(filepath.Join(dir, e.Name(), "partition")); err == nil {
					walk(e.Name(), depth+1)
				}
			}
		}
		holders, _ := os.ReadDir(filepath.Join(dir, "holders"))
		for _, h := range holders {
			walk(h.Name(), depth+1)
		}
	}
	walk(kname, 0)
	return kname, devnos, nil
}

// CheckSafe refuses a device when it, a partition of it, or a device
// stacked on it holds a mounted filesystem (the agent's own included) or
// active swap, and a path of a dm-multipath map (the map is written
// instead). Every writer calls it first.
func CheckSafe(ctx context.Context, dev string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	kname, devnos, err := members(dev)
	if err != nil {
		return &InUseError{Device: dev, Reason: err.Error()}
	}
	if m := MultipathMapOf("/sys", kname); m != "" {
		w, _ := MultipathWWIDOf("/sys", m)
		return &InUseError{Device: dev, Reason: fmt.Sprintf("it is a path of multipath map /dev/%s (WWID %s): goipa writes the map, never one of its paths", m, w)}
	}
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return &InUseError{Device: dev, Reason: "cannot read the mount table: " + err.Error()}
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 {
			continue
		}
		if name, ok := devnos[fields[2]]; ok {
			return &InUseError{Device: dev, Reason: fmt.Sprintf("/dev/%s is mounted on %s", name, fields[4])}
		}
	}
	if b, err := os.ReadFile("/proc/swaps"); err == nil {
		for _, line := range strings.Split(string(b), "\n")[1:] {
			fs := strings.Fields(line)
			if len(fs) == 0 {
				continue
			}
			for _, name := range devnos {
				if filepath.Base(fs[0]) == name {
					return &InUseError{Device: dev, Reason: fmt.Sprintf("/dev/%s is active swap", name)}
				}
			}
		}
	}
	return nil
}

// ProtectedError says a device holds a filesystem IPA never erases
// without being told to (wipe_special_filesystems): a cluster filesystem
// another host may still use.
type ProtectedError struct {
	Device, What string
}

func (e *ProtectedError) Error() string {
	return fmt.Sprintf("%s holds %s, which goipa does not erase unless driver_internal_info.wipe_special_filesystems is false", e.Device, e.What)
}

var protectedTypes = map[string]string{
	"37AFFC90-EF7D-4E96-91C3-2D7AE055B174": "an IBM GPFS partition",
	"AA31E02A-400F-11DB-9590-000C2911D1B8": "a VMware VMFS partition",
}

// CheckSpecialFilesystems refuses devices holding GPFS or VMFS partitions
// or a gfs2 filesystem (spec 5.3).
func CheckSpecialFilesystems(dev string) error {
	f, err := os.Open(dev)
	if err != nil {
		return err
	}
	defer f.Close()
	head := make([]byte, 34*512+128*128)
	n, _ := f.ReadAt(head, 0)
	tab, _ := ParseTable(head[:n], 512)
	for _, p := range tab.Partitions {
		if what, ok := protectedTypes[p.TypeGUID]; ok {
			return &ProtectedError{Device: dev, What: what}
		}
		if p.MBRType == 0xfb {
			return &ProtectedError{Device: dev, What: "a VMware VMFS partition"}
		}
	}
	// gfs2's superblock sits at 64 KiB, magic 0x01161970 big-endian.
	var magic [4]byte
	if _, err := f.ReadAt(magic[:], 64<<10); err == nil && magic == [4]byte{0x01, 0x16, 0x19, 0x70} {
		return &ProtectedError{Device: dev, What: "a gfs2 filesystem"}
	}
	return nil
}
