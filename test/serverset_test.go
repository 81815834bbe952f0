package test

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/u-root/u-root/pkg/cpio"

	"github.com/goipa/goipa/initramfs"
	"github.com/goipa/goipa/internal/testenv"
	"github.com/goipa/goipa/test/realironic"
)

// maxServerRamdisk is the compressed size the server ramdisk, drivers
// and firmware included, must stay under (issue 22).
const maxServerRamdisk = 40 << 20

// TestServerRamdiskDriversAndFirmware builds the default amd64 server
// ramdisk from Debian's generic kernel with the firmware its modules
// declare, as goipa-build does, and checks it stays under 40 MiB
// compressed, carries the new drivers with their dependencies, and the
// blobs the NICs need to come up (bnx2x, qed, ice's DDP package reached
// through its symlink, cxgb4, tg3, rtl_nic) as regular files; then boots
// it in QEMU with server-class devices (bootServerRamdisk). Without
// firmware dirs (goipa-build --firmware=none) no firmware goes in.
func TestServerRamdiskDriversAndFirmware(t *testing.T) {
	testenv.NeedCommands(t, "apt-get", "apt-cache", "dpkg-deb", "go")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	pkg, err := initramfs.DebianKernelPackage(ctx, "linux-image-amd64", "amd64")
	if err != nil {
		t.Fatal(err)
	}
	k, err := initramfs.FetchDebianKernel(ctx, filepath.Join(initramfs.CacheDir(), "kernels"), pkg)
	if err != nil {
		t.Fatal(err)
	}
	need, err := initramfs.DeclaresFirmware(k, initramfs.ServerModules, false)
	if err != nil || !need {
		t.Fatalf("the server set declares no firmware (%v)", err)
	}
	dirs, err := initramfs.FetchFirmware(ctx, filepath.Join(initramfs.CacheDir(), "firmware"))
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "server.initramfs")
	res, err := initramfs.Build(ctx, initramfs.Options{SourceDir: "..", Kernel: k, Modules: initramfs.ServerModules,
		DebugCommands: initramfs.DebugCommands, FirmwareDirs: dirs, Output: out})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("server ramdisk: %.1f MiB gzip, %d modules, %d firmware files (%.1f MiB), not in Debian: %v",
		float64(res.Size)/(1<<20), res.Modules, len(res.Firmware), float64(res.FirmwareBytes)/(1<<20), res.MissingFirmware)
	if res.Size >= maxServerRamdisk {
		t.Errorf("server ramdisk is %d bytes compressed, want under %d", res.Size, maxServerRamdisk)
	}
	recs := readRamdisk(t, out)
	modDir := "lib/modules/" + k.Version + "/"
	for _, m := range []string{"mpi3mr", "aacraid", "be2net", "qede", "qed", "igc", "r8169", "cxgb4", "bnx2x", "nfp", "iavf",
		"ixgbevf", "mlx4_en", "mlx4_core", "qla2xxx", "lpfc", "scsi_transport_fc"} {
		found := false
		for name := range recs {
			if strings.HasPrefix(name, modDir) && filepath.Base(name) == m+".ko" {
				found = true
			}
		}
		if !found {
			t.Errorf("the server ramdisk has no %s.ko", m)
		}
	}
	for _, fw := range []string{"bnx2x/bnx2x-e2-7.13.21.0.fw", "qed/qed_init_values_zipped-8.59.1.0.bin", "intel/ice/ddp/ice.pkg",
		"cxgb4/t6fw.bin", "tigon/tg3.bin", "rtl_nic/rtl8168h-2.fw", "ql2500_fw.bin"} {
		r, ok := recs["lib/firmware/"+fw]
		switch {
		case !ok:
			t.Errorf("the server ramdisk has no lib/firmware/%s", fw)
		case r.Mode&cpio.S_IFMT != cpio.S_IFREG || r.FileSize < 64:
			t.Errorf("lib/firmware/%s: mode %o, %d bytes: want the regular file its symlinks lead to", fw, r.Mode, r.FileSize)
		}
	}
	for name := range recs {
		if strings.HasPrefix(name, "lib/firmware/") && strings.Contains(name, "amdgpu") {
			t.Errorf("firmware no module of the set declares: %s", name)
		}
	}
	bootServerRamdisk(t, k.Vmlinuz, out)

	// --firmware=none: the same modules, no firmware. The binary and the
	// compression do not matter here, so the check stays cheap.
	bare := filepath.Join(t.TempDir(), "bare.initramfs")
	if _, err := initramfs.Build(ctx, initramfs.Options{Binary: "/bin/true", Kernel: k, Modules: initramfs.ServerModules, Compression: "none", Output: bare}); err != nil {
		t.Fatal(err)
	}
	for name := range readRamdisk(t, bare) {
		if strings.HasPrefix(name, "lib/firmware") {
			t.Errorf("a ramdisk built without firmware has %s", name)
		}
	}
}

