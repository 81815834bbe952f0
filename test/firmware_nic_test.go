package test

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/goipa/goipa/initramfs"
	"github.com/goipa/goipa/internal/testenv"
	"github.com/goipa/goipa/test/netdevsim"
	"github.com/goipa/goipa/test/realironic"
)

var (
	netdevsimRamdiskOnce sync.Once
	netdevsimRamdisk     struct {
		kernel, initrd, release string
		err                     error
	}
)

// buildNetdevsimRamdisk builds the tests' ramdisk (cloud kernel, virtio
// set) plus netdevsim.ko, built from Debian's kernel source for that
// kernel (test/netdevsim) and added as an extra module with psample,
// its dependency: the driver is test-only, never in a default set.
func buildNetdevsimRamdisk(t *testing.T) (kernel, initrd, release string) {
	t.Helper()
	testenv.NeedCommands(t, "apt-get", "apt-cache", "dpkg-deb", "dpkg-query", "qemu-system-x86_64", "go", "tar", "make", "gcc", "strip")
	netdevsimRamdiskOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
		defer cancel()
		r := &netdevsimRamdisk
		pkg, err := initramfs.DebianKernelPackage(ctx, "linux-image-cloud-amd64", "amd64")
		if err != nil {
			r.err = err
			return
		}
		k, err := initramfs.FetchDebianKernel(ctx, filepath.Join(initramfs.CacheDir(), "kernels"), pkg)
		if err != nil {
			r.err = err
			return
		}
		ko, err := netdevsim.Module(ctx, initramfs.CacheDir(), k)
		if err != nil {
			r.err = err
			return
		}
		dir, err := testenv.SharedTempDir("goipa-netdevsim-ramdisk-")
		if err != nil {
			r.err = err
			return
		}
		o := ramdiskOptions(k, filepath.Join(dir, "goipa.initramfs"))
		o.ExtraModules = []string{ko}
		r.kernel, r.initrd, r.release = k.Vmlinuz, o.Output, k.Version
		_, r.err = initramfs.Build(ctx, o)
	})
	if netdevsimRamdisk.err != nil {
		t.Fatalf("building the ramdisk with netdevsim: %v", netdevsimRamdisk.err)
	}
	return netdevsimRamdisk.kernel, netdevsimRamdisk.initrd, netdevsimRamdisk.release
}

// netdevsimVersion is what netdevsim 6.1 reports as fw.mgmt, running
// and stored, whatever it is flashed with (drivers/net/netdevsim/dev.c).
const netdevsimVersion = "10.20.30"

// netdevsimFlashBytes is the size netdevsim's flash status counts to
// (NSIM_DEV_FLASH_SIZE): 500 chunks of 1000, 10 ms each.
const netdevsimFlashBytes = 500000

// agentCommand is one entry of the agent's GET /v1/commands.
type agentCommand struct {
	Name     string         `json:"command_name"`
	Status   string         `json:"command_status"`
	Result   map[string]any `json:"command_result"`
	Error    map[string]any `json:"command_error"`
	Progress *struct {
		Target  string `json:"target"`
		Stage   string `json:"stage"`
		Message string `json:"message"`
		Done    int64  `json:"done"`
		Total   int64  `json:"total"`
	} `json:"progress"`
}

// stepName is the clean step a command ran ("" for other commands).
func (c agentCommand) stepName() string {
	if c.Name != "execute_clean_step" {
		return ""
	}
	if step, ok := c.Result["clean_step"].(map[string]any); ok {
		s, _ := step["step"].(string)
		return s
	}
	return ""
}

