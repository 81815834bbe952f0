package test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/goipa/goipa/initramfs"
	"github.com/goipa/goipa/internal/testenv"
	"github.com/goipa/goipa/test/realironic"
)

var (
	ramdiskOnce sync.Once
	ramdisk     struct {
		kernel, initrd string
		res            *initramfs.Result
		err            error
	}
)

// buildRamdisk builds goipa's initramfs once per test run, with Debian's
// cloud kernel (it boots fastest under TCG) and the virtio module set.
func buildRamdisk(t testing.TB) (kernel, initrd string) {
	t.Helper()
	testenv.NeedCommands(t, "apt-get", "apt-cache", "dpkg-deb", "qemu-system-x86_64", "go")
	ramdiskOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		pkg, err := initramfs.DebianKernelPackage(ctx, "linux-image-cloud-amd64", "amd64")
		if err != nil {
			ramdisk.err = err
			return
		}
		k, err := initramfs.FetchDebianKernel(ctx, filepath.Join(initramfs.CacheDir(), "kernels"), pkg)
		if err != nil {
			ramdisk.err = err
			return
		}
		dir, err := testenv.SharedTempDir("goipa-ramdisk-")
		if err != nil {
			ramdisk.err = err
			return
		}
		ramdisk.kernel = k.Vmlinuz
		ramdisk.initrd = filepath.Join(dir, "goipa.initramfs")
		ramdisk.res, ramdisk.err = initramfs.Build(ctx, ramdiskOptions(k, ramdisk.initrd))
	})
	if ramdisk.err != nil {
		t.Fatalf("building the ramdisk: %v", ramdisk.err)
	}
	t.Logf("initramfs %d bytes, sha256 %s, %d modules", ramdisk.res.Size, ramdisk.res.SHA256, ramdisk.res.Modules)
	return ramdisk.kernel, ramdisk.initrd
}

func ramdiskOptions(k *initramfs.Kernel, out string) initramfs.Options {
	return initramfs.Options{SourceDir: "..", Kernel: k, Modules: initramfs.VirtioModules, DebugCommands: initramfs.DebugCommands, Output: out}
}

