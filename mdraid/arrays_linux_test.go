package mdraid

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// recordedSysfs is the part of sysfs Arrays and HolderDisk read, as on a
// host whose own disk vda carries md0 (vda1+vdb1) while goipa-devices
// names loop0 and loop1, which carry md1 (loop0p1+loop1p1); md2 mixes
// loop0p2 with the host's vda2, and md3 is a whole-disk array on loop1.
func recordedSysfs(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	w := func(p, s string) {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	link := func(target, name string) {
		full := filepath.Join(root, name)
		os.MkdirAll(filepath.Dir(full), 0o755)
		if err := os.Symlink(target, full); err != nil {
			t.Fatal(err)
		}
	}
	disk := func(name, devdir string, parts ...string) {
		w("sys/devices/"+devdir+"/"+name+"/size", "2097152\n")
		link("../devices/"+devdir+"/"+name, "sys/block/"+name)
		link("../../devices/"+devdir+"/"+name, "sys/class/block/"+name)
		for _, p := range parts {
			w("sys/devices/"+devdir+"/"+name+"/"+p+"/partition", "1\n")
			link("../../devices/"+devdir+"/"+name+"/"+p, "sys/class/block/"+p)
		}
	}
	disk("vda", "pci0000:00/0000:00:04.0/virtio1/block", "vda1", "vda2")
	disk("vdb", "pci0000:00/0000:00:05.0/virtio2/block", "vdb1")
	disk("loop0", "virtual/block", "loop0p1", "loop0p2")
	disk("loop1", "virtual/block", "loop1p1")
	for md, members := range map[string][]string{"md0": {"vda1", "vdb1"}, "md1": {"loop0p1", "loop1p1"}, "md2": {"loop0p2", "vda2"}, "md3": {"loop1"}} {
		disk(md, "virtual/block")
		w("sys/devices/virtual/block/"+md+"/md/level", "raid1\n")
		for _, m := range members {
			link("../../../../../class/block/"+m, "sys/devices/virtual/block/"+md+"/slaves/"+m)
		}
	}
	return root
}

// TestArraysOnLimitsToAllowedDisks: delete_configuration on a host sees
// only the arrays built wholly on goipa-devices, never the host's own
// nor one that also uses a host disk.
func TestArraysOnLimitsToAllowedDisks(t *testing.T) {
	old := sysRoot
	sysRoot = recordedSysfs(t)
	t.Cleanup(func() { sysRoot = old })

	all, err := Arrays()
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 4 {
		t.Fatalf("Arrays() = %v, want the 4 recorded arrays", all)
	}
	for _, tc := range []struct {
		name  string
		disks []string
		want  []string
	}{
		{"goipa-devices loop0,loop1", []string{"/dev/loop0", "/dev/loop1"}, []string{"/dev/md1", "/dev/md3"}},
		{"loop1 only", []string{"/dev/loop1"}, []string{"/dev/md3"}},
		{"loop0 only: md1 and md2 reach elsewhere", []string{"/dev/loop0"}, nil},
		{"the whole machine", []string{"/dev/vda", "/dev/vdb", "/dev/loop0", "/dev/loop1"}, []string{"/dev/md0", "/dev/md1", "/dev/md2", "/dev/md3"}},
		{"none", nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ArraysOn(tc.disks)
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, a := range got {
				names = append(names, a.Device)
			}
			if !reflect.DeepEqual(names, tc.want) {
				t.Errorf("ArraysOn(%v) = %v, want %v", tc.disks, names, tc.want)
			}
		})
	}
}
