package injectfiles

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/goipa/goipa/disk"
	"github.com/goipa/goipa/internal/testenv"
)

// ext4Loop attaches a loop device (partitions scanned) over a GPT disk
// whose one partition holds an empty ext4, detached at cleanup.
func ext4Loop(t *testing.T) string {
	t.Helper()
	img := filepath.Join(t.TempDir(), "disk.img")
	if err := os.WriteFile(img, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(img, 48<<20); err != nil {
		t.Fatal(err)
	}
	sh(t, "sgdisk", "-n", "1:2048:0", img)
	loop := strings.TrimSpace(sh(t, "losetup", "--find", "--show", "--partscan", img))
	t.Cleanup(func() { exec.Command("losetup", "-d", loop).Run() })
	if err := disk.EnsurePartitionNodes(context.Background(), loop); err != nil { // no udev here
		t.Fatal(err)
	}
	if err := disk.WaitForPartition(context.Background(), loop+"p1"); err != nil {
		t.Fatal(err)
	}
	sh(t, "mkfs.ext4", "-q", "-F", loop+"p1")
	return loop
}

func sh(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
	return string(out)
}

func sum(t *testing.T, dev string) [32]byte {
	t.Helper()
	f, err := os.Open(dev)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	var s [32]byte
	copy(s[:], h.Sum(nil))
	return s
}

// TestInjectModesOnLoopDevice: modes with setuid, setgid and sticky set
// land on the file as asked, with and without an owner (chown would
// clear setuid after chmod); mode 0 leaves the default, as IPA's
// `if fl.get('mode')`.
func TestInjectModesOnLoopDevice(t *testing.T) {
	testenv.NeedRoot(t)
	testenv.NeedCommands(t, "losetup", "sgdisk", "mkfs.ext4")
	loop := ext4Loop(t)
	allow := disk.Only([]string{loop}).Check
	ip := func(i int) *int { return &i }
	content := base64.StdEncoding.EncodeToString([]byte("#!/bin/sh\n"))
	files := []struct {
		f    File
		want fs.FileMode
	}{
		{File{Path: "/bin/suid", Partition: "1", Content: content, Mode: ip(0o4755)}, fs.ModeSetuid | 0o755},
		{File{Path: "/bin/suid-owned", Partition: "1", Content: content, Mode: ip(0o4750), Owner: ip(1000), Group: ip(1000)}, fs.ModeSetuid | 0o750},
		{File{Path: "/bin/sgid", Partition: "1", Content: content, Mode: ip(0o2711), Group: ip(50)}, fs.ModeSetgid | 0o711},
		{File{Path: "/tmpdir/sticky", Partition: "1", Content: content, Mode: ip(0o1777), DirMode: ip(0o1777)}, fs.ModeSticky | 0o777},
		{File{Path: "/plain", Partition: "1", Content: content, Mode: ip(0)}, 0o644},
	}
	for _, tc := range files {
		if err := Inject(context.Background(), loop, tc.f, nil, nil, nil, allow); err != nil {
			t.Fatalf("%s: %v", tc.f.Path, err)
		}
	}
	mnt := t.TempDir()
	sh(t, "mount", "-o", "ro", loop+"p1", mnt)
	defer exec.Command("umount", mnt).Run()
	for _, tc := range files {
		st, err := os.Stat(filepath.Join(mnt, tc.f.Path))
		if err != nil {
			t.Fatal(err)
		}
		if got := st.Mode() & (fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky); got != tc.want {
			t.Errorf("%s: mode %v, want %v", tc.f.Path, got, tc.want)
		}
	}
	if st, err := os.Stat(filepath.Join(mnt, "tmpdir")); err != nil || st.Mode()&(fs.ModeSticky|fs.ModePerm) != fs.ModeSticky|0o777 {
		t.Errorf("tmpdir: %v, %v; want a new directory with mode 1777", st, err)
	}
}

// TestInjectRefusesPartitionOutsideScope: a partition given as a /dev
// path on another device (another loop, the host's disk) is refused
// before it is mounted, and that device does not change.
func TestInjectRefusesPartitionOutsideScope(t *testing.T) {
	testenv.NeedRoot(t)
	testenv.NeedCommands(t, "losetup", "sgdisk", "mkfs.ext4")
	loopA, loopB := ext4Loop(t), ext4Loop(t)
	allow := disk.Only([]string{loopA}).Check
	before := sum(t, loopB)
	content := base64.StdEncoding.EncodeToString([]byte("hostile"))
	for _, part := range []string{loopB + "p1", loopB, "/dev/vda", "/dev/null"} {
		err := Inject(context.Background(), loopA, File{Path: "/etc/x", Partition: part, Content: content}, nil, nil, nil, allow)
		var out *disk.OutsideError
		if !errors.As(err, &out) {
			t.Errorf("partition %s: %v, want *disk.OutsideError", part, err)
		}
	}
	if sum(t, loopB) != before {
		t.Errorf("%s changed", loopB)
	}
	// Its own partition by path and by number still works.
	for _, part := range []string{loopA + "p1", "1"} {
		if err := Inject(context.Background(), loopA, File{Path: "/etc/x", Partition: part, Content: content}, nil, nil, nil, allow); err != nil {
			t.Errorf("partition %s of the allowed disk: %v", part, err)
		}
	}
}