func sparseFile(t testing.TB, size int64) string {
	p := filepath.Join(t.TempDir(), "disk.img")
	if err := os.WriteFile(p, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(p, size); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestRamdiskBootsInQEMU boots the built initramfs with Debian's kernel:
// init loads the drivers, DHCP configures the NIC, and the agent's API
// answers through a forwarded port with an inventory that lists the
// virtio disk, the NVMe disk and the NIC. Then standby.power_off really
// powers the guest off.
func TestRamdiskBootsInQEMU(t *testing.T) {
	testenv.NeedRoot(t)
	kernel, initrd := buildRamdisk(t)
	port, sshPort := realironic.FreePort(t), realironic.FreePort(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	const mac = "52:54:00:6a:00:01"
	nvme := sparseFile(t, 2<<30)
	plantPattern(t, nvme, []int64{0, 1 << 20, 2<<30 - 4096})
	// A SCSI disk (virtio-scsi) answers ATA PASS-THROUGH and REPORT
	// SUPPORTED OPERATION CODES through SG_IO with CHECK CONDITION.
	scsi := sparseFile(t, 64<<20)
	plantPattern(t, scsi, []int64{0, 32 << 20, 64<<20 - 4096})
	vm := startGuest(t, ctx, initramfs.VMOptions{Kernel: kernel, Initrd: initrd, Cmdline: "ipa-standalone=1 ipa-enable-vlan-interfaces=eth0.42",
		VirtioDisks: []string{sparseFile(t, 64<<20)}, NVMeDisks: []string{nvme}, MAC: mac, HostForward: port, MoreForwards: [][2]int{{sshPort, 22}},
		Args: []string{"-device", "virtio-scsi-pci,id=scsi0", "-drive", "file=" + scsi + ",if=none,id=scsidisk0,format=raw", "-device", "scsi-hd,drive=scsidisk0,bus=scsi0.0"}})
	toInit, err := vm.WaitFor(ctx, "Run /init as init process", 90*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	toAPI, err := vm.WaitFor(ctx, "API listening", 90*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("QEMU start to init %.2f s, to API %.2f s (accel %s)", toInit.Seconds(), toAPI.Seconds(), initramfs.Accel())
	assertNoSSHServer(t, sshPort) // no sshkey, rootpwd or rescue

	client := &http.Client{Timeout: 20 * time.Second}
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
				Tran string `json:"tran"`
			} `json:"disks"`
			Interfaces []struct {
				Name string `json:"name"`
				MAC  string `json:"mac_address"`
				IPv4 string `json:"ipv4_address"`
			} `json:"interfaces"`
			CPU struct {
				Arch string `json:"architecture"`
			} `json:"cpu"`
		} `json:"command_result"`
	}
	err = json.NewDecoder(resp.Body).Decode(&res)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	disks := map[string]int64{}
	for _, d := range res.Result.Disks {
		disks[d.Name] = d.Size
	}
	if disks["/dev/vda"] != 64<<20 || disks["/dev/nvme0n1"] != 2<<30 {
		t.Errorf("disks %v, want /dev/vda of 64 MiB and /dev/nvme0n1 of 2 GiB", res.Result.Disks)
	}
	ifs := map[string]string{}
	for _, i := range res.Result.Interfaces {
		ifs[i.Name] = i.MAC + " " + i.IPv4
	}
	if ifs["eth0"] != mac+" 10.0.2.15" {
		t.Errorf("interfaces %+v, want eth0 with MAC %s and the DHCP address 10.0.2.15", res.Result.Interfaces, mac)
	}
	// The VLAN interface ipa-enable-vlan-interfaces asked for (the guest's
	// kernel has 802.1Q, which this host's kernel lacks).
	if ifs["eth0.42"] != mac+" " {
		t.Errorf("interfaces %+v, want the VLAN interface eth0.42 on eth0", res.Result.Interfaces)
	}
	if res.Result.CPU.Arch != "x86_64" {
		t.Errorf("cpu architecture %q", res.Result.CPU.Arch)
	}

	checkFirmwareInVM(t, port)

	// erase_devices on real (emulated) hardware: the NVMe disk gets
	// Format NVM through the admin ioctl (QEMU 7.2's NVMe controller has
	// no Sanitize: SANICAP is 0), the virtio disk a discard, which its
	// write-zeroes feature makes read back as zeros.
	resp, err = client.Post(fmt.Sprintf("http://127.0.0.1:%d/v1/commands/?wait=true", port), "application/json",
		bytes.NewReader([]byte(`{"name": "clean.execute_clean_step", "params": {"step": {"step": "erase_devices", "interface": "deploy"},
		 "node": {"driver_internal_info": {"agent_erase_devices_iterations": 0}}, "ports": []}}`)))
	if err != nil {
		t.Fatal(err)
	}
	var erase struct {
		Status string `json:"command_status"`
		Error  any    `json:"command_error"`
		Result struct {
			Reports map[string]struct {
				Methods      []string `json:"methods"`
				PassedOver   []string `json:"passed_over"`
				Verification string   `json:"verification"`
			} `json:"clean_result"`
		} `json:"command_result"`
	}
	err = json.NewDecoder(resp.Body).Decode(&erase)
	resp.Body.Close()
	if err != nil || erase.Status != "SUCCEEDED" {
		t.Fatalf("erase_devices: %v %s %v", err, erase.Status, erase.Error)
	}
	nv := erase.Result.Reports["/dev/nvme0n1"]
	if len(nv.Methods) != 1 || !strings.HasPrefix(nv.Methods[0], "nvme-format") {
		t.Errorf("the NVMe disk was erased with %v, want Format NVM", nv.Methods)
	}
	if len(nv.PassedOver) != 1 || !strings.Contains(nv.PassedOver[0], "offers no usable sanitize action (SANICAP crypto false, block false, overwrite false)") {
		t.Errorf("the NVMe report passed over %q, want the sanitize QEMU 7.2 lacks (SANICAP 0)", nv.PassedOver)
	}
	if vd := erase.Result.Reports["/dev/vda"]; len(vd.Methods) != 1 || vd.Methods[0] != "discard" {
		t.Errorf("the virtio disk was erased with %v, want a discard with guaranteed zeros", vd.Methods)
	}
	// The SCSI disk: both pass-through probes reach the device and come
	// back refused (ILLEGAL REQUEST), so neither counts; then a discard or
	// an overwrite.
	sd := erase.Result.Reports["/dev/sda"]
	if len(sd.PassedOver) < 2 || !strings.Contains(sd.PassedOver[0], "SCSI command 0x85 failed") || !strings.Contains(sd.PassedOver[0], "sense key 0x5") ||
		!strings.Contains(sd.PassedOver[1], "SCSI command 0xa3 failed") {
		t.Errorf("the SCSI disk's report %+v, want ATA PASS-THROUGH and REPORT SUPPORTED OPERATION CODES refused with ILLEGAL REQUEST", sd)
	}
	if len(sd.Methods) != 1 || (sd.Methods[0] != "discard" && sd.Methods[0] != "overwrite-zero") || !strings.Contains(sd.Verification, "zeros") {
		t.Errorf("the SCSI disk was erased with %v (%s), want a discard or a zero pass, read back as zeros", sd.Methods, sd.Verification)
	}
	t.Logf("erase report: nvme %v (%s), passed over %q; scsi %v, passed over %q", nv.Methods, nv.Verification, nv.PassedOver, sd.Methods, sd.PassedOver)

	resp, err = client.Post(fmt.Sprintf("http://127.0.0.1:%d/v1/commands/", port), "application/json",
		bytes.NewReader([]byte(`{"name": "standby.power_off", "params": {}}`)))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if _, err := vm.WaitFor(ctx, "reboot: Power down", 60*time.Second); err != nil {
		t.Fatal(err)
	}
	select {
	case <-vm.Done():
	case <-time.After(20 * time.Second):
		t.Error("QEMU did not exit after the guest powered off")
	}
	checkNoPattern(t, nvme, []int64{0, 1 << 20, 2<<30 - 4096})
	checkNoPattern(t, scsi, []int64{0, 32 << 20, 64<<20 - 4096})
}

var pattern = bytes.Repeat([]byte("TENANT-DATA!"), 4096/12+1)[:4096]

func plantPattern(t *testing.T, path string, offsets []int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, o := range offsets {
		if _, err := f.WriteAt(pattern, o); err != nil {
			t.Fatal(err)
		}
	}
}

func checkNoPattern(t *testing.T, path string, offsets []int64) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 4096)
	for _, o := range offsets {
		f.ReadAt(b, o)
		if bytes.Equal(b, pattern) {
			t.Errorf("the tenant's data survived at byte %d of %s", o, filepath.Base(path))
		}
	}
}

