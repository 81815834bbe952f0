package test

import (
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf16"

	"github.com/goipa/goipa/efi"
	"github.com/goipa/goipa/internal/testenv"
	"github.com/goipa/goipa/test/realironic"
)

// espImage makes a whole-disk GPT image whose first partition is a FAT16
// ESP holding what a shim-based distribution installs (a BOOTX64.CSV
// naming shimx64.efi, and the removable-media loader), and whose second
// partition is the root.
func espImage(t *testing.T, withESP bool) []byte {
	t.Helper()
	dir := t.TempDir()
	img := filepath.Join(dir, "disk.raw")
	if err := os.WriteFile(img, make([]byte, 40<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	args := []string{"-n", "2:34816:0", "-c", "2:root"}
	if withESP {
		args = append([]string{"-n", "1:2048:+16M", "-t", "1:ef00", "-c", "1:EFI System"}, args...)
	}
	if out, err := exec.Command("sgdisk", append(args, img)...).CombinedOutput(); err != nil {
		t.Fatalf("sgdisk: %v: %s", err, out)
	}
	if withESP {
		part := filepath.Join(dir, "esp.img")
		if err := os.WriteFile(part, make([]byte, 16<<20), 0o644); err != nil {
			t.Fatal(err)
		}
		csv := utf16.Encode([]rune("shimx64.efi,debian,,This is the boot entry for debian\n"))
		b := []byte{0xff, 0xfe}
		for _, c := range csv {
			b = binary.LittleEndian.AppendUint16(b, c)
		}
		for name, body := range map[string][]byte{"BOOTX64.CSV": b, "shimx64.efi": []byte("MZ shim"), "BOOTX64.EFI": []byte("MZ fallback")} {
			if err := os.WriteFile(filepath.Join(dir, name), body, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		for _, c := range [][]string{
			{"mkfs.vfat", "-F", "16", "-n", "EFI", part},
			{"mmd", "-i", part, "::EFI", "::EFI/BOOT", "::EFI/debian"},
			{"mcopy", "-i", part, filepath.Join(dir, "BOOTX64.EFI"), "::EFI/BOOT/BOOTX64.EFI"},
			{"mcopy", "-i", part, filepath.Join(dir, "shimx64.efi"), filepath.Join(dir, "BOOTX64.CSV"), "::EFI/debian/"},
			{"dd", "if=" + part, "of=" + img, "bs=1M", "seek=1", "conv=notrunc", "status=none"},
		} {
			if out, err := exec.Command(c[0], c[1:]...).CombinedOutput(); err != nil {
				t.Fatalf("%v: %v: %s", c, err, out)
			}
		}
	}
	b, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestUEFIBootloaderWithRealIronic deploys whole-disk images to a node
// in UEFI boot mode, for which Ironic calls image.install_bootloader. An
// image without an ESP fails the deploy with IPA's message; an image with
// one ends active with a boot entry (in a directory standing in for
// efivarfs, goipa-efivars) for the loader that the image's shim CSV names,
// first in BootOrder and pointing at the ESP sgdisk reports.
func TestUEFIBootloaderWithRealIronic(t *testing.T) {
	testenv.NeedRoot(t)
	testenv.NeedCommands(t, "ironic", "ironic-dbsync", "unshare", "losetup", "sgdisk", "mkfs.vfat", "mmd", "mcopy", "go")
	ctx := context.Background()
	ir := realironic.Start(t, realironic.WithHeartbeatTimeout(10))
	loop := loopDevice(t, 128<<20)
	// A firmware entry that must survive, behind the new one.
	vars := efi.Vars{Dir: t.TempDir()}
	pxe := efi.LoadOption{Attributes: efi.LoadOptionActive, Description: "UEFI PXEv4", Path: efi.DevicePath{{Type: 0x03, SubType: 0x0b, Data: make([]byte, 33)}}}
	if _, err := vars.AddBootEntry(pxe); err != nil {
		t.Fatal(err)
	}
	uuid, err := ir.EnrollManualNode(ctx, "goipa-uefi", hostMAC(t), map[string]any{"root_device": map[string]any{"name": loop}, "capabilities": "boot_mode:uefi"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for target, state := range map[string]string{"manage": "manageable"} {
		if err := ir.Provision(ctx, uuid, target, nil); err != nil {
			t.Fatal(err)
		}
		if _, err := ir.WaitState(ctx, uuid, state, 60*time.Second, nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := ir.Provision(ctx, uuid, "provide", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := ir.WaitState(ctx, uuid, "available", 60*time.Second, nil); err != nil {
		t.Fatal(err)
	}
	agent := startAgent(t, "--ipa-api-url="+ir.URL, "--goipa-devices="+loop, "--goipa-efivars="+vars.Dir)

	deploy := func(name string, img []byte) (*realironic.Node, error) {
		if err := os.WriteFile(filepath.Join(ir.ImageDir, name), img, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := ir.Patch(ctx, uuid, map[string]any{"op": "add", "path": "/instance_info", "value": map[string]any{
			"image_source": ir.ImageURL(name), "image_os_hash_algo": "sha256", "image_os_hash_value": sha256Hex(img),
			"image_type": "whole-disk", "image_disk_format": "raw", "root_gb": 1}}); err != nil {
			t.Fatal(err)
		}
		if err := ir.Provision(ctx, uuid, "active", nil); err != nil {
			t.Fatal(err)
		}
		return ir.WaitState(ctx, uuid, "active", 180*time.Second, nil)
	}

	// No ESP: Ironic's install_bootloader fails, and says why.
	n, err := deploy("no-esp.raw", espImage(t, false))
	if err == nil || n == nil || n.ProvisionState != "deploy failed" {
		t.Fatalf("deploy of an image without an ESP: want deploy failed, got %v (%+v)", err, n)
	}
	if !strings.Contains(n.Err(), "No EFI partition could be detected") {
		t.Errorf("last_error does not name the missing ESP: %q", n.Err())
	}
	if ents, _ := vars.BootEntries(); len(ents) != 1 {
		t.Errorf("a failed install_bootloader left boot entries: %v", ents)
	}

	// With an ESP: active, and the shim entry first.
	if _, err := deploy("esp.raw", espImage(t, true)); err != nil {
		t.Fatalf("UEFI deploy: %v\n%s", err, tail(agent.Log(), 40))
	}
	info, err := exec.Command("sgdisk", "--info=1", loop).CombinedOutput()
	if err != nil {
		t.Fatalf("sgdisk: %v: %s", err, info)
	}
	var guid string
	var first, last int64
	for _, l := range strings.Split(string(info), "\n") {
		switch {
		case strings.HasPrefix(l, "Partition unique GUID:"):
			guid = strings.ToLower(strings.TrimSpace(strings.TrimPrefix(l, "Partition unique GUID:")))
		case strings.HasPrefix(l, "First sector:"):
			fmt.Sscan(strings.Fields(l)[2], &first)
		case strings.HasPrefix(l, "Last sector:"):
			fmt.Sscan(strings.Fields(l)[2], &last)
		}
	}
	want := fmt.Sprintf(`HD(1,GPT,%s,0x%x,0x%x)/File(\EFI\debian\shimx64.efi)`, guid, first, last-first+1)
	ents, err := vars.BootEntries()
	if err != nil {
		t.Fatal(err)
	}
	order, _ := vars.BootOrder()
	if len(ents) != 2 || len(order) != 2 {
		t.Fatalf("want the firmware's entry and the new one, got entries %v, order %v", ents, order)
	}
	got := ents[1]
	if got.Description != "debian" || got.Path.String() != want || got.Attributes&efi.LoadOptionActive == 0 {
		t.Errorf("boot entry: got %v, want active \"debian\" %s", got, want)
	}
	if order[0] != got.Num || order[1] != 0 {
		t.Errorf("BootOrder %v: the new entry must boot first, the firmware's next", order)
	}
	if c := countLines(agent.Log(), "UEFI boot entry added"); c != 1 {
		t.Errorf("want one boot entry added in the log, got %d", c)
	}
}