// TestNICFirmwareWithRealIronic: Debian's Ironic 21.4 updates the
// firmware of a NIC through goipa's ramdisk in QEMU, by manual cleaning
// with deploy.update_firmware. The NIC is netdevsim, the kernel's
// simulated device with devlink flash update and status notifications,
// loaded over the ramdisk's debug SSH login (sshkey=) and created with
// one port; the image is served by the harness's image server with its
// sha256. In one boot: an image with a wrong checksum fails the
// cleaning before anything reaches the device; the right image is
// flashed (the command's progress follows netdevsim's status
// notifications; the report has the versions before and after, the
// checksum and the time) and verify_firmware passes for the version
// netdevsim runs (manageable); verify_firmware for another version
// leaves the node in clean failed.
func TestNICFirmwareWithRealIronic(t *testing.T) {
	testenv.NeedRoot(t)
	testenv.NeedCommands(t, "ironic", "dnsmasq", "qemu-system-x86_64", "ip")
	kernel, initrd, release := buildNetdevsimRamdisk(t)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	const mac = "52:54:00:e2:f1:01"
	const guestIP = "192.168.77.62"
	pn := newProvisioningNet(t, mac, guestIP)
	ir := realironic.Start(t, realironic.WithNetNS(pn.ns, pn.host), realironic.WithHeartbeatTimeout(10))
	start := time.Now()
	step := func(what string) { t.Logf("[%6.1fs] %s", time.Since(start).Seconds(), what) }

	image := make([]byte, 256<<10)
	rand.Read(image)
	if err := os.WriteFile(filepath.Join(ir.ImageDir, "nic-fw.bin"), image, 0o644); err != nil {
		t.Fatal(err)
	}
	sum := "sha256:" + sha256Hex(image)
	wrongSum := "sha256:" + sha256Hex(append([]byte("not the image"), image...))

	uuid, err := ir.EnrollManualNode(ctx, "goipa-nic-fw", mac, map[string]any{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := ir.Provision(ctx, uuid, "manage", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := ir.WaitState(ctx, uuid, "manageable", 60*time.Second, nil); err != nil {
		t.Fatal(err)
	}

	// The ramdisk boots while the node is manageable: its lookups fail
	// until the first cleaning, which gives the test time to make the
	// NIC.
	key := ed25519Signer(t)
	sshkey := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(key.PublicKey())))
	cmdline := fmt.Sprintf(`ipa-api-url=%s BOOTIF=01-%s ipa-debug=1 sshkey="%s"`, ir.URL, strings.ReplaceAll(mac, ":", "-"), sshkey)
	vm := startGuest(t, ctx, initramfs.VMOptions{Kernel: kernel, Initrd: initrd, Cmdline: cmdline,
		VirtioDisks: []string{sparseFile(t, 64<<20)}, MAC: mac, Tap: pn.tap, NetNS: pn.ns})
	if _, err := vm.WaitFor(ctx, "SSH server listening", 180*time.Second); err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`host_key=(SHA256:\S+)`).FindStringSubmatch(vm.Console())
	if m == nil {
		t.Fatal("no host key fingerprint on the console")
	}
	step("ramdisk up in QEMU (" + initramfs.Accel() + "), SSH listening")
	shell := guestShell(t, ctx, ir, net.JoinHostPort(guestIP, "22"), key, m[1])
	mods := "/lib/modules/" + release
	shell(fmt.Sprintf(`insmod %s/kernel/net/psample/psample.ko && insmod %s/extra/netdevsim.ko && echo "1 1" > /sys/bus/netdevsim/new_device`, mods, mods))
	ifname := strings.TrimSpace(shell("ls /sys/bus/netdevsim/devices/netdevsim1/net"))
	if ifname == "" || strings.ContainsAny(ifname, " \n") {
		t.Fatalf("netdevsim1 has not one port but %q", ifname)
	}
	nicMAC := strings.TrimSpace(shell("cat /sys/class/net/" + ifname + "/address"))
	step(fmt.Sprintf("netdevsim loaded over SSH: devlink device netdevsim/netdevsim1, port %s (%s)", ifname, nicMAC))

	// After lookup the agent serves its API over auto-TLS. The test reads
	// it only for the commands' progress and results: the certificate's
	// trust (agent_verify_ca) is TestAgentCoreWithRealIronic's.
	agentURL := "https://" + net.JoinHostPort(guestIP, "9999") + "/v1/commands"
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DialContext: ir.Dial,
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	defer client.CloseIdleConnections()
	commands := func() []agentCommand {
		t.Helper()
		resp, err := client.Get(agentURL)
		if err != nil {
			t.Logf("GET %s: %v", agentURL, err)
			return nil
		}
		defer resp.Body.Close()
		var list struct {
			Commands []agentCommand `json:"commands"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&list); err != nil {
			t.Logf("GET %s: %v", agentURL, err)
		}
		return list.Commands
	}
	lastStep := func(name string) agentCommand {
		t.Helper()
		cmds := commands()
		for i := len(cmds) - 1; i >= 0; i-- {
			if cmds[i].stepName() == name {
				return cmds[i]
			}
		}
		t.Fatalf("the agent ran no %s; its commands: %+v", name, cmds)
		return agentCommand{}
	}
	clean := func(wantState string, steps ...map[string]any) *realironic.Node {
		t.Helper()
		var list []any
		for _, s := range steps {
			list = append(list, s)
		}
		if err := ir.Provision(ctx, uuid, "clean", map[string]any{"clean_steps": list}); err != nil {
			t.Fatal(err)
		}
		n, err := ir.WaitState(ctx, uuid, wantState, 240*time.Second, commentary(t, vm, step))
		if err != nil {
			t.Fatalf("manual cleaning: %v", err)
		}
		return n
	}
	update := func(checksum string) map[string]any {
		return map[string]any{"interface": "deploy", "step": "update_firmware", "args": map[string]any{"images": []any{
			map[string]any{"url": ir.ImageURL("nic-fw.bin"), "checksum": checksum, "target": ifname}}}}
	}
	verify := func(target, version string) map[string]any {
		return map[string]any{"interface": "deploy", "step": "verify_firmware", "args": map[string]any{"devices": []any{
			map[string]any{"target": target, "version": version}}}}
	}

	// 1. A wrong checksum: the image is fetched and refused, the device
	// never sees a flash request.
	n := clean("clean failed", update(wrongSum))
	step("update_firmware with a wrong checksum: clean failed: " + n.Err())
	if !strings.Contains(strings.ToLower(n.Err()), "checksum") {
		t.Errorf("last_error after a wrong checksum does not say so: %s", n.Err())
	}
	var bad agentCommand
	for _, c := range commands() {
		if c.Name == "execute_clean_step" && c.Status == "FAILED" {
			bad = c
		}
	}
	if bad.Status != "FAILED" {
		t.Fatalf("no failed execute_clean_step on the agent after the wrong checksum")
	}
	if bad.Progress != nil && bad.Progress.Stage != "download" {
		t.Errorf("update_firmware with a wrong checksum got to stage %q (%+v): the image reached the device", bad.Progress.Stage, bad.Progress)
	}
	if staged := shell("ls /run/goipa-firmware"); strings.Contains(staged, "goipa-fw-") {
		t.Errorf("a refused image stays in the firmware directory: %q", staged)
	}
	// A failed clean step puts the node in maintenance (fault "clean
	// failure"): the operator takes it out and back to manageable.
	if err := ir.Do(ctx, http.MethodDelete, "/v1/nodes/"+uuid+"/maintenance", nil, nil); err != nil {
		t.Fatal(err)
	}
	if err := ir.Provision(ctx, uuid, "manage", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := ir.WaitState(ctx, uuid, "manageable", 60*time.Second, nil); err != nil {
		t.Fatal(err)
	}

	// 2. The flash, then verify_firmware for the version netdevsim runs,
	// in one cleaning. The agent's command progress is polled while
	// Ironic waits: netdevsim's "Flashing" notifications must show in
	// it mid-flash.
	var midFlash []string
	follow := commentary(t, vm, step)
	if err := ir.Provision(ctx, uuid, "clean", map[string]any{"clean_steps": []any{update(sum), verify(nicMAC, netdevsimVersion)}}); err != nil {
		t.Fatal(err)
	}
	if _, err := ir.WaitState(ctx, uuid, "manageable", 240*time.Second, func(n *realironic.Node) {
		follow(n)
		for _, c := range commands() {
			if p := c.Progress; c.Status == "RUNNING" && p != nil && p.Stage == "flash" {
				s := fmt.Sprintf("%s %d/%d", p.Message, p.Done, p.Total)
				if len(midFlash) == 0 || midFlash[len(midFlash)-1] != s {
					midFlash = append(midFlash, s)
				}
			}
		}
	}); err != nil {
		t.Fatalf("manual cleaning with update_firmware and verify_firmware: %v", err)
	}
	step(fmt.Sprintf("update_firmware and verify_firmware %s: manageable; progress seen mid-flash: %v", netdevsimVersion, midFlash))
	sawFlashing := false
	for _, s := range midFlash {
		var done, total int64
		if _, err := fmt.Sscanf(s, "Flashing %d/%d", &done, &total); err == nil && total == netdevsimFlashBytes && done > 0 && done < total {
			sawFlashing = true
		}
	}
	if !sawFlashing {
		t.Errorf("the command's progress never showed netdevsim part way through its %d bytes; seen: %v", netdevsimFlashBytes, midFlash)
	}

	up := lastStep("update_firmware")
	if up.Status != "SUCCEEDED" {
		t.Fatalf("update_firmware: %s %v", up.Status, up.Error)
	}
	if p := up.Progress; p == nil || p.Stage != "flash" || p.Message != "Flashing done" || p.Target != ifname {
		t.Errorf("update_firmware's last progress %+v, want netdevsim's \"Flashing done\" for %s", p, ifname)
	}
	raw, _ := json.Marshal(up.Result["clean_result"])
	var res struct {
		Firmware []struct {
			Target, Device, Kind, Checksum string
			VersionBefore                  string            `json:"version_before"`
			VersionAfter                   string            `json:"version_after"`
			Seconds                        float64           `json:"seconds"`
			Before                         map[string]string `json:"versions_before"`
			After                          map[string]string `json:"versions_after"`
		} `json:"firmware"`
	}
	if err := json.Unmarshal(raw, &res); err != nil || len(res.Firmware) != 1 {
		t.Fatalf("update_firmware's result %s: %v", raw, err)
	}
	r := res.Firmware[0]
	step(fmt.Sprintf("report: %s", raw))
	if r.Target != ifname || r.Device != "netdevsim/netdevsim1" || r.Kind != "devlink" || r.Checksum != sum {
		t.Errorf("report names %s %s %s %s, want %s netdevsim/netdevsim1 devlink %s", r.Target, r.Device, r.Kind, r.Checksum, ifname, sum)
	}
	// netdevsim runs and stores 10.20.30 whatever it is given: the new
	// image would run after a reset.
	if r.VersionBefore != netdevsimVersion || r.VersionAfter != "pending reset" {
		t.Errorf("report: version %q before, %q after; want %s, pending reset", r.VersionBefore, r.VersionAfter, netdevsimVersion)
	}
	for what, vs := range map[string]map[string]string{"before": r.Before, "after": r.After} {
		if vs["running.fw.mgmt"] != netdevsimVersion || vs["stored.fw.mgmt"] != netdevsimVersion {
			t.Errorf("report: devlink versions %s the flash %v", what, vs)
		}
	}
	// 500 chunks with a 10 ms sleep each.
	if r.Seconds < 5 || r.Seconds > 180 {
		t.Errorf("report: the flash took %.1f s; netdevsim takes at least 5", r.Seconds)
	}
	ver := lastStep("verify_firmware")
	verRes, _ := ver.Result["clean_result"].(map[string]any)
	if running, _ := verRes["running"].(map[string]any); ver.Status != "SUCCEEDED" || fmt.Sprint(running[nicMAC]) != "["+netdevsimVersion+"]" {
		t.Errorf("verify_firmware for %s by MAC: %s %v", netdevsimVersion, ver.Status, ver.Result)
	}

	// 3. verify_firmware for a version netdevsim does not run: the node
	// stays out of manageable.
	n = clean("clean failed", verify(ifname, "99.0.0"))
	step("verify_firmware 99.0.0: clean failed: " + n.Err())
	if want := ifname + " (netdevsim/netdevsim1) runs " + netdevsimVersion + ", not 99.0.0"; !strings.Contains(n.Err(), want) {
		t.Errorf("last_error %q lacks %q", n.Err(), want)
	}
}

// guestShell runs commands as root in the guest over the debug SSH
// login, from inside Ironic's network; the host key must be the one
// the console printed.
func guestShell(t *testing.T, ctx context.Context, ir *realironic.Ironic, addr string, key ssh.Signer, fingerprint string) func(cmd string) string {
	t.Helper()
	conn, err := ir.Dial(ctx, "tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	sc, chans, reqs, err := ssh.NewClientConn(conn, addr, &ssh.ClientConfig{
		User: "root", Auth: []ssh.AuthMethod{ssh.PublicKeys(key)}, Timeout: 30 * time.Second,
		HostKeyCallback: func(_ string, _ net.Addr, k ssh.PublicKey) error {
			if fp := ssh.FingerprintSHA256(k); fp != fingerprint {
				return fmt.Errorf("host key %s, the console said %s", fp, fingerprint)
			}
			return nil
		},
	})
	if err != nil {
		conn.Close()
		t.Fatalf("SSH to the guest: %v", err)
	}
	c := ssh.NewClient(sc, chans, reqs)
	t.Cleanup(func() { c.Close() })
	return func(cmd string) string {
		t.Helper()
		sess, err := c.NewSession()
		if err != nil {
			t.Fatal(err)
		}
		defer sess.Close()
		out, err := sess.CombinedOutput(cmd)
		if err != nil {
			t.Fatalf("guest: %s: %v: %s", cmd, err, out)
		}
		return string(out)
	}
}
