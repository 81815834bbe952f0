package test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/goipa/goipa/initramfs"
	"github.com/goipa/goipa/internal/testenv"
	"github.com/goipa/goipa/netcfg"
	"github.com/goipa/goipa/test/lldpswitch"
	"github.com/goipa/goipa/test/realironic"
)

// switchedLink is one of the host's NICs on its own switch: a bridge in
// the test's namespace with an address and a DHCP range, a tap for the
// VM's NIC, and the switch port's LLDP identity.
type switchedLink struct {
	bridge, tap, hostIP, guestMAC, guestIP, dhcpRange string
	port                                              lldpswitch.Port
	portMAC                                           net.HardwareAddr // the switch port's own address
}

// newSwitchedNet builds a namespace in which every link gets a bridge, a
// tap and a DHCP range served by one dnsmasq, as a Metal3 host's NICs sit
// on a provisioning network and a second (external) network, each with
// its DHCP server.
func newSwitchedNet(t *testing.T, ns string, links []switchedLink) {
	t.Helper()
	sh := func(args ...string) {
		t.Helper()
		if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%v: %v: %s", args, err, out)
		}
	}
	exec.Command("ip", "netns", "del", ns).Run() // a leftover of a killed run
	sh("ip", "netns", "add", ns)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
	sh("ip", "-n", ns, "link", "set", "lo", "up")
	dir := t.TempDir()
	args := []string{"netns", "exec", ns, "dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null",
		"--bind-interfaces", "--except-interface=lo", "--port=0", "--no-resolv", "--no-hosts", "--no-ping",
		"--dhcp-leasefile=" + filepath.Join(dir, "leases"), "--log-dhcp"}
	for _, l := range links {
		sh("ip", "-n", ns, "link", "add", l.bridge, "type", "bridge")
		sh("ip", "-n", ns, "addr", "add", l.hostIP+"/24", "dev", l.bridge)
		sh("ip", "-n", ns, "link", "set", l.bridge, "up")
		sh("ip", "-n", ns, "tuntap", "add", "dev", l.tap, "mode", "tap")
		sh("ip", "-n", ns, "link", "set", l.tap, "master", l.bridge)
		sh("ip", "-n", ns, "link", "set", l.tap, "up")
		args = append(args, "--interface="+l.bridge, "--dhcp-range="+l.dhcpRange, "--dhcp-host="+l.guestMAC+","+l.guestIP)
	}
	cmd := exec.Command("ip", args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	log, err := os.Create(filepath.Join(dir, "dnsmasq.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		cmd.Wait()
		log.Close()
		if t.Failed() {
			b, _ := os.ReadFile(filepath.Join(dir, "dnsmasq.log"))
			t.Logf("---- dnsmasq ----\n%s", tail(string(b), 40))
		}
	})
}

// metal3InspectionParams are the kernel parameters metal3-io/ironic-image's
// inspector.ipxe (with its defaults) puts on the inspection ramdisk, the
// callback URL being what its [inspector] extra_kernel_params adds.
func metal3InspectionParams(inspectorURL, bootMAC string) string {
	return strings.Join([]string{
		"ipa-inspection-callback-url=" + inspectorURL + "/v1/continue",
		"ipa-inspection-collectors=default,extra-hardware,logs",
		"systemd.journald.forward_to_console=yes",
		"BOOTIF=" + bootMAC, // iPXE's ${mac}: colon-separated
		"ipa-debug=1",
		"ipa-inspection-dhcp-all-interfaces=1",
		"ipa-collect-lldp=1",
	}, " ")
}

