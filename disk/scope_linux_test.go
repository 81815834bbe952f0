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

// TestScopeMultipath: a dm-multipath map (dm-1 over sdc and sdd, uuid
// mpath-...) and its paths are one device: a path, or a partition left
// on one, is never written (mapOfPath names the map), and a scope that
// names one path allows the map, whose other path it does not name.
func TestScopeMultipath(t *testing.T) {
	root := fakeSysfs(t)
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
	for _, p := range []string{"sdc", "sdd"} {
		dir := "sys/devices/pci0000:00/0000:00:05.0/host0/target0:0:0/0:0:0:0/block/" + p
		if p == "sdd" {
			dir = "sys/devices/pci0000:00/0000:00:06.0/host1/target1:0:0/1:0:0:0/block/" + p
		}
		mk(dir + "/holders")
		link("../../"+strings.TrimPrefix(dir, "sys/"), "sys/class/block/"+p)
		link("../../../../../../../../../devices/virtual/block/dm-1", dir+"/holders/dm-1")
		if p == "sdc" {
			mk(dir + "/sdc1")
			os.WriteFile(filepath.Join(root, dir, "sdc1/partition"), []byte("1\n"), 0o644)
			link("../../"+strings.TrimPrefix(dir, "sys/")+"/sdc1", "sys/class/block/sdc1")
		}
	}
	mk("sys/devices/virtual/block/dm-1/dm")
	mk("sys/devices/virtual/block/dm-1/slaves")
	link("../../devices/virtual/block/dm-1", "sys/class/block/dm-1")
	os.WriteFile(filepath.Join(root, "sys/devices/virtual/block/dm-1/dm/uuid"), []byte("mpath-35000c500a1b2c3d4\n"), 0o644)
	for _, p := range []string{"sdc", "sdd"} {
		link("../../../../../class/block/"+p, "sys/devices/virtual/block/dm-1/slaves/"+p)
	}
	// dm-0 (on md1) is device-mapper but no multipath map.
	mk("sys/devices/virtual/block/dm-0/dm")
	os.WriteFile(filepath.Join(root, "sys/devices/virtual/block/dm-0/dm/uuid"), []byte("LVM-abc\n"), 0o644)

	s := Scope{devices: []string{"/dev/sdc"}, sysRoot: root}
	for k, want := range map[string]string{"sdc": "dm-1", "sdd": "dm-1", "sdc1": "dm-1", "dm-1": "", "dm-0": "", "md1": "", "loop0p1": "", "vda": ""} {
		if got := s.mapOfPath(k); got != want {
			t.Errorf("mapOfPath(%s) = %q, want %q", k, got, want)
		}
	}
	if w, ok := MultipathWWIDOf(filepath.Join(root, "sys"), "dm-1"); !ok || w != "35000c500a1b2c3d4" {
		t.Errorf("MultipathWWIDOf(dm-1) = %q, %v", w, ok)
	}
	if got := MultipathPaths(filepath.Join(root, "sys"), "dm-1"); strings.Join(got, ",") != "sdc,sdd" {
		t.Errorf("MultipathPaths(dm-1) = %v", got)
	}
	// What Check builds from goipa-devices=/dev/sdc: sdc and its map.
	allowed := map[string]bool{"sdc": true, s.mapOfPath("sdc"): true}
	if r := s.outside("dm-1", allowed, 0); r != "" {
		t.Errorf("the map of a named path is refused: %s", r)
	}
	if r := s.outside("dm-0", allowed, 0); r == "" {
		t.Error("dm-0 (on md1, not named) is allowed")
	}
	if err := (&MultipathPathError{Device: "/dev/sdd", Map: "/dev/dm-1", WWID: "35000c500a1b2c3d4"}).Error(); !strings.Contains(err, "path of multipath map /dev/dm-1") {
		t.Errorf("error text %q", err)
	}
}

// TestSCSIPathCandidates: what AssembleMultipath groups. A SCSI disk's
// WWID comes from its VPD page 0x83, else the kernel's wwid; disks that
// are not SCSI, are held already (a map, an array), are empty, or sit
// behind USB or libata (single-ported) are no candidates.
func TestSCSIPathCandidates(t *testing.T) {
	sys := filepath.Join(t.TempDir(), "sys")
	dev := func(k, parent string, files map[string]string) {
		t.Helper()
		dir := filepath.Join(sys, "devices", parent, k)
		for f, v := range files {
			os.MkdirAll(filepath.Dir(filepath.Join(dir, f)), 0o755)
			os.WriteFile(filepath.Join(dir, f), []byte(v), 0o644)
		}
		os.MkdirAll(filepath.Join(sys, "block"), 0o755)
		if err := os.Symlink("../devices/"+parent+"/"+k, filepath.Join(sys, "block", k)); err != nil {
			t.Fatal(err)
		}
	}
	pg83 := string(vpd83(designator(0, 0x3, []byte{0x50, 0x00, 0xc5, 0x00, 0xa1, 0xb2, 0xc3, 0xd4})))
	scsi := func(extra map[string]string) map[string]string {
		m := map[string]string{"size": "524288\n", "dev": "8:0\n", "device/scsi_disk/0:0:0:0/.keep": ""}
		for k, v := range extra {
			m[k] = v
		}
		return m
	}
	dev("sda", "pci0000:00/0000:00:05.0/virtio2/host0/target0:0:0/0:0:0:0/block", scsi(map[string]string{"device/vpd_pg83": pg83}))
	dev("sdb", "pci0000:00/0000:00:06.0/virtio3/host1/target1:0:0/1:0:0:0/block", scsi(map[string]string{"device/wwid": "naa.5000c500a1b2c3d4\n"}))
	dev("sdc", "pci0000:00/0000:00:07.0/host2/target2:0:0/2:0:0:0/block", scsi(map[string]string{"device/wwid": "naa.5000c500a1b2c3d4\n", "holders/md0/.keep": ""}))
	dev("sdd", "pci0000:00/0000:00:1f.2/ata1/host3/target3:0:0/3:0:0:0/block", scsi(map[string]string{"device/wwid": "naa.5000c500a1b2c3d4\n"}))
	dev("sde", "pci0000:00/0000:00:14.0/usb2/2-1/2-1:1.0/host4/target4:0:0/4:0:0:0/block", scsi(map[string]string{"device/wwid": "naa.5000c500a1b2c3d4\n"}))
	dev("sdf", "pci0000:00/0000:00:08.0/host5/target5:0:0/5:0:0:0/block", scsi(map[string]string{"device/wwid": "naa.5000c500a1b2c3d4\n", "size": "0\n"}))
	dev("vda", "pci0000:00/0000:00:04.0/virtio1/block", map[string]string{"size": "8\n", "dev": "253:0\n"})
	var got []string
	for _, k := range []string{"sda", "sdb", "sdc", "sdd", "sde", "sdf", "vda"} {
		if p, ok := scsiPath(sys, k); ok {
			got = append(got, p.Name+"="+p.WWID)
		}
	}
	if want := "sda=35000c500a1b2c3d4 sdb=35000c500a1b2c3d4"; strings.Join(got, " ") != want {
		t.Errorf("candidates %v, want %s", got, want)
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
