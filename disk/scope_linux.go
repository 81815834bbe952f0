package disk

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// Scope is the set of block devices goipa may write or erase: in the
// ramdisk every disk of the machine, on an operator's host
// (`goipa agent` with goipa-devices) only the devices named and their
// partitions. Every command that writes or erases asks Check about each
// device before it touches it, so no path a request names, no disk a
// step picks by itself and no array built on a disk outside the set is
// ever written. The zero Scope allows nothing.
type Scope struct {
	all     bool
	devices []string
	sysRoot string // "/" unless a test points sysfs elsewhere
}

// WholeMachine is the ramdisk's scope: goipa owns every disk.
func WholeMachine() Scope { return Scope{all: true} }

// Only limits goipa to devices (goipa-devices), their partitions and
// arrays whose members all lie on them. No devices allows nothing.
func Only(devices []string) Scope { return Scope{devices: devices} }

// ScopeFor is the scope of an agent: the devices goipa-devices names
// when it names any, else the whole machine when goipa owns it (the
// ramdisk, or goipa-power=system), else nothing (a host agent without
// goipa-devices).
func ScopeFor(devices []string, ownsMachine bool) Scope {
	switch {
	case len(devices) > 0:
		return Only(devices)
	case ownsMachine:
		return WholeMachine()
	}
	return Scope{}
}

// ErrNoDevices: a host agent without goipa-devices never writes a disk.
var ErrNoDevices = errors.New("goipa agent refuses to erase or write disks on this host without goipa-devices naming the devices it may use")

// OutsideError: a device is not in the scope; Reason says why.
type OutsideError struct {
	Device, Reason string
	Allowed        []string
}

func (e *OutsideError) Error() string {
	return fmt.Sprintf("refusing to write %s: %s; goipa-devices allows only %s and their partitions", e.Device, e.Reason, strings.Join(e.Allowed, ", "))
}

// MultipathPathError: dev is one path of a dm-multipath map. A map and
// its paths are one logical unit; goipa writes the map, never a path
// (a write through one path bypasses the map's failover, and the map
// may have cached what the write changes).
type MultipathPathError struct {
	Device, Map, WWID string
}

func (e *MultipathPathError) Error() string {
	return fmt.Sprintf("refusing to write %s: it is a path of multipath map %s (WWID %s); write %s instead", e.Device, e.Map, e.WWID, e.Map)
}

// Check returns nil when dev may be written: it is, or is a partition
// of, an allowed device, or a device-mapper/md device (or a partition of
// one) whose members all are, or is a path goipa-devices names as it
// is. A dm-multipath map and its paths count as one device: naming any
// of them allows the map. Anything else is an *OutsideError (or
// ErrNoDevices); a path that is not a block device is refused too, and
// a path of a multipath map always (*MultipathPathError).
func (s Scope) Check(dev string) error {
	if k, err := s.kernelName(dev); err == nil {
		if m := s.mapOfPath(k); m != "" {
			w, _ := MultipathWWIDOf(s.sys(""), m)
			return &MultipathPathError{Device: dev, Map: "/dev/" + m, WWID: w}
		}
	}
	if s.all {
		return nil
	}
	if len(s.devices) == 0 {
		return ErrNoDevices
	}
	for _, d := range s.devices {
		if filepath.Clean(d) == filepath.Clean(dev) {
			return nil // named by the operator, whatever it is (a disk image file too)
		}
	}
	allowed := map[string]bool{}
	for _, d := range s.devices {
		if k, err := s.kernelName(d); err == nil {
			allowed[k] = true
			// One logical unit: a path named allows its map.
			if m := s.mapOfPath(k); m != "" {
				allowed[m] = true
			}
		}
	}
	k, err := s.kernelName(dev)
	if err != nil {
		return &OutsideError{Device: dev, Reason: err.Error(), Allowed: s.devices}
	}
	if reason := s.outside(k, allowed, 0); reason != "" {
		return &OutsideError{Device: dev, Reason: reason, Allowed: s.devices}
	}
	return nil
}

func (s Scope) sys(p string) string {
	root := s.sysRoot
	if root == "" {
		root = "/"
	}
	return filepath.Join(root, "sys", p)
}

// mapOfPath returns the dm-multipath map kernel device k is a path of,
// or whose path partition k lies on; "" when none.
func (s Scope) mapOfPath(k string) string {
	if m := MultipathMapOf(s.sys(""), k); m != "" {
		return m
	}
	if _, err := os.Stat(s.sys("class/block/" + k + "/partition")); err != nil {
		return ""
	}
	real, err := filepath.EvalSymlinks(s.sys("class/block/" + k))
	if err != nil {
		return ""
	}
	return MultipathMapOf(s.sys(""), filepath.Base(filepath.Dir(real)))
}

// kernelName is the sysfs name of the block device at path dev (through
// its device number, so symlinks and odd paths resolve to what the
// kernel will write).
func (s Scope) kernelName(dev string) (string, error) {
	var st unix.Stat_t
	if err := unix.Stat(dev, &st); err != nil {
		return "", fmt.Errorf("%s: %w", dev, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFBLK {
		return "", fmt.Errorf("%s is not a block device", dev)
	}
	link, err := os.Readlink(s.sys(fmt.Sprintf("dev/block/%d:%d", unix.Major(st.Rdev), unix.Minor(st.Rdev))))
	if err != nil {
		return "", fmt.Errorf("%s: no sysfs entry: %w", dev, err)
	}
	return filepath.Base(link), nil
}

// outside says why kernel device k is not allowed ("" when it is): it
// is allowed itself, a partition of an allowed device, or built
// (dm, md) only on allowed devices.
func (s Scope) outside(k string, allowed map[string]bool, depth int) string {
	if allowed[k] {
		return ""
	}
	if depth > 8 {
		return "its stack of devices is too deep"
	}
	if _, err := os.Stat(s.sys("class/block/" + k + "/partition")); err == nil {
		real, err := filepath.EvalSymlinks(s.sys("class/block/" + k))
		if err != nil {
			return fmt.Sprintf("the disk of partition %s is unknown: %v", k, err)
		}
		parent := filepath.Base(filepath.Dir(real))
		if r := s.outside(parent, allowed, depth+1); r != "" {
			return fmt.Sprintf("it is a partition of %s, and %s", parent, r)
		}
		return ""
	}
	slaves, _ := os.ReadDir(s.sys("class/block/" + k + "/slaves"))
	if len(slaves) == 0 {
		return fmt.Sprintf("%s is not in goipa-devices", k)
	}
	for _, sl := range slaves {
		if r := s.outside(sl.Name(), allowed, depth+1); r != "" {
			return fmt.Sprintf("%s is built on %s, and %s", k, sl.Name(), r)
		}
	}
	return ""
}