// TestMetal3InspectionInQEMU is inspection as Metal3 runs it: a VM with
// two virtio NICs, each on its own switch that sends LLDP, boots goipa's
// ramdisk with Metal3's inspection parameters, and Debian's
// ironic-inspector, configured as metal3-io/ironic-image configures it
// (extra_hardware and lldp_basic hooks, data stored in its database),
// inspects it. The node must end manageable and the stored data must
// show both NICs with their addresses, each NIC's switch, port and VLAN
// as lldp_basic parsed them, and the extra-hardware sections
// baremetal-operator and the inspector's rules read.
func TestMetal3InspectionInQEMU(t *testing.T) {
	testenv.NeedRoot(t)
	testenv.NeedCommands(t, "ironic", "ironic-inspector", "ironic-inspector-dbsync", "dnsmasq", "qemu-system-x86_64", "ip")
	kernel, initrd := buildRamdisk(t)
	start := time.Now()
	step := func(what string) { t.Logf("[%6.1fs] %s", time.Since(start).Seconds(), what) }
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	ns := fmt.Sprintf("goipa-m3-%d", os.Getpid())
	links := []switchedLink{
		{bridge: "br-prov", tap: "tap-prov", hostIP: "192.168.77.1", guestMAC: "52:54:00:e3:00:01", guestIP: "192.168.77.61",
			dhcpRange: "192.168.77.50,192.168.77.99,1h",
			port: lldpswitch.Port{ChassisMAC: net.HardwareAddr{0x02, 0x00, 0x5e, 0xa0, 0x00, 0x00}, SystemName: "tor-a.rack3.example",
				PortID: "Ethernet1/7", PortDescription: "rack3 host7 provisioning", VLAN: 101, VLANName: "provisioning"},
			portMAC: net.HardwareAddr{0x02, 0x00, 0x5e, 0xa0, 0x00, 0x07}},
		{bridge: "br-ext", tap: "tap-ext", hostIP: "192.168.78.1", guestMAC: "52:54:00:e3:00:02", guestIP: "192.168.78.61",
			dhcpRange: "192.168.78.50,192.168.78.99,1h",
			port: lldpswitch.Port{ChassisMAC: net.HardwareAddr{0x02, 0x00, 0x5e, 0xb0, 0x00, 0x00}, SystemName: "tor-b.rack3.example",
				PortID: "Ethernet2/7", PortDescription: "rack3 host7 external", VLAN: 202, VLANName: "baremetal"},
			portMAC: net.HardwareAddr{0x02, 0x00, 0x5e, 0xb0, 0x00, 0x07}},
	}
	prov := links[0]
	newSwitchedNet(t, ns, links)
	ir := realironic.Start(t, realironic.WithNetNS(ns, prov.hostIP), realironic.WithMetal3Inspector(), realironic.WithHeartbeatTimeout(10))
	step("Ironic and ironic-inspector (Metal3's [processing] options) up in the namespace")

	uuid, err := ir.EnrollManualNode(ctx, "goipa-metal3", prov.guestMAC, map[string]any{}, map[string]any{"inspect_interface": "inspector"})
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

	// The switches: each link's far end advertises its port every two
	// seconds, from before the VM is powered on, and a capture on each
	// link records what crossed it.
	captured := make([]chan []lldpswitch.Captured, len(links))
	capCtx, stopCapture := context.WithCancel(ctx)
	defer stopCapture()
	for i, l := range links {
		captured[i] = make(chan []lldpswitch.Captured, 1)
		go func(ch chan<- []lldpswitch.Captured, tap string) {
			frames, err := lldpswitch.Capture(capCtx, ns, tap, 1000)
			if err != nil {
				t.Errorf("capture on %s: %v", tap, err)
			}
			ch <- frames
		}(captured[i], l.tap)
		sp, err := lldpswitch.Speak(ctx, ns, l.tap, l.port, l.portMAC, 2*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer sp.Stop()
	}

	virtioDisk := sparseFile(t, 5<<30)
	cmdline := metal3InspectionParams(ir.InspectorURL, prov.guestMAC)
	ext := links[1]
	vm, err := initramfs.StartVM(ctx, initramfs.VMOptions{Kernel: kernel, Initrd: initrd, Cmdline: cmdline,
		VirtioDisks: []string{virtioDisk}, MAC: prov.guestMAC, Tap: prov.tap, NetNS: ns,
		// The second NIC sits in a late PCI slot, so the provisioning
		// NIC (QEMU places it after these arguments) is found first and
		// is eth0, as the boot NIC usually is.
		Args: []string{"-netdev", "tap,id=n1,ifname=" + ext.tap + ",script=no,downscript=no",
			"-device", "virtio-net-pci,netdev=n1,addr=0x10,romfile=,mac=" + ext.guestMAC}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		vm.Kill()
		if t.Failed() {
			t.Logf("guest console:\n%s", tail(vm.Console(), 120))
		}
	})
	step("VM with two NICs started: " + cmdline)
	inspectStart := time.Now()
	n, err := waitInspected(ctx, ir, uuid, 180*time.Second)
	if err != nil {
		t.Errorf("inspection: %v", err)
	} else {
		step(fmt.Sprintf("inspected in %.1f s: manageable, cpus=%v memory_mb=%v local_gb=%v", time.Since(inspectStart).Seconds(),
			n.Properties["cpus"], n.Properties["memory_mb"], n.Properties["local_gb"]))
		data, err := ir.InspectionData(ctx, uuid)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if t.Failed() {
				b, _ := json.MarshalIndent(data, "", " ")
				t.Logf("stored introspection data:\n%s", tail(string(b), 400))
			}
		})
		checkMetal3InspectionData(t, data, links)
	}

	// The frames were on both wires: every link carried the switch's
	// frames out to the VM's NIC (checked whatever the inspection's
	// outcome: it tells a switch that never spoke from an agent that did
	// not listen).
	stopCapture()
	for i, l := range links {
		frames := <-captured[i]
		var out int
		for _, f := range frames {
			if !f.Outgoing || f.Src.String() != l.portMAC.String() {
				continue
			}
			tlvs, err := netcfg.ParseLLDP(f.PDU)
			if err != nil {
				t.Errorf("%s: a captured frame does not parse: %v", l.tap, err)
				continue
			}
			if nb := netcfg.Summarize(tlvs); nb.SystemName == l.port.SystemName && nb.PortID == l.port.PortID {
				out++
			}
		}
		if out == 0 {
			t.Errorf("no LLDP frame of %s crossed %s (%d LLDP frames captured)", l.port.SystemName, l.tap, len(frames))
		}
		step(fmt.Sprintf("%s carried %d LLDP frames of %s", l.tap, out, l.port.SystemName))
	}
}

