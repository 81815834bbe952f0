package test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/goipa/goipa/initramfs"
	"github.com/goipa/goipa/internal/testenv"
	"github.com/goipa/goipa/test/realironic"
)

// postCommand posts an agent command with wait=true (no token: standalone)
// and returns the decoded answer, whatever its status.
func postCommand(t *testing.T, port int, name string, params any) map[string]any {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"name": name, "params": params})
	client := &http.Client{Timeout: 60 * time.Second}
	resp, err := client.Post(fmt.Sprintf("http://127.0.0.1:%d/v1/commands/?wait=true", port), "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	defer resp.Body.Close()
	var res map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&res); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return res
}

// command is postCommand for a command that must succeed.
func command(t *testing.T, port int, name string, params any) map[string]any {
	t.Helper()
	res := postCommand(t, port, name, params)
	if res["command_status"] != "SUCCEEDED" {
		t.Fatalf("%s: %v", name, res)
	}
	return res
}

func currentBootMode(t *testing.T, port int) string {
	inv, _ := command(t, port, "poll.get_hardware_info", map[string]any{})["command_result"].(map[string]any)
	boot, _ := inv["boot"].(map[string]any)
	mode, _ := boot["current_boot_mode"].(string)
	return mode
}

// TestISOBootsOnUEFIAndBIOS builds the virtual-media ISO and boots it
// from QEMU's CD drive twice: with OVMF (UEFI, systemd-boot from the El
// Torito ESP image), where the agent then registers the boot loader of
// an image already on the NVMe disk in the firmware's real efivarfs, and
// with SeaBIOS (BIOS, ISOLINUX).
func TestISOBootsOnUEFIAndBIOS(t *testing.T) {
	testenv.NeedRoot(t)
	testenv.NeedCommands(t, "sgdisk", "mkfs.vfat", "mmd", "mcopy")
	if _, err := os.Stat("/usr/share/OVMF"); err != nil {
		t.Fatalf("OVMF is needed (Debian's ovmf package; test/install-deps.sh installs it): %v", err)
	}
	kernel, initrd := buildRamdisk(t)
	ctx, cancel := context.WithTimeout(context.Background(), 12*time.Minute)
	defer cancel()
	iso := filepath.Join(t.TempDir(), "goipa.iso")
	res, err := initramfs.BuildISO(ctx, initramfs.ISOOptions{Kernel: kernel, Initrd: initrd, Cmdline: "ipa-standalone=1", Output: iso})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("ISO %d bytes (%.1f MiB), sha256 %s", res.Size, float64(res.Size)/(1<<20), res.SHA256)

	boot := func(uefi bool, nvme string) (*initramfs.VM, int) {
		port := realironic.FreePort(t)
		vm := startGuest(t, ctx, initramfs.VMOptions{ISO: iso, UEFI: uefi, NVMeDisks: []string{nvme}, HostForward: port, GuestPort: 9999})
		toAPI, err := vm.WaitFor(ctx, "API listening", 5*time.Minute)
		if err != nil {
			t.Fatalf("uefi=%v: %v", uefi, err)
		}
		t.Logf("uefi=%v: QEMU start to API %.1f s (accel %s)", uefi, toAPI.Seconds(), initramfs.Accel())
		return vm, port
	}

	// UEFI: the disk already holds a distribution's whole-disk image.
	nvme := sparseFile(t, 5<<30)
	img := espImage(t, true)
	f, err := os.OpenFile(nvme, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(img, 0); err != nil {
		t.Fatal(err)
	}
	f.Close()
	info, err := exec.Command("sgdisk", "--info=1", nvme).CombinedOutput()
	if err != nil {
		t.Fatalf("sgdisk: %v: %s", err, info)
	}
	var guid string
	for _, l := range strings.Split(string(info), "\n") {
		if strings.HasPrefix(l, "Partition unique GUID:") {
			guid = strings.ToLower(strings.TrimSpace(strings.TrimPrefix(l, "Partition unique GUID:")))
		}
	}
	vm, port := boot(true, nvme)
	if m := currentBootMode(t, port); m != "uefi" {
		t.Errorf("OVMF boot: current_boot_mode %q, want uefi", m)
	}
	command(t, port, "image.install_bootloader", map[string]any{"root_uuid": "0x00000000", "efi_system_part_uuid": nil, "target_boot_mode": "uefi"})
	logs := command(t, port, "log.collect_system_logs", map[string]any{})["command_result"].(map[string]any)["system_logs"].(string)
	report := tarMember(t, logs, "efibootmgr")
	want := fmt.Sprintf(`* debian	HD(1,GPT,%s,0x800,0x8000)/File(\EFI\debian\shimx64.efi)`, guid)
	var num string
	for _, l := range strings.Split(report, "\n") {
		if strings.HasSuffix(l, want) {
			num = strings.TrimPrefix(strings.TrimSuffix(l, want), "Boot")
		}
	}
	if num == "" || !strings.HasPrefix(report, "BootOrder: "+num+",") {
		t.Errorf("efivarfs after install_bootloader: want an entry ending %q first in BootOrder, got:\n%s", want, report)
	}
	vm.Kill()

	// BIOS: the same ISO through ISOLINUX.
	_, port = boot(false, sparseFile(t, 1<<30))
	if m := currentBootMode(t, port); m != "bios" {
		t.Errorf("SeaBIOS boot: current_boot_mode %q, want bios", m)
	}
}

func tarMember(t *testing.T, b64, name string) string {
	t.Helper()
	raw, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		t.Fatal(err)
	}
	zr, err := gzip.NewReader(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if err != nil {
			t.Fatalf("no %s in the logs: %v", name, err)
		}
		if h.Name == name {
			b, _ := io.ReadAll(tr)
			return string(b)
		}
	}
}
