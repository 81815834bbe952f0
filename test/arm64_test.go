package test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/goipa/goipa/initramfs"
	"github.com/goipa/goipa/internal/testenv"
	"github.com/goipa/goipa/test/realironic"
)

var (
	arm64Once    sync.Once
	arm64Ramdisk struct {
		kernel *initramfs.Kernel
		initrd string
		res    *initramfs.Result
		err    error
	}
)

// buildARM64Ramdisk cross-builds goipa's arm64 initramfs once per test
// run: Debian's cloud-arm64 kernel (read from an apt state of its own),
// the virtio module set, goipa and the u-root tools for GOARCH=arm64.
func buildARM64Ramdisk(t testing.TB) (*initramfs.Kernel, string) {
	t.Helper()
	testenv.NeedCommands(t, "apt-get", "apt-cache", "dpkg-deb", "qemu-system-aarch64", "go")
	arm64Once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		k, err := fetchKernel(ctx, "linux-image-cloud-arm64", "arm64")
		if err != nil {
			arm64Ramdisk.err = err
			return
		}
		dir, err := testenv.SharedTempDir("goipa-arm64-ramdisk-")
		if err != nil {
			arm64Ramdisk.err = err
			return
		}
		arm64Ramdisk.kernel = k
		arm64Ramdisk.initrd = filepath.Join(dir, "goipa.initramfs")
		arm64Ramdisk.res, arm64Ramdisk.err = initramfs.Build(ctx, arm64Options(k, arm64Ramdisk.initrd))
	})
	if arm64Ramdisk.err != nil {
		t.Fatalf("building the arm64 ramdisk: %v", arm64Ramdisk.err)
	}
	t.Logf("arm64 initramfs %d bytes (%.1f MiB), sha256 %s, %d modules from %s", arm64Ramdisk.res.Size,
		float64(arm64Ramdisk.res.Size)/(1<<20), arm64Ramdisk.res.SHA256, arm64Ramdisk.res.Modules, arm64Ramdisk.kernel.Version)
	return arm64Ramdisk.kernel, arm64Ramdisk.initrd
}

func fetchKernel(ctx context.Context, meta, arch string) (*initramfs.Kernel, error) {
	pkg, err := initramfs.DebianKernelPackage(ctx, meta, arch)
	if err != nil {
		return nil, err
	}
	return initramfs.FetchDebianKernel(ctx, filepath.Join(initramfs.CacheDir(), "kernels"), pkg, initramfs.ForArch(arch))
}

func arm64Options(k *initramfs.Kernel, out string) initramfs.Options {
	return initramfs.Options{SourceDir: "..", Arch: "arm64", Kernel: k, Modules: initramfs.VirtioModules,
		DebugCommands: initramfs.DebugCommands, Output: out}
}