// waitInspected waits for the node to leave inspection as manageable,
// and stops early when ironic-inspector logs that it refused the data:
// ironic-inspector 11.1 cannot move a node in "waiting" to "error" (its
// state machine has no such transition), so a ramdisk error leaves the
// node in inspect wait until Ironic's inspect_wait_timeout.
func waitInspected(ctx context.Context, ir *realironic.Ironic, uuid string, timeout time.Duration) (*realironic.Node, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var refused string
	n, err := ir.WaitState(ctx, uuid, "manageable", timeout, func(*realironic.Node) {
		b, _ := os.ReadFile(ir.InspectorLog)
		for _, l := range strings.Split(string(b), "\n") {
			if strings.Contains(l, " ERROR ironic_inspector") && refused == "" {
				refused = l
				cancel()
			}
		}
	})
	if refused != "" {
		return n, fmt.Errorf("ironic-inspector refused the data: %s", refused)
	}
	return n, err
}

// checkMetal3InspectionData asserts what Metal3 reads from the stored
// introspection data.
func checkMetal3InspectionData(t *testing.T, data map[string]any, links []switchedLink) {
	t.Helper()
	if e, ok := data["error"]; ok && e != nil {
		t.Errorf("the ramdisk reported an error: %v", e)
	}
	all, _ := data["all_interfaces"].(map[string]any)
	byMAC := map[string]map[string]any{}
	for name, v := range all {
		iface, _ := v.(map[string]any)
		if iface == nil {
			continue
		}
		iface["name"] = name
		byMAC[strings.ToLower(fmt.Sprint(iface["mac"]))] = iface
	}
	for _, l := range links {
		iface := byMAC[l.guestMAC]
		if iface == nil {
			t.Errorf("all_interfaces has no NIC with MAC %s: %v", l.guestMAC, keys(all))
			continue
		}
		if ip := fmt.Sprint(iface["ip"]); ip != l.guestIP {
			t.Errorf("NIC %s (%s) reported with IP %s, want its DHCP lease %s", iface["name"], l.guestMAC, ip, l.guestIP)
		}
		lldp, _ := iface["lldp_processed"].(map[string]any)
		t.Logf("NIC %s %s ip=%v: switch %v port %v VLAN %v", iface["name"], l.guestMAC, iface["ip"],
			lldp["switch_system_name"], lldp["switch_port_id"], lldp["switch_port_untagged_vlan_id"])
		want := map[string]string{
			"switch_system_name":           l.port.SystemName,
			"switch_port_id":               l.port.PortID,
			"switch_chassis_id":            l.port.ChassisMAC.String(),
			"switch_port_description":      l.port.PortDescription,
			"switch_port_untagged_vlan_id": fmt.Sprint(l.port.VLAN),
		}
		for k, v := range want {
			if got := fmt.Sprint(lldp[k]); got != v {
				t.Errorf("NIC %s (%s): lldp_processed %s = %s, want %s (lldp_processed: %v)", iface["name"], l.guestMAC, k, got, v, lldp)
			}
		}
		vlans, _ := lldp["switch_port_vlans"].([]any)
		if len(vlans) != 1 || fmt.Sprint(vlans[0]) != fmt.Sprintf("map[id:%d name:%s]", l.port.VLAN, l.port.VLANName) {
			t.Errorf("NIC %s (%s): lldp_processed switch_port_vlans = %v, want [{id: %d, name: %s}]", iface["name"], l.guestMAC, lldp["switch_port_vlans"], l.port.VLAN, l.port.VLANName)
		}
	}

	// extra: the extra_hardware hook's extra[category][name][key].
	extra, _ := data["extra"].(map[string]any)
	for _, section := range []string{"cpu", "memory", "disk", "network", "system", "firmware"} {
		s, _ := extra[section].(map[string]any)
		if len(s) == 0 {
			t.Errorf("extra has no %s section (sections: %v)", section, keys(extra))
			continue
		}
		t.Logf("extra %s: %v", section, keys(s))
	}
	at := func(path ...string) any {
		var v any = extra
		for _, p := range path {
			m, _ := v.(map[string]any)
			v = m[p]
		}
		return v
	}
	for _, c := range []struct {
		path []string
		want string // "" means any non-empty value
	}{
		{[]string{"cpu", "logical", "number"}, "2"},
		{[]string{"memory", "total", "size"}, ""},
		{[]string{"disk", "logical", "count"}, "1"},
		{[]string{"system", "kernel", "arch"}, "x86_64"},
		{[]string{"system", "kernel", "version"}, ""},
		{[]string{"firmware", "bios", "vendor"}, ""},
		{[]string{"firmware", "bios", "version"}, ""},
	} {
		got := at(c.path...)
		if got == nil || fmt.Sprint(got) == "" || (c.want != "" && fmt.Sprint(got) != c.want) {
			t.Errorf("extra %s = %v, want %q", strings.Join(c.path, "/"), got, c.want)
		}
	}
	network, _ := extra["network"].(map[string]any)
	for _, l := range links {
		found := false
		for _, v := range network {
			nic, _ := v.(map[string]any)
			found = found || strings.EqualFold(fmt.Sprint(nic["serial"]), l.guestMAC)
		}
		if !found {
			t.Errorf("extra network has no NIC whose serial is %s: %v", l.guestMAC, network)
		}
	}
}

func keys(m map[string]any) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
