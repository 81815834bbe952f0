package test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/goipa/goipa/initramfs"
	"github.com/goipa/goipa/internal/testenv"
	"github.com/goipa/goipa/test/realironic"
)

// provisioningNet is a network namespace with a bridge, a tap for the VM
// and dnsmasq: Metal3's provisioning network, wholly inside the test.
type provisioningNet struct {
	ns, host, tap string
}

func newProvisioningNet(t *testing.T, mac, guestIP string) *provisioningNet {
	t.Helper()
	p := &provisioningNet{ns: fmt.Sprintf("goipa-e2e-%d", os.Getpid()), host: "192.168.77.1", tap: "tap0"}
	sh := func(args ...string) {
		t.Helper()
		if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%v: %v: %s", args, err, out)
		}
	}
	exec.Command("ip", "netns", "del", p.ns).Run() // a leftover of a killed run
	sh("ip", "netns", "add", p.ns)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", p.ns).Run() })
	sh("ip", "-n", p.ns, "link", "set", "lo", "up")
	sh("ip", "-n", p.ns, "link", "add", "br0", "type", "bridge")
	sh("ip", "-n", p.ns, "addr", "add", p.host+"/24", "dev", "br0")
	sh("ip", "-n", p.ns, "link", "set", "br0", "up")
	sh("ip", "-n", p.ns, "tuntap", "add", "dev", p.tap, "mode", "tap")
	sh("ip", "-n", p.ns, "link", "set", p.tap, "master", "br0")
	sh("ip", "-n", p.ns, "link", "set", p.tap, "up")
	dir := t.TempDir()
	cmd := exec.Command("ip", "netns", "exec", p.ns, "dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null",
		"--interface=br0", "--bind-interfaces", "--except-interface=lo", "--port=0", "--no-resolv", "--no-hosts", "--no-ping",
		"--dhcp-range=192.168.77.50,192.168.77.99,1h", "--dhcp-host="+mac+","+guestIP,
		"--dhcp-leasefile="+filepath.Join(dir, "leases"), "--log-dhcp")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	log, _ := os.Create(filepath.Join(dir, "dnsmasq.log"))
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM); cmd.Wait() })
	return p
}

