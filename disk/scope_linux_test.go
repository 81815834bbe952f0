package disk

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fakeSysfs records the parts of sysfs Scope reads, for a host with
// loop0 and loop1 (each with a partition), vda, md0 on loop0p1+vda1, md1
// on loop0p1+loop1p1 (with a partition md1p1) and dm-0 on md1.
func fakeSysfs(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	mk := func(p string) {
		if err := os.MkdirAll(filepath.Join(root, p), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	link := func(target, name string) {
		if err := os.Symlink(target, filepath.Join(root, name)); err != nil {
			t.Fatal(err)
		}
	}
	mk("sys/class/block")
	disk := func(name, devdir string, parts ...string) {
		mk("sys/devices/" + devdir + "/" + name)
		link("../../devices/"+devdir+"/"+name, "sys/class/block/"+name)
		for _, p := range parts {
			mk("sys/devices/" + devdir + "/" + name + "/" + p)
			os.WriteFile(filepath.Join(root, "sys/devices", devdir, name, p, "partition"), []byte("1\n"), 0o644)
			link("../../devices/"+devdir+"/"+name+"/"+p, "sys/class/block/"+p)
		}
	}
	disk("loop0", "virtual/block", "loop0p1")
	disk("loop1", "virtual/block", "loop1p1")
	disk("vda", "pci0000:00/0000:00:04.0/virtio1/block", "vda1")
	disk("md0", "virtual/block")
	disk("md1", "virtual/block", "md1p1")
	disk("dm-0", "virtual/block")
	slaves := map[string][]string{"md0": {"loop0p1", "vda1"}, "md1": {"loop0p1", "loop1p1"}, "dm-0": {"md1"}}
	for k, ss := range slaves {
		mk("sys/devices/virtual/block/" + k + "/slaves")
		for _, s := range ss {
			link("../../../../../class/block/"+s, "sys/devices/virtual/block/"+k+"/slaves/"+s)
		}
	}
	return root
}

func TestScopeOutside(t *testing.T) {
	s := Scope{devices: []string{"/dev/loop0", "/dev/loop1"}, sysRoot: fakeSysfs(t)}
	allowed := map[string]bool{"loop0": true, "loop1": true}
	for _, tc := range []struct {
		kname, want string // want: "" allowed, else a piece of the reason
	}{
		{"loop0", ""},
		{"loop0p1", ""},
		{"loop1p1", ""},
		{"md1", ""},   // every member on allowed disks
		{"md1p1", ""}, // a partition of such an array
		{"dm-0", ""},  // dm on md1
		{"vda", "vda is not in goipa-devices"},
		{"vda1", "partition of vda"},
		{"md0", "md0 is built on vda1"}, // one member outside
		{"loop7", "loop7 is not in goipa-devices"},
	} {
		t.Run(tc.kname, func(t *testing.T) {
			got := s.outside(tc.kname, allowed, 0)
			switch {
			case tc.want == "" && got != "":
				t.Errorf("%s refused: %s", tc.kname, got)
			case tc.want != "" && !strings.Contains(got, tc.want):
				t.Errorf("%s: reason %q, want it to say %q", tc.kname, got, tc.want)
			}
		})
	}
}

// TestScopeCheck: the zero scope and a host scope without devices allow
// nothing; the ramdisk's allows everything; a path that is not a block
// device is refused by a host scope unless goipa-devices names it.
func TestScopeCheck(t *testing.T) {
	if err := (Scope{}).Check("/dev/loop0"); !errors.Is(err, ErrNoDevices) {
		t.Errorf("zero scope: %v, want ErrNoDevices", err)
	}
	if err := Only(nil).Check("/dev/loop0"); !errors.Is(err, ErrNoDevices) {
		t.Errorf("Only(nil): %v, want ErrNoDevices", err)
	}
	if err := WholeMachine().Check("/dev/vda"); err != nil {
		t.Errorf("WholeMachine: %v", err)
	}
	file := filepath.Join(t.TempDir(), "plain")
	os.WriteFile(file, nil, 0o644)
	if err := Only([]string{file}).Check(file); err != nil {
		t.Errorf("a file goipa-devices names: %v", err)
	}
	var out *OutsideError
	if err := Only([]string{file}).Check(file + "2"); !errors.As(err, &out) {
		t.Errorf("a file goipa-devices does not name: %v, want *OutsideError", err)
	}
	other := filepath.Join(t.TempDir(), "other")
	os.WriteFile(other, nil, 0o644)
	if err := Only([]string{file}).Check(other); !errors.As(err, &out) || !strings.Contains(err.Error(), "not a block device") {
		t.Errorf("another plain file: %v, want *OutsideError saying it is not a block device", err)
	}
}

// TestScopeFor: goipa-devices wins; without it the ramdisk owns every
// disk and a host agent none.
func TestScopeFor(t *testing.T) {
	for _, tc := range []struct {
		name        string
		devices     []string
		ownsMachine bool
		want        Scope
	}{
		{"goipa-devices on a host", []string{"/dev/loop0"}, false, Only([]string{"/dev/loop0"})},
		{"goipa-devices in the ramdisk", []string{"/dev/loop0"}, true, Only([]string{"/dev/loop0"})},
		{"the ramdisk", nil, true, WholeMachine()},
		{"a host without goipa-devices", nil, false, Scope{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := ScopeFor(tc.devices, tc.ownsMachine)
			if got.all != tc.want.all || strings.Join(got.devices, ",") != strings.Join(tc.want.devices, ",") {
				t.Errorf("ScopeFor(%v, %v) = %+v, want %+v", tc.devices, tc.ownsMachine, got, tc.want)
			}
		})
	}
}
