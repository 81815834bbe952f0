package test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/goipa/goipa/internal/testenv"
	"github.com/goipa/goipa/test/realironic"
)

// rootfsImage makes a partition image: an ext4 filesystem holding a
// marker file.
func rootfsImage(t *testing.T, marker string) (img []byte, uuid string) {
	t.Helper()
	dir := t.TempDir()
	tree := filepath.Join(dir, "tree")
	if err := os.MkdirAll(filepath.Join(tree, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(tree, "etc", "goipa-marker"), []byte(marker), 0o644); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "root.img")
	if out, err := exec.Command("mkfs.ext4", "-q", "-F", "-d", tree, "-L", "root", p, "48M").CombinedOutput(); err != nil {
		t.Fatalf("mkfs.ext4: %v: %s", err, out)
	}
	out, err := exec.Command("blkid", "-o", "value", "-s", "UUID", p).Output()
	if err != nil {
		t.Fatal(err)
	}
	img, err = os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return img, strings.TrimSpace(string(out))
}

// TestPartitionImagesWithRealIronic deploys partition images (an ext4
// root filesystem, with swap and a config drive) through real Ironic,
// first in BIOS mode (MBR, bootable root), then in UEFI mode (GPT with
// an ESP), and checks each disk with sfdisk/sgdisk and by mounting the
// root partition. The image carries no boot loader and the agent runs
// with ipa-ignore-bootloader-failure=1: grub-install from the image is
// off by default (as in IPA), and Ironic's install_bootloader must not
// fail these deploys.
func TestPartitionImagesWithRealIronic(t *testing.T) {
	testenv.NeedRoot(t)
	testenv.NeedCommands(t, "ironic", "ironic-dbsync", "unshare", "losetup", "sgdisk", "sfdisk", "mkfs.ext4", "blkid", "mount", "go")
	ctx := context.Background()
	ir := realironic.Start(t, realironic.WithHeartbeatTimeout(10))
	loop := partscanLoop(t, 2<<30)
	uuid := loopNode(t, ir, "goipa-partition", hostMAC(t), loop, "manage", "provide")
	agent := startAgent(t, "--ipa-api-url="+ir.URL, "--goipa-devices="+loop, "--ipa-ignore-bootloader-failure=1")

	for i, mode := range []string{"bios", "uefi"} {
		marker := "goipa-partition-" + mode
		img, fsUUID := rootfsImage(t, marker)
		name := "root-" + mode + ".img"
		if err := os.WriteFile(filepath.Join(ir.ImageDir, name), img, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := ir.Patch(ctx, uuid,
			map[string]any{"op": "add", "path": "/properties/capabilities", "value": "boot_mode:" + mode},
			map[string]any{"op": "add", "path": "/instance_info", "value": map[string]any{
				"image_source": ir.ImageURL(name), "image_os_hash_algo": "sha256", "image_os_hash_value": sha256Hex(img),
				"image_disk_format": "raw", "kernel": ir.ImageURL("agent.kernel"), "ramdisk": ir.ImageURL("agent.ramdisk"),
				"root_gb": 1, "swap_mb": 32}}); err != nil {
			t.Fatal(err)
		}
		if err := ir.Provision(ctx, uuid, "active", map[string]any{"configdrive": map[string]any{"meta_data": map[string]any{"name": marker}}}); err != nil {
			t.Fatal(err)
		}
		n, err := ir.WaitState(ctx, uuid, "active", 180*time.Second, nil)
		if err != nil {
			t.Fatalf("%s partition deploy: %v\n%s", mode, err, tail(agent.Log(), 40))
		}
		if got := n.DriverInternalInfo["root_uuid_or_disk_id"]; got != fsUUID {
			t.Errorf("%s: Ironic recorded root UUID %v, want the image's filesystem UUID %s", mode, got, fsUUID)
		}
		var rootNum string
		switch mode {
		case "bios":
			d := run(t, "sfdisk", "-d", loop)
			// swap, config drive, then the bootable root last.
			for _, re := range []string{`p1 : start=\s*2048, size=\s*65536, type=82`, `p2 : start=\s*67584, size=\s*2048, type=83`, `p3 : start=\s*69632, size=\s*2097152, type=83, bootable`} {
				if !regexp.MustCompile(re).MatchString(d) {
					t.Errorf("bios layout: no %q in\n%s", re, d)
				}
			}
			rootNum = "3"
		case "uefi":
			p := run(t, "sgdisk", "-p", loop)
			for _, re := range []string{`1\s+2048\s+1128447\s+550\.0 MiB\s+EF00`, `2\s+1128448\s+1193983\s+32\.0 MiB\s+8200`, `4\s+\d+\s+\d+\s+1024\.0 MiB\s+8300`} {
				if !regexp.MustCompile(re).MatchString(p) {
					t.Errorf("uefi layout: no %q in\n%s", re, p)
				}
			}
			if v := run(t, "sgdisk", "-v", loop); !strings.Contains(v, "No problems found") {
				t.Errorf("sgdisk -v:\n%s", v)
			}
			if typ := strings.TrimSpace(run(t, "blkid", "-o", "value", "-s", "LABEL", loop+"p1")); typ != "efi-part" {
				t.Errorf("ESP label %q, want efi-part", typ)
			}
			rootNum = "4"
		}
		mnt := t.TempDir()
		run(t, "mount", "-o", "ro", loop+"p"+rootNum, mnt)
		got, err := os.ReadFile(filepath.Join(mnt, "etc", "goipa-marker"))
		exec.Command("umount", mnt).Run()
		if err != nil || string(got) != marker {
			t.Errorf("%s: the root partition does not hold the image: %q, %v", mode, got, err)
		}
		cd := readPartition(t, loop+"p"+map[string]string{"bios": "2", "uefi": "3"}[mode])
		if string(cd[32769:32774]) != "CD001" || !bytes.Contains(cd, []byte(marker)) {
			t.Errorf("%s: the config drive partition does not hold Ironic's ISO with our metadata", mode)
		}
		if countLines(agent.Log(), "install_bootloader failed; ignored as configured") != i+1 {
			t.Errorf("%s: install_bootloader was not called, or did not fail as it should without grub-install enabled", mode)
		}
		if i == 0 {
			if err := ir.Provision(ctx, uuid, "deleted", nil); err != nil {
				t.Fatal(err)
			}
			if _, err := ir.WaitState(ctx, uuid, "available", 180*time.Second, nil); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %v: %v: %s", name, args, err, out)
	}
	return string(out)
}

func readPartition(t *testing.T, dev string) []byte {
	t.Helper()
	f, err := os.Open(dev)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 1<<20)
	n, _ := f.ReadAt(b, 0)
	return b[:n]
}