// TestEndToEndWithRealIronic is the whole product: Debian's Ironic 21.4
// and ironic-inspector drive goipa's ramdisk booted in QEMU on a
// provisioning network, through inspection, automated cleaning, a deploy
// of a whole-disk image with a config drive, and undeploy with cleaning.
func TestEndToEndWithRealIronic(t *testing.T) {
	testenv.NeedRoot(t)
	testenv.NeedCommands(t, "ironic", "ironic-inspector", "dnsmasq", "qemu-system-x86_64", "ip", "sgdisk")
	kernel, initrd := buildRamdisk(t)
	ctx := context.Background()
	const mac = "52:54:00:e2:e0:01"
	const guestIP = "192.168.77.60"
	pn := newProvisioningNet(t, mac, guestIP)
	ir := realironic.Start(t, realironic.WithNetNS(pn.ns, pn.host), realironic.WithInspector(), realironic.WithHeartbeatTimeout(10))
	start := time.Now()
	step := func(what string) { t.Logf("[%6.1fs] %s", time.Since(start).Seconds(), what) }

	virtioDisk, nvmeDisk := sparseFile(t, 2<<30), sparseFile(t, 5<<30)
	uuid, err := ir.EnrollManualNode(ctx, "goipa-e2e", mac, map[string]any{"root_device": map[string]any{"serial": "goipa-nvme-0"}},
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

	boot := func(extra string) *initramfs.VM {
		t.Helper()
		cmdline := fmt.Sprintf("ipa-api-url=%s BOOTIF=01-%s ipa-debug=1 %s", ir.URL, strings.ReplaceAll(mac, ":", "-"), extra)
		vm, err := initramfs.StartVM(ctx, initramfs.VMOptions{Kernel: kernel, Initrd: initrd, Cmdline: cmdline,
			VirtioDisks: []string{virtioDisk}, NVMeDisks: []string{nvmeDisk}, MAC: mac, Tap: pn.tap, NetNS: pn.ns})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			vm.Kill()
			if t.Failed() {
				t.Logf("guest console:\n%s", tail(vm.Console(), 60))
			}
		})
		return vm
	}

	// 1. Inspection: the ramdisk posts its inventory to ironic-inspector.
	if err := ir.Provision(ctx, uuid, "inspect", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := ir.WaitState(ctx, uuid, "inspect wait", 60*time.Second, nil); err != nil {
		t.Fatal(err)
	}
	inspectStart := time.Now()
	vm := boot("ipa-inspection-callback-url=" + ir.InspectorURL + "/v1/continue")
	toAPI, err := vm.WaitFor(ctx, "API listening", 120*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	step(fmt.Sprintf("goipa booted in QEMU (%s): API up %.1f s after QEMU started, inventory posted to ironic-inspector", initramfs.Accel(), toAPI.Seconds()))
	n, err := ir.WaitState(ctx, uuid, "manageable", 180*time.Second, nil)
	if err != nil {
		t.Fatalf("inspection: %v", err)
	}
	inspectTime := time.Since(inspectStart)
	step(fmt.Sprintf("inspected: Ironic set cpus=%v memory_mb=%v local_gb=%v cpu_arch=%v", n.Properties["cpus"], n.Properties["memory_mb"], n.Properties["local_gb"], n.Properties["cpu_arch"]))
	for k, want := range map[string]string{"cpus": "2", "cpu_arch": "x86_64", "local_gb": "4"} {
		if got := fmt.Sprint(n.Properties[k]); got != want {
			t.Errorf("inspection set %s = %s, want %s (properties %v)", k, got, want, n.Properties)
		}
	}
	if mem := fmt.Sprint(n.Properties["memory_mb"]); mem != "1024" {
		t.Errorf("inspection set memory_mb = %s, want 1024", mem)
	}

	// 2. Automated cleaning (erase_devices_metadata) to available.
	if err := ir.Patch(ctx, uuid, map[string]any{"op": "replace", "path": "/automated_clean", "value": true}); err != nil {
		t.Fatal(err)
	}
	cleanStart := time.Now()
	if err := ir.Provision(ctx, uuid, "provide", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := ir.WaitState(ctx, uuid, "available", 240*time.Second, nil); err != nil {
		t.Fatalf("automated cleaning: %v", err)
	}
	cleanTime := time.Since(cleanStart)
	firstHB, _ := vm.WaitFor(ctx, "heartbeat sent", time.Second)
	step("automated cleaning (erase_devices_metadata by goipa) done: available")

	// 3. Deploy a whole-disk image with a config drive.
	imageMiB := 64
	if v := os.Getenv("GOIPA_E2E_IMAGE_MIB"); v != "" { // make bench measures 1 GiB
		fmt.Sscan(v, &imageMiB)
	}
	image := demoImage(t, imageMiB<<20)
	if err := os.WriteFile(filepath.Join(ir.ImageDir, "e2e.raw"), image, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := ir.Patch(ctx, uuid, map[string]any{"op": "add", "path": "/instance_info", "value": map[string]any{
		"image_source": ir.ImageURL("e2e.raw"), "image_os_hash_algo": "sha256", "image_os_hash_value": sha256Hex(image),
		"image_type": "whole-disk", "image_disk_format": "raw", "root_gb": 1}}); err != nil {
		t.Fatal(err)
	}
	configdrive := map[string]any{"meta_data": map[string]any{"uuid": uuid, "name": "goipa-e2e-instance"}, "user_data": "#cloud-config\n"}
	deployStart := time.Now()
	if err := ir.Provision(ctx, uuid, "active", map[string]any{"configdrive": configdrive}); err != nil {
		t.Fatal(err)
	}
	if _, err := ir.WaitState(ctx, uuid, "active", 300*time.Second, commentary(t, vm, step)); err != nil {
		t.Fatalf("deploy: %v", err)
	}
	deployTime := time.Since(deployStart)
	step("deployed: active (goipa wrote and verified the image, added the config drive, powered the VM off)")
	select {
	case <-vm.Done():
	case <-time.After(60 * time.Second):
		t.Fatal("the ramdisk did not power the VM off after the deploy")
	}
	disk := readHead(t, nvmeDisk, len(image))
	if !bytes.Equal(disk[34*512:len(image)], image[34*512:]) {
		t.Error("the NVMe disk (chosen by the serial hint) does not hold the image")
	}
	checkConfigDrive(t, nvmeDisk, "goipa-e2e-instance")
	checkMarker(t, disk)
	rate := writeRate(vm.Console())
	if vd := readHead(t, virtioDisk, 2<<20); bytes.Contains(vd, image[2048*512:2048*512+4096]) {
		t.Error("the image went to the virtio disk too")
	}

	// 4. Undeploy: Ironic cleans again; the ramdisk boots anew for it.
	undeployStart := time.Now()
	if err := ir.Provision(ctx, uuid, "deleted", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := ir.WaitState(ctx, uuid, "clean wait", 120*time.Second, nil); err != nil {
		t.Fatal(err)
	}
	boot("")
	if _, err := ir.WaitState(ctx, uuid, "available", 240*time.Second, nil); err != nil {
		t.Fatalf("undeploy cleaning: %v", err)
	}
	undeployTime := time.Since(undeployStart)
	step("undeployed and cleaned again: available")
	final, _ := ir.GetNode(ctx, uuid)
	t.Logf("\n"+
		"  summary (guest under %s)\n"+
		"  %-38s %8.1f s\n  %-38s %8.1f s\n  %-38s %8.1f s\n  %-38s %8.1f s\n  %-38s %8.1f s\n  %-38s %8s\n  %-38s %8s",
		initramfs.Accel(),
		"QEMU start to first heartbeat (lookup OK)", firstHB.Seconds(),
		"inspection (inspect to manageable)", inspectTime.Seconds(),
		"automated cleaning (provide to available)", cleanTime.Seconds(),
		"deploy (active requested to active)", deployTime.Seconds(),
		"undeploy with cleaning", undeployTime.Seconds(),
		"image write throughput in the guest", rate,
		"final provision state", final.ProvisionState)
	f, err := os.Open(nvmeDisk)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	head := make([]byte, 1<<20)
	f.ReadAt(head, 0)
	if !bytes.Equal(head, make([]byte, 1<<20)) {
		t.Error("cleaning after undeploy left the image's partition table")
	}
}

// demoImage is a GPT disk whose one partition holds an ext4 root with a
// marker file: what the demo deploys.
func demoImage(t *testing.T, size int) []byte {
	t.Helper()
	dir := t.TempDir()
	root := filepath.Join(dir, "root")
	os.MkdirAll(filepath.Join(root, "etc"), 0o755)
	os.WriteFile(filepath.Join(root, "etc", "goipa-demo"), []byte("deployed by goipa\n"), 0o644)
	fs := filepath.Join(dir, "root.ext4")
	partSize := size - 2048*512 - 34*512
	partSize -= partSize % 4096
	os.WriteFile(fs, nil, 0o644)
	os.Truncate(fs, int64(partSize))
	if out, err := exec.Command("mkfs.ext4", "-q", "-F", "-E", "root_owner=0:0", "-d", root, fs).CombinedOutput(); err != nil {
		t.Fatalf("mkfs.ext4: %v: %s", err, out)
	}
	img := filepath.Join(dir, "disk.raw")
	os.WriteFile(img, make([]byte, size), 0o644)
	if out, err := exec.Command("sgdisk", "-n", fmt.Sprintf("1:2048:+%dK", partSize/1024), "-c", "1:root", img).CombinedOutput(); err != nil {
		t.Fatalf("sgdisk: %v: %s", err, out)
	}
	b, _ := os.ReadFile(img)
	part, _ := os.ReadFile(fs)
	copy(b[2048*512:], part)
	return b
}

// checkMarker reads the marker file out of the deployed root filesystem.
func checkMarker(t *testing.T, disk []byte) {
	t.Helper()
	part := filepath.Join(t.TempDir(), "root.ext4")
	end := 2048*512 + (len(disk) - 2048*512)
	end = min(end, 2048*512+(64<<20))
	if err := os.WriteFile(part, disk[2048*512:end], 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("debugfs", "-R", "cat /etc/goipa-demo", part).Output()
	if err != nil || !strings.Contains(string(out), "deployed by goipa") {
		t.Errorf("the deployed root filesystem has no marker file: %v %q", err, out)
	}
}

// writeRate reads the guest's "image verified" log line.
func writeRate(console string) string {
	for _, l := range strings.Split(console, "\n") {
		if !strings.Contains(l, "image verified") {
			continue
		}
		var bytes int64
		var dur time.Duration
		for _, f := range strings.Fields(l) {
			if v, ok := strings.CutPrefix(f, "bytes="); ok {
				fmt.Sscan(v, &bytes)
			}
			if v, ok := strings.CutPrefix(f, "duration="); ok {
				dur, _ = time.ParseDuration(v)
			}
		}
		if dur > 0 {
			return fmt.Sprintf("%.0f MiB/s", float64(bytes)/(1<<20)/dur.Seconds())
		}
	}
	return "unknown"
}

// commentary narrates a wait: Ironic's provision state as it changes and
// goipa's commands and write progress from the guest's console.
func commentary(t *testing.T, vm *initramfs.VM, step func(string)) func(*realironic.Node) {
	seen, state := len(strings.Split(vm.Console(), "\n")), ""
	return func(n *realironic.Node) {
		if n.ProvisionState != state {
			state = n.ProvisionState
			step("Ironic: " + state)
		}
		lines := strings.Split(vm.Console(), "\n")
		for _, l := range lines[min(seen, len(lines)):] {
			for _, key := range []string{"command started", "command finished", "image progress", "image verified", "config drive written"} {
				if strings.Contains(l, key) {
					if i := strings.Index(l, "msg="); i >= 0 {
						l = l[i:]
					}
					step("goipa: " + l)
				}
			}
		}
		seen = len(lines)
	}
}

// readHead reads the first n bytes of a (large, sparse) disk file.
func readHead(t *testing.T, path string, n int) []byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, n)
	if _, err := f.ReadAt(b, 0); err != nil {
		t.Fatal(err)
	}
	return b
}
