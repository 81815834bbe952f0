package test

import (
	"context"
	"encoding/base64"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/goipa/goipa/internal/testenv"
	"github.com/goipa/goipa/test/realironic"
)

// rootfsDiskImage is a whole-disk GPT image whose one partition is an
// ext4 root holding /etc/hostname.
func rootfsDiskImage(t *testing.T) []byte {
	t.Helper()
	dir := t.TempDir()
	tree := filepath.Join(dir, "tree", "etc")
	if err := os.MkdirAll(tree, 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(tree, "hostname"), []byte("old-tenant\n"), 0o644)
	part := filepath.Join(dir, "root.img")
	run(t, "mkfs.ext4", "-q", "-F", "-d", filepath.Join(dir, "tree"), part, "32M")
	img := filepath.Join(dir, "disk.img")
	if err := os.WriteFile(img, make([]byte, 40<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	run(t, "sgdisk", "-n", "1:2048:+32M", "-c", "1:root", img)
	run(t, "dd", "if="+part, "of="+img, "bs=1M", "seek=1", "conv=notrunc", "status=none")
	b, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestInjectFilesWithRealIronic deploys a whole-disk image with the
// inject_files deploy step requested through Ironic (deploy_steps on the
// provision call) plus the node's inject_files property: a base64 file
// with a mode, a file fetched from a URL naming the node (in a new
// directory with a dirmode), and a deletion; then reads the disk.
func TestInjectFilesWithRealIronic(t *testing.T) {
	testenv.NeedRoot(t)
	testenv.NeedCommands(t, "ironic", "ironic-dbsync", "unshare", "losetup", "sgdisk", "mkfs.ext4", "mount", "go")
	ctx := context.Background()
	ir := realironic.Start(t, realironic.WithHeartbeatTimeout(10))
	loop := partscanLoop(t, 128<<20)
	uuid := loopNode(t, ir, "goipa-inject", hostMAC(t), loop, "manage", "provide")
	agent := startAgent(t, "--ipa-api-url="+ir.URL, "--goipa-devices="+loop)

	img := rootfsDiskImage(t)
	os.WriteFile(filepath.Join(ir.ImageDir, "disk.img"), img, 0o644)
	os.WriteFile(filepath.Join(ir.ImageDir, "payload-"+uuid), []byte("fetched for "+uuid), 0o644)
	b64 := base64.StdEncoding.EncodeToString
	if err := ir.Patch(ctx, uuid,
		map[string]any{"op": "add", "path": "/properties/inject_files", "value": []any{
			map[string]any{"path": "/etc/goipa-from-node", "content": b64([]byte("from the node")), "mode": 0o600}}},
		map[string]any{"op": "add", "path": "/instance_info", "value": map[string]any{
			"image_source": ir.ImageURL("disk.img"), "image_os_hash_algo": "sha256", "image_os_hash_value": sha256Hex(img),
			"image_type": "whole-disk", "image_disk_format": "raw", "root_gb": 1}}); err != nil {
		t.Fatal(err)
	}
	steps := []any{map[string]any{"interface": "deploy", "step": "inject_files", "priority": 50, "args": map[string]any{"files": []any{
		map[string]any{"path": "/etc/goipa/by-url", "content": ir.ImageBase + "/payload-{node[uuid]}", "dirmode": 0o700},
		map[string]any{"path": "/etc/hostname", "deleted": true},
	}}}}
	if err := ir.Provision(ctx, uuid, "active", map[string]any{"deploy_steps": steps}); err != nil {
		t.Fatal(err)
	}
	if _, err := ir.WaitState(ctx, uuid, "active", 180*time.Second, nil); err != nil {
		t.Fatalf("deploy with inject_files: %v\n%s", err, tail(agent.Log(), 40))
	}
	if countLines(agent.Log(), "inject_files: done") != 3 {
		t.Errorf("want three files handled:\n%s", tail(agent.Log(), 30))
	}
	mnt := t.TempDir()
	run(t, "mount", "-o", "ro", loop+"p1", mnt)
	defer exec.Command("umount", mnt).Run()
	check := func(p, want string, mode os.FileMode) {
		b, err := os.ReadFile(filepath.Join(mnt, p))
		if err != nil || string(b) != want {
			t.Errorf("%s: %q, %v; want %q", p, b, err, want)
			return
		}
		if st, _ := os.Stat(filepath.Join(mnt, p)); mode != 0 && st.Mode().Perm() != mode {
			t.Errorf("%s: mode %v, want %v", p, st.Mode().Perm(), mode)
		}
	}
	check("etc/goipa-from-node", "from the node", 0o600)
	check("etc/goipa/by-url", "fetched for "+uuid, 0)
	if st, err := os.Stat(filepath.Join(mnt, "etc/goipa")); err != nil || st.Mode().Perm() != 0o700 {
		t.Errorf("etc/goipa: %v, %v; want a new directory with mode 0700", st, err)
	}
	if _, err := os.Stat(filepath.Join(mnt, "etc/hostname")); !os.IsNotExist(err) {
		t.Errorf("etc/hostname should be deleted: %v", err)
	}
}