// bootServerRamdisk boots the server ramdisk in QEMU with server-class
// devices QEMU emulates and the set drives (an e1000e NIC beside the
// virtio one the test reaches the agent through; megasas-gen2, ahci and
// nvme controllers with a disk each): the inventory lists every NIC and
// disk, and the log bundle shows the drivers bound (lspci) and loaded
// (lsmod) in a real ramdisk.
func bootServerRamdisk(t *testing.T, kernel, initrd string) {
	testenv.NeedRoot(t)
	testenv.NeedCommands(t, "qemu-system-x86_64")
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	port := realironic.FreePort(t)
	const e1000eMAC = "52:54:00:6a:00:22"
	sas, sata := sparseFile(t, 64<<20), sparseFile(t, 96<<20)
	vm := startGuest(t, ctx, initramfs.VMOptions{Kernel: kernel, Initrd: initrd, Cmdline: "ipa-standalone=1",
		NVMeDisks: []string{sparseFile(t, 128<<20)}, MAC: "52:54:00:6a:00:21", HostForward: port, MemoryMiB: 1024,
		Args: []string{
			"-netdev", "user,id=n1,restrict=on", "-device", "e1000e,netdev=n1,mac=" + e1000eMAC,
			"-device", "megasas-gen2,id=sas0", "-drive", "file=" + sas + ",if=none,id=sasdisk,format=raw", "-device", "scsi-hd,drive=sasdisk,bus=sas0.0",
			"-device", "ahci,id=ahci0", "-drive", "file=" + sata + ",if=none,id=satadisk,format=raw", "-device", "ide-hd,drive=satadisk,bus=ahci0.0",
		}})
	toAPI, err := vm.WaitFor(ctx, "API listening", 240*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("server ramdisk: QEMU start to API %.1f s (accel %s)", toAPI.Seconds(), initramfs.Accel())
	inv := command(t, port, "poll.get_hardware_info", map[string]any{})["command_result"].(map[string]any)
	macs := map[string]bool{}
	for _, i := range inv["interfaces"].([]any) {
		macs[i.(map[string]any)["mac_address"].(string)] = true
	}
	if !macs[e1000eMAC] || !macs["52:54:00:6a:00:21"] {
		t.Errorf("interfaces: want the virtio and the e1000e NIC, got %v", macs)
	}
	sizes := map[int64]bool{}
	for _, d := range inv["disks"].([]any) {
		sizes[int64(d.(map[string]any)["size"].(float64))] = true
	}
	for what, size := range map[string]int64{"nvme": 128 << 20, "megasas-gen2": 64 << 20, "ahci": 96 << 20} {
		if !sizes[size] {
			t.Errorf("no %s disk (%d bytes) in the inventory: %v", what, size, inv["disks"])
		}
	}
	logs := command(t, port, "log.collect_system_logs", map[string]any{})["command_result"].(map[string]any)["system_logs"].(string)
	lspci, lsmod := tarMember(t, logs, "lspci"), tarMember(t, logs, "lsmod")
	for _, drv := range []string{"megaraid_sas", "ahci", "nvme", "e1000e"} {
		if !strings.Contains(lspci, "Kernel driver in use: "+drv+"\n") {
			t.Errorf("lspci in the bundle: no device bound to %s:\n%s", drv, lspci)
		}
		if !strings.Contains(lsmod, "\n"+drv+" ") {
			t.Errorf("lsmod in the bundle lacks %s:\n%s", drv, lsmod)
		}
	}
	if lsblk := tarMember(t, logs, "lsblk"); !strings.Contains(lsblk, "sata") || !strings.Contains(lsblk, "nvme0n1") {
		t.Errorf("lsblk in the bundle:\n%s", lsblk)
	}
	vm.Kill()
}

// readRamdisk lists a (gzip or uncompressed) newc initramfs by name.
func readRamdisk(t *testing.T, path string) map[string]cpio.Info {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var r io.Reader = bytes.NewReader(raw)
	if bytes.HasPrefix(raw, []byte{0x1f, 0x8b}) {
		zr, err := gzip.NewReader(r)
		if err != nil {
			t.Fatal(err)
		}
		r = zr
	}
	data, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	recs, err := cpio.ReadAllRecords(cpio.Newc.Reader(bytes.NewReader(data)))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]cpio.Info{}
	for _, rec := range recs {
		out[rec.Name] = rec.Info
	}
	return out
}