// TestARM64RamdiskBootsInQEMU boots the arm64 ramdisk on qemu-system-aarch64's
// virt machine under TCG with UEFI (AAVMF): init loads the virtio drivers,
// DHCP configures the NIC, and the agent's inventory, read through the
// forwarded port, lists the virtio and NVMe disks, the NIC and an aarch64
// CPU with its Features as flags, booted in UEFI mode. standby.power_off
// then powers the guest off through PSCI.
func TestARM64RamdiskBootsInQEMU(t *testing.T) {
	testenv.NeedRoot(t)
	k, initrd := buildARM64Ramdisk(t)
	if k.Arch != "arm64" {
		t.Fatalf("the kernel's modules are for %q", k.Arch)
	}
	port := realironic.FreePort(t)
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	const mac = "52:54:00:6a:a6:01"
	vm := startGuest(t, ctx, initramfs.VMOptions{Arch: "arm64", Kernel: k.Vmlinuz, Initrd: initrd, Cmdline: "ipa-standalone=1",
		VirtioDisks: []string{sparseFile(t, 64<<20)}, NVMeDisks: []string{sparseFile(t, 2<<30)}, MAC: mac, HostForward: port})
	// Under TCG the firmware and kernel take about 10 s to reach init and
	// the API comes about 10 s later on this 2-core machine; the bounds
	// leave room for a slower one.
	toInit, err := vm.WaitFor(ctx, "Run /init as init process", 3*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	toAPI, err := vm.WaitFor(ctx, "API listening", 3*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("aarch64 (TCG, UEFI): QEMU start to init %.2f s, to API %.2f s", toInit.Seconds(), toAPI.Seconds())

	client := &http.Client{Timeout: time.Minute}
	resp, err := client.Post(fmt.Sprintf("http://127.0.0.1:%d/v1/commands/?wait=true", port), "application/json",
		bytes.NewReader([]byte(`{"name": "poll.get_hardware_info", "params": {}}`)))
	if err != nil {
		t.Fatal(err)
	}
	var res struct {
		Result struct {
			Disks []struct {
				Name string `json:"name"`
				Size int64  `json:"size"`
			} `json:"disks"`
			Interfaces []struct {
				Name string `json:"name"`
				MAC  string `json:"mac_address"`
				IPv4 string `json:"ipv4_address"`
			} `json:"interfaces"`
			CPU struct {
				Arch  string   `json:"architecture"`
				Count int      `json:"count"`
				Flags []string `json:"flags"`
			} `json:"cpu"`
			Boot struct {
				Mode string `json:"current_boot_mode"`
			} `json:"boot"`
			Memory struct {
				PhysicalMB int64 `json:"physical_mb"`
			} `json:"memory"`
		} `json:"command_result"`
	}
	err = json.NewDecoder(resp.Body).Decode(&res)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	inv := res.Result
	disks := map[string]int64{}
	for _, d := range inv.Disks {
		disks[d.Name] = d.Size
	}
	if len(disks) != 2 || disks["/dev/vda"] != 64<<20 || disks["/dev/nvme0n1"] != 2<<30 {
		t.Errorf("disks %v, want /dev/vda of 64 MiB and /dev/nvme0n1 of 2 GiB", inv.Disks)
	}
	ifs := map[string]string{}
	for _, i := range inv.Interfaces {
		ifs[i.Name] = i.MAC + " " + i.IPv4
	}
	if ifs["eth0"] != mac+" 10.0.2.15" {
		t.Errorf("interfaces %+v, want eth0 with MAC %s and the DHCP address 10.0.2.15", inv.Interfaces, mac)
	}
	if inv.CPU.Arch != "aarch64" || inv.CPU.Count != 2 {
		t.Errorf("cpu %+v, want 2 aarch64 CPUs", inv.CPU)
	}
	// arm64's /proc/cpuinfo lists "Features", not "flags".
	if !slices.Contains(inv.CPU.Flags, "asimd") || !slices.Contains(inv.CPU.Flags, "aes") {
		t.Errorf("cpu flags %v, want the arm64 Features (asimd, aes)", inv.CPU.Flags)
	}
	if inv.Boot.Mode != "uefi" {
		t.Errorf("boot mode %q, want uefi", inv.Boot.Mode)
	}
	// From AAVMF's SMBIOS memory device, as IPA sums DIMMs (the kernel's
	// memory blocks on virt add up to 1152 MiB).
	if inv.Memory.PhysicalMB != 1024 {
		t.Errorf("physical_mb %d, want 1024", inv.Memory.PhysicalMB)
	}

	resp, err = client.Post(fmt.Sprintf("http://127.0.0.1:%d/v1/commands/", port), "application/json",
		bytes.NewReader([]byte(`{"name": "standby.power_off", "params": {}}`)))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if _, err := vm.WaitFor(ctx, "reboot: Power down", 2*time.Minute); err != nil {
		t.Fatal(err)
	}
	select {
	case <-vm.Done():
	case <-time.After(30 * time.Second):
		t.Error("QEMU did not exit after the guest powered off")
	}
}

// TestARM64BuildIsReproducibleAndRefusesOtherArchitectures: the arm64
// ramdisk is the same bytes when built again; a kernel package or kernel
// of another architecture is refused by name, and so is a module the
// arm64 kernel lacks. The server driver set resolves in Debian's generic
// arm64 kernel.
func TestARM64BuildIsReproducibleAndRefusesOtherArchitectures(t *testing.T) {
	testenv.NeedRoot(t)
	k, _ := buildARM64Ramdisk(t)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	again, err := initramfs.Build(ctx, arm64Options(k, filepath.Join(t.TempDir(), "again.initramfs")))
	if err != nil {
		t.Fatal(err)
	}
	if again.SHA256 != arm64Ramdisk.res.SHA256 {
		t.Errorf("two builds of the same inputs gave %s and %s", arm64Ramdisk.res.SHA256, again.SHA256)
	}

	var archErr *initramfs.ArchError
	_, err = initramfs.DebianKernelPackage(ctx, "linux-image-cloud-amd64", "arm64")
	if !errors.As(err, &archErr) || archErr.Got != "amd64" || archErr.Want != "arm64" {
		t.Errorf("resolving linux-image-cloud-amd64 for arm64: %v, want an ArchError", err)
	}
	amd64, err := fetchKernel(ctx, "linux-image-cloud-amd64", "amd64")
	if err != nil {
		t.Fatal(err)
	}
	_, err = initramfs.FetchDebianKernel(ctx, filepath.Join(initramfs.CacheDir(), "kernels"), filepath.Base(filepath.Dir(filepath.Dir(amd64.Vmlinuz))), initramfs.ForArch("arm64"))
	if !errors.As(err, &archErr) {
		t.Errorf("fetching the amd64 kernel for arm64: %v, want an ArchError", err)
	}
	// A kernel from a directory says nothing in its name: its modules' ELF
	// machine does.
	_, err = initramfs.Build(ctx, initramfs.Options{SourceDir: "..", Arch: "arm64", Kernel: amd64, Modules: initramfs.VirtioModules, Output: filepath.Join(t.TempDir(), "x")})
	if !errors.As(err, &archErr) || archErr.Got != "amd64" {
		t.Errorf("building an arm64 ramdisk with an amd64 kernel: %v, want an ArchError", err)
	} else {
		t.Logf("refused: %v", err)
	}

	// The cloud kernel has none of the ThunderX NIC drivers.
	_, err = initramfs.Build(ctx, initramfs.Options{SourceDir: "..", Arch: "arm64", Kernel: k, Modules: initramfs.ARM64ServerModules, Output: filepath.Join(t.TempDir(), "x")})
	var missing *initramfs.MissingModulesError
	if !errors.As(err, &missing) || !slices.Contains(missing.Missing, "nicvf") || !slices.Contains(missing.Missing, "thunder_bgx") {
		t.Errorf("the server set on the cloud kernel: %v, want the missing ThunderX modules named", err)
	} else {
		t.Logf("refused: %v", err)
	}

	generic, err := fetchKernel(ctx, "linux-image-arm64", "arm64")
	if err != nil {
		t.Fatal(err)
	}
	res, err := initramfs.Build(ctx, initramfs.Options{SourceDir: "..", Arch: "arm64", Kernel: generic, Modules: initramfs.ARM64ServerModules, Output: filepath.Join(t.TempDir(), "server.initramfs")})
	if err != nil {
		t.Fatal(err)
	}
	if res.Modules < len(initramfs.ARM64ServerModules) {
		t.Errorf("the arm64 server ramdisk has %d modules, want at least the %d asked for", res.Modules, len(initramfs.ARM64ServerModules))
	}
	t.Logf("arm64 server ramdisk (no console tools): %d bytes (%.1f MiB), %d modules from %s", res.Size, float64(res.Size)/(1<<20), res.Modules, generic.Version)
}

// TestARM64ISOBootsWithAAVMF builds the arm64 virtual-media ISO (UEFI
// only: systemd-boot from Debian's arm64 systemd-boot-efi as
// BOOTAA64.EFI) and boots it from a CD on qemu-system-aarch64 with AAVMF:
// the agent comes up in UEFI mode and sees the NVMe disk.
func TestARM64ISOBootsWithAAVMF(t *testing.T) {
	testenv.NeedRoot(t)
	k, initrd := buildARM64Ramdisk(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	iso := filepath.Join(t.TempDir(), "goipa-arm64.iso")
	res, err := initramfs.BuildISO(ctx, initramfs.ISOOptions{Arch: "arm64", Kernel: k.Vmlinuz, Initrd: initrd, Cmdline: "ipa-standalone=1", Output: iso})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("arm64 ISO %d bytes (%.1f MiB)", res.Size, float64(res.Size)/(1<<20))
	port := realironic.FreePort(t)
	vm := startGuest(t, ctx, initramfs.VMOptions{Arch: "arm64", ISO: iso, NVMeDisks: []string{sparseFile(t, 1<<30)}, HostForward: port})
	toAPI, err := vm.WaitFor(ctx, "API listening", 5*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("aarch64 ISO (TCG, AAVMF, systemd-boot): QEMU start to API %.2f s", toAPI.Seconds())
	// The loader entry's options reached the kernel.
	if !strings.Contains(vm.Console(), "console=ttyAMA0 ipa-standalone=1") {
		t.Errorf("the kernel command line does not carry the ISO entry's options")
	}
	client := &http.Client{Timeout: time.Minute}
	resp, err := client.Post(fmt.Sprintf("http://127.0.0.1:%d/v1/commands/?wait=true", port), "application/json",
		bytes.NewReader([]byte(`{"name": "poll.get_hardware_info", "params": {}}`)))
	if err != nil {
		t.Fatal(err)
	}
	var hw struct {
		Result struct {
			Disks []struct {
				Name string `json:"name"`
				Size int64  `json:"size"`
			} `json:"disks"`
			Boot struct {
				Mode string `json:"current_boot_mode"`
			} `json:"boot"`
			CPU struct {
				Arch string `json:"architecture"`
			} `json:"cpu"`
		} `json:"command_result"`
	}
	err = json.NewDecoder(resp.Body).Decode(&hw)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	if hw.Result.Boot.Mode != "uefi" || hw.Result.CPU.Arch != "aarch64" {
		t.Errorf("boot mode %q, architecture %q: want uefi, aarch64", hw.Result.Boot.Mode, hw.Result.CPU.Arch)
	}
	if len(hw.Result.Disks) != 1 || hw.Result.Disks[0].Name != "/dev/nvme0n1" || hw.Result.Disks[0].Size != 1<<30 {
		t.Errorf("disks %+v, want the 1 GiB NVMe disk alone (the CD is no disk)", hw.Result.Disks)
	}
}

// TestARM64DeployWithRealIronic: Debian's Ironic 21.4 and ironic-inspector
// drive the arm64 ramdisk, booted on qemu-system-aarch64 (TCG, UEFI) on a
// provisioning network, through inspection (cpu_arch aarch64), automated
// cleaning and a whole-disk deploy with a config drive, checked on the
// NVMe disk file afterwards. Undeploy is the amd64 test's business.
func TestARM64DeployWithRealIronic(t *testing.T) {
	testenv.NeedRoot(t)
	testenv.NeedCommands(t, "ironic", "ironic-inspector", "dnsmasq", "qemu-system-aarch64", "ip", "sgdisk", "debugfs")
	k, initrd := buildARM64Ramdisk(t)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	const mac = "52:54:00:e2:a6:01"
	pn := newProvisioningNet(t, mac, "192.168.77.61")
	ir := realironic.Start(t, realironic.WithNetNS(pn.ns, pn.host), realironic.WithInspector(), realironic.WithHeartbeatTimeout(10))
	start := time.Now()
	step := func(what string) { t.Logf("[%6.1fs] %s", time.Since(start).Seconds(), what) }

	virtioDisk, nvmeDisk := sparseFile(t, 2<<30), sparseFile(t, 5<<30)
	uuid, err := ir.EnrollManualNode(ctx, "goipa-arm64", mac, map[string]any{"root_device": map[string]any{"serial": "goipa-nvme-0"}},
		map[string]any{"inspect_interface": "inspector"})
	if err != nil {
		t.Fatal(err)
	}
	if err := ir.Provision(ctx, uuid, "manage", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := ir.WaitState(ctx, uuid, "manageable", 60*time.Second, nil); err != nil {
		t.Fatal(err)
	}
	if err := ir.Provision(ctx, uuid, "inspect", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := ir.WaitState(ctx, uuid, "inspect wait", 60*time.Second, nil); err != nil {
		t.Fatal(err)
	}
	// One boot serves inspection, cleaning and the deploy: with simulated
	// power Ironic never reboots the VM, and the agent starts over by
	// itself when Ironic wipes its token.
	cmdline := fmt.Sprintf("ipa-api-url=%s BOOTIF=01-%s ipa-debug=1 ipa-inspection-callback-url=%s/v1/continue",
		ir.URL, strings.ReplaceAll(mac, ":", "-"), ir.InspectorURL)
	vm, err := initramfs.StartVM(ctx, initramfs.VMOptions{Arch: "arm64", Kernel: k.Vmlinuz, Initrd: initrd, Cmdline: cmdline,
		VirtioDisks: []string{virtioDisk}, NVMeDisks: []string{nvmeDisk}, MAC: mac, Tap: pn.tap, NetNS: pn.ns})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		vm.Kill()
		if t.Failed() {
			t.Logf("guest console:\n%s", tail(vm.Console(), 60))
		}
	}()
	toAPI, err := vm.WaitFor(ctx, "API listening", 3*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	step(fmt.Sprintf("goipa booted on qemu-system-aarch64 (TCG): API up %.1f s after QEMU started", toAPI.Seconds()))
	n, err := ir.WaitState(ctx, uuid, "manageable", 4*time.Minute, nil)
	if err != nil {
		t.Fatalf("inspection: %v", err)
	}
	step(fmt.Sprintf("inspected: cpus=%v memory_mb=%v local_gb=%v cpu_arch=%v", n.Properties["cpus"], n.Properties["memory_mb"], n.Properties["local_gb"], n.Properties["cpu_arch"]))
	for k, want := range map[string]string{"cpus": "2", "cpu_arch": "aarch64", "local_gb": "4", "memory_mb": "1024"} {
		if got := fmt.Sprint(n.Properties[k]); got != want {
			t.Errorf("inspection set %s = %s, want %s (properties %v)", k, got, want, n.Properties)
		}
	}

	if err := ir.Patch(ctx, uuid, map[string]any{"op": "replace", "path": "/automated_clean", "value": true}); err != nil {
		t.Fatal(err)
	}
	if err := ir.Provision(ctx, uuid, "provide", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := ir.WaitState(ctx, uuid, "available", 4*time.Minute, nil); err != nil {
		t.Fatalf("automated cleaning: %v", err)
	}
	step("automated cleaning done: available")

	image := demoImage(t, 64<<20)
	if err := os.WriteFile(filepath.Join(ir.ImageDir, "arm64.raw"), image, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := ir.Patch(ctx, uuid, map[string]any{"op": "add", "path": "/instance_info", "value": map[string]any{
		"image_source": ir.ImageURL("arm64.raw"), "image_os_hash_algo": "sha256", "image_os_hash_value": sha256Hex(image),
		"image_type": "whole-disk", "image_disk_format": "raw", "root_gb": 1}}); err != nil {
		t.Fatal(err)
	}
	configdrive := map[string]any{"meta_data": map[string]any{"uuid": uuid, "name": "goipa-arm64-instance"}, "user_data": "#cloud-config\n"}
	if err := ir.Provision(ctx, uuid, "active", map[string]any{"configdrive": configdrive}); err != nil {
		t.Fatal(err)
	}
	if _, err := ir.WaitState(ctx, uuid, "active", 5*time.Minute, commentary(t, vm, step)); err != nil {
		t.Fatalf("deploy: %v", err)
	}
	step("deployed: active")
	select {
	case <-vm.Done():
	case <-time.After(2 * time.Minute):
		t.Fatal("the ramdisk did not power the VM off after the deploy")
	}
	disk := readHead(t, nvmeDisk, len(image))
	if !bytes.Equal(disk[34*512:len(image)], image[34*512:]) {
		t.Error("the NVMe disk (chosen by the serial hint) does not hold the image")
	}
	checkConfigDrive(t, nvmeDisk, "goipa-arm64-instance")
	checkMarker(t, disk)
	step("image, config drive and root filesystem checked on the NVMe disk file; image write " + writeRate(vm.Console()))
}