// TestInitramfsIsReproducible: the same inputs give the same bytes.
func TestInitramfsIsReproducible(t *testing.T) {
	testenv.NeedRoot(t)
	buildRamdisk(t)
	k, err := initramfs.KernelFromDir(filepath.Dir(filepath.Dir(ramdisk.kernel)))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var sums []string
	for i := 0; i < 2; i++ {
		out := filepath.Join(t.TempDir(), "again.initramfs")
		res, err := initramfs.Build(ctx, ramdiskOptions(k, out))
		if err != nil {
			t.Fatal(err)
		}
		sums = append(sums, res.SHA256)
	}
	if sums[0] != sums[1] || sums[0] != ramdisk.res.SHA256 {
		t.Errorf("three builds of the same inputs gave %v and %s", sums, ramdisk.res.SHA256)
	}
	// A module the kernel lacks is named, and nothing is built.
	_, err = initramfs.Build(ctx, initramfs.Options{SourceDir: "..", Kernel: k, Modules: []string{"virtio_blk", "no_such_driver"}, Output: filepath.Join(t.TempDir(), "x")})
	if err == nil || !bytes.Contains([]byte(err.Error()), []byte("no_such_driver")) {
		t.Errorf("want an error naming no_such_driver, got %v", err)
	}
}

// TestRescueShellOnFatalError: a malformed kernel parameter stops the
// agent; init prints why and keeps a shell on the serial console. (Typing
// into it through QEMU's piped serial input is not checked: the shell's
// line editor waits for terminal replies a pipe does not give.)
func TestRescueShellOnFatalError(t *testing.T) {
	testenv.NeedRoot(t)
	kernel, initrd := buildRamdisk(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	vm, err := initramfs.StartVM(ctx, initramfs.VMOptions{Kernel: kernel, Initrd: initrd, Cmdline: "ipa-standalone=1 ipa-listen-port=nine"})
	if err != nil {
		t.Fatal(err)
	}
	defer vm.Kill()
	if _, err := vm.WaitFor(ctx, "configuration: parameter ipa-listen-port", 90*time.Second); err != nil {
		t.Fatal(err)
	}
	if _, err := vm.WaitFor(ctx, "starting a rescue shell", 30*time.Second); err != nil {
		t.Fatal(err)
	}
	// The shell's line editor starts: it asks the terminal for the cursor
	// position, then draws its prompt.
	if _, err := vm.WaitFor(ctx, "\x1b[6n", 90*time.Second); err != nil {
		t.Fatalf("no shell prompt on the console: %v\n%s", err, tail(vm.Console(), 20))
	}
}

// startGuest boots a QEMU guest for a test, kills it when the test ends
// and prints the end of its console if the test failed.
func startGuest(t *testing.T, ctx context.Context, o initramfs.VMOptions) *initramfs.VM {
	t.Helper()
	vm, err := initramfs.StartVM(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		vm.Kill()
		if t.Failed() {
			t.Logf("console:\n%s", tail(vm.Console(), 80))
		}
	})
	return vm
}
