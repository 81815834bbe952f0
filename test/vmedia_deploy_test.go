package test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/goipa/goipa/initramfs"
	"github.com/goipa/goipa/internal/testenv"
	"github.com/goipa/goipa/test/realironic"
	"github.com/goipa/goipa/test/redfishbmc"
)

// TestVirtualMediaDeployWithRealIronic is Ironic's DHCP-less deploy:
// Debian's Ironic 21.4 with its API behind TLS drives a QEMU machine
// through the test's Redfish BMC with the redfish hardware type and the
// redfish-virtual-media boot interface, on a provisioning network with no
// DHCP server. Ironic builds the boot ISO itself from deploy_kernel and
// deploy_ramdisk (UEFI: with goipa-build esp's GRUB as bootloader) and
// puts the node's network_data, its CA and the agent token into it; the
// BMC boots it as the machine's CD. goipa configures its static address
// from network_data.json, trusts Ironic's certificate from the CD, and
// deploys a whole-disk image to active (UEFI, bytes checked on the VM's
// disk file); undeploy cleans the disk back to available (BIOS: Ironic's
// ISOLINUX ISO).
func TestVirtualMediaDeployWithRealIronic(t *testing.T) {
	testenv.NeedRoot(t)
	testenv.NeedCommands(t, "ironic", "qemu-system-x86_64", "ip", "sgdisk", "mkisofs", "mkfs.vfat", "mcopy")
	if _, err := os.Stat("/usr/lib/ISOLINUX/isolinux.bin"); err != nil {
		t.Fatalf("Ironic's BIOS ISO needs Debian's isolinux (test/install-deps.sh installs it): %v", err)
	}
	kernel, initrd := buildRamdisk(t)
	ctx := context.Background()
	const mac = "52:54:00:76:6d:01"
	const guestIP = "192.168.77.60"
	pn := newStaticProvisioningNet(t)
	ir := realironic.Start(t, realironic.WithNetNS(pn.ns, pn.host), realironic.WithVirtualMedia(), realironic.WithTLS(), realironic.WithHeartbeatTimeout(10))
	start := time.Now()
	step := func(what string) { t.Logf("[%6.1fs] %s", time.Since(start).Seconds(), what) }

	if _, err := initramfs.BuildESP(ctx, initramfs.ESPOptions{Output: filepath.Join(ir.ImageDir, "goipa-esp.img")}); err != nil {
		t.Fatal(err)
	}
	for name, from := range map[string]string{"goipa.kernel": kernel, "goipa.initramfs": initrd} {
		if err := copyFileForTest(from, filepath.Join(ir.ImageDir, name)); err != nil {
			t.Fatal(err)
		}
	}
	image := espImage(t, true) // a whole-disk image with an ESP: UEFI deploys register its boot loader
	if err := os.WriteFile(filepath.Join(ir.ImageDir, "disk.raw"), image, 0o644); err != nil {
		t.Fatal(err)
	}

	disk := sparseFile(t, 5<<30) // IPA's install disk rule wants 4 GiB at least
	bmc, err := redfishbmc.New(redfishbmc.Options{UEFI: true, Disks: []string{disk}, ImageClient: ir.HTTP(),
		VM: initramfs.VMOptions{MAC: mac, Tap: pn.tap, NetNS: pn.ns}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		bmc.Close()
		if t.Failed() {
			t.Logf("machine console:\n%s", bmc.Console().Tail(100))
		}
	})
	bmcURL := serveInNetNS(t, pn.ns, pn.host+":8000", bmc)
	user, password := bmc.Credentials()

	networkData := map[string]any{
		"links":    []any{map[string]any{"id": "prov", "type": "phy", "ethernet_mac_address": mac, "mtu": 1500}},
		"networks": []any{map[string]any{"id": "p", "network_id": "provisioning", "type": "ipv4", "link": "prov", "ip_address": guestIP, "netmask": "255.255.255.0", "routes": []any{}}},
		"services": []any{},
	}
	var node realironic.Node
	if err := ir.Do(ctx, http.MethodPost, "/v1/nodes", map[string]any{
		"name": "goipa-vmedia", "driver": "redfish", "boot_interface": "redfish-virtual-media", "deploy_interface": "direct",
		"power_interface": "redfish", "management_interface": "redfish", "network_interface": "noop", "inspect_interface": "no-inspect",
		"automated_clean": false, "network_data": networkData,
		"properties": map[string]any{"cpu_arch": "x86_64", "local_gb": 1, "capabilities": "boot_mode:uefi"},
		"driver_info": map[string]any{
			"redfish_address": bmcURL, "redfish_system_id": bmc.SystemPath(), "redfish_username": user, "redfish_password": password,
			"deploy_kernel": ir.ImageURL("goipa.kernel"), "deploy_ramdisk": ir.ImageURL("goipa.initramfs"),
			"bootloader": ir.ImageURL("goipa-esp.img"),
			// Ironic's own parameters, and the serial console the test reads.
			"kernel_append_params": "%default% console=ttyS0",
		},
	}, &node); err != nil {
		t.Fatal(err)
	}
	uuid := node.UUID
	if err := ir.Do(ctx, http.MethodPost, "/v1/ports", map[string]any{"node_uuid": uuid, "address": mac, "pxe_enabled": true}, nil); err != nil {
		t.Fatal(err)
	}
	for _, target := range []struct{ verb, state string }{{"manage", "manageable"}, {"provide", "available"}} {
		if err := ir.Provision(ctx, uuid, target.verb, nil); err != nil {
			t.Fatal(err)
		}
		if _, err := ir.WaitState(ctx, uuid, target.state, 90*time.Second, nil); err != nil {
			t.Fatal(err)
		}
	}
	step("enrolled through the BMC (redfish power and management): available")

	// 1. Deploy, UEFI.
	if err := ir.Patch(ctx, uuid, map[string]any{"op": "add", "path": "/instance_info", "value": map[string]any{
		"image_source": ir.ImageURL("disk.raw"), "image_os_hash_algo": "sha256", "image_os_hash_value": sha256Hex(image),
		"image_type": "whole-disk", "image_disk_format": "raw", "root_gb": 1}}); err != nil {
		t.Fatal(err)
	}
	deployStart := time.Now()
	if err := ir.Provision(ctx, uuid, "active", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := ir.WaitState(ctx, uuid, "active", 8*time.Minute, stateSteps(step)); err != nil {
		t.Fatalf("deploy: %v", err)
	}
	deployTime := time.Since(deployStart)
	step("deployed: active")
	if got := readHead(t, disk, len(image)); !bytes.Equal(got[34*512:], image[34*512:]) {
		t.Error("the VM's disk does not hold the image")
	}
	deployConsole := bmc.Console().String()
	checkDHCPLessBoot(t, deployConsole, guestIP, ir.URL)
	isos := publishedISOs(t, ir.Log())
	step(fmt.Sprintf("Ironic built and published %v", isos))

	// 2. Undeploy with cleaning, BIOS: Ironic's ISOLINUX ISO.
	if err := ir.Patch(ctx, uuid,
		map[string]any{"op": "replace", "path": "/properties/capabilities", "value": "boot_mode:bios"},
		map[string]any{"op": "replace", "path": "/automated_clean", "value": true}); err != nil {
		t.Fatal(err)
	}
	mark := bmc.Console().Mark()
	undeployStart := time.Now()
	if err := ir.Provision(ctx, uuid, "deleted", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := ir.WaitState(ctx, uuid, "available", 8*time.Minute, stateSteps(step)); err != nil {
		t.Fatalf("undeploy with cleaning: %v", err)
	}
	undeployTime := time.Since(undeployStart)
	step("undeployed and cleaned: available")
	cleanConsole := bmc.Console().String()[mark:]
	checkDHCPLessBoot(t, cleanConsole, guestIP, ir.URL)
	if head := readHead(t, disk, 1<<20); !bytes.Equal(head, make([]byte, 1<<20)) {
		t.Error("cleaning left the image's partition table")
	}

	var modes []string
	for _, b := range bmc.Boots() {
		if b.Target == redfishbmc.TargetCd {
			modes = append(modes, map[bool]string{true: "uefi", false: "bios"}[b.UEFI])
		}
	}
	if len(modes) < 2 || modes[0] != "uefi" || modes[len(modes)-1] != "bios" {
		t.Errorf("the machine booted its virtual CD as %v, want a UEFI boot to deploy and a BIOS boot to clean", modes)
	}
	t.Logf("summary (guest under %s): deploy %.1f s, undeploy with cleaning %.1f s", initramfs.Accel(), deployTime.Seconds(), undeployTime.Seconds())
}

// checkDHCPLessBoot checks one boot of goipa from Ironic's ISO: the
// configuration came from the CD (label config-2: network_data), the
// CA Ironic put there is used, the address is network_data's, nothing
// asked for DHCP, and the agent reached Ironic over HTTPS.
func checkDHCPLessBoot(t *testing.T, console, guestIP, apiURL string) {
	t.Helper()
	for _, want := range []string{
		`msg="virtual media configuration" device=/dev/sr\d label=config-2`,
		`parameter=ipa-cafile value=/etc/ironic-python-agent/ironic.crt`,
		`msg="network_data.json address" link=eth\d address=` + regexp.QuoteMeta(guestIP) + `/24`,
		`are no command, ignored`,
		`heartbeat sent`,
	} {
		if !regexp.MustCompile(want).MatchString(console) {
			t.Errorf("console lacks %q", want)
		}
	}
	for _, unwanted := range []string{"DHCP lease", "no DHCP lease yet", "rescue shell", "certificate signed by unknown authority"} {
		if strings.Contains(console, unwanted) {
			t.Errorf("console has %q", unwanted)
		}
	}
	if !strings.Contains(console, apiURL) {
		t.Errorf("the agent was not pointed at %s", apiURL)
	}
}

// publishedISOs lists the boot ISOs Ironic's log says it built and
// published.
func publishedISOs(t *testing.T, log string) []string {
	var isos []string
	for _, m := range regexp.MustCompile(`Created ISO (\S+) in object store`).FindAllStringSubmatch(log, -1) {
		isos = append(isos, m[1])
	}
	if len(isos) == 0 {
		t.Error("Ironic's log says it built no ISO")
	}
	return isos
}

// stateSteps narrates Ironic's provision state as it changes.
func stateSteps(step func(string)) func(*realironic.Node) {
	state := ""
	return func(n *realironic.Node) {
		if n.ProvisionState != state {
			state = n.ProvisionState
			step("Ironic: " + state)
		}
	}
}

// newStaticProvisioningNet is a network namespace with a bridge and a tap
// for the VM and no DHCP server: addresses come from network_data.json.
func newStaticProvisioningNet(t *testing.T) *provisioningNet {
	t.Helper()
	p := &provisioningNet{ns: fmt.Sprintf("goipa-vm-%d", os.Getpid()), host: "192.168.77.1", tap: "tap0"}
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
	return p
}

// serveInNetNS serves h on addr inside network namespace ns until the
// test ends, and returns its base URL.
func serveInNetNS(t *testing.T, ns, addr string, h http.Handler) string {
	t.Helper()
	l, err := listenInNetNS(ns, addr)
	if err != nil {
		t.Fatalf("listening on %s in %s: %v", addr, ns, err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return "http://" + addr
}
