package test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/goipa/goipa/internal/testenv"
	"github.com/goipa/goipa/test/realironic"
)

// mdnsNet is two network namespaces joined by a veth pair: Ironic's
// (192.168.78.1 on ir0) and the agent's (192.168.78.2 on ag0, default
// route through Ironic's side, as a DHCP lease would give). All the
// multicast stays on that pair.
type mdnsNet struct {
	server, client string
	serverIP       string
	clientIP       string
}

func newMDNSNet(t *testing.T) *mdnsNet {
	t.Helper()
	n := &mdnsNet{server: fmt.Sprintf("goipa-mdns-s%d", os.Getpid()), client: fmt.Sprintf("goipa-mdns-c%d", os.Getpid()),
		serverIP: "192.168.78.1", clientIP: "192.168.78.2"}
	sh := func(args ...string) {
		t.Helper()
		if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%v: %v: %s", args, err, out)
		}
	}
	for _, ns := range []string{n.server, n.client} {
		exec.Command("ip", "netns", "del", ns).Run() // a leftover of a killed run
		sh("ip", "netns", "add", ns)
		t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
		sh("ip", "-n", ns, "link", "set", "lo", "up")
	}
	sh("ip", "link", "add", "ir0", "netns", n.server, "type", "veth", "peer", "name", "ag0", "netns", n.client)
	sh("ip", "-n", n.server, "addr", "add", n.serverIP+"/24", "dev", "ir0")
	sh("ip", "-n", n.client, "addr", "add", n.clientIP+"/24", "dev", "ag0")
	sh("ip", "-n", n.server, "link", "set", "ir0", "up")
	sh("ip", "-n", n.client, "link", "set", "ag0", "up")
	sh("ip", "-n", n.client, "route", "add", "default", "via", n.serverIP)
	return n
}

// TestMDNSFindsRealIronic: Debian's Ironic 21.4 ([conductor] enable_mdns)
// and ironic-inspector 11.1 ([DEFAULT] enable_mdns) publish themselves
// inside a namespace pair the test owns. goipa, started there with
// ipa-api-url=mdns and ipa-inspection-callback-url=mdns, finds both by
// mDNS, is inspected through the inspector it found, and looks the node
// up in the Ironic it found, which then drives it through cleaning.
//
// goipa enters the agent namespace with nsenter rather than `ip netns
// exec`, so it still reads the host's sysfs: its inventory reports the
// host's NIC, whose MAC the node's port carries, as in the other host
// agent tests (a veth has no device and is no NIC to IPA or goipa).
func TestMDNSFindsRealIronic(t *testing.T) {
	testenv.NeedRoot(t)
	testenv.NeedCommands(t, "ironic", "ironic-dbsync", "ironic-inspector", "ip", "nsenter", "unshare", "losetup", "go")
	// Debian's Python, the one Ironic runs on (not whatever python3 is first on PATH).
	if out, err := exec.Command("/usr/bin/python3", "-c", "import zeroconf").CombinedOutput(); err != nil {
		t.Fatalf("python3-zeroconf is missing (test/install-deps.sh installs it): %v: %s", err, out)
	}
	ctx := context.Background()
	n := newMDNSNet(t)
	ir := realironic.Start(t, realironic.WithNetNS(n.server, n.serverIP), realironic.WithInspector(), realironic.WithMDNS(), realironic.WithHeartbeatTimeout(10))
	mac := hostMAC(t)
	loop := loopDevice(t, 64<<20)
	uuid, err := ir.EnrollManualNode(ctx, "goipa-mdns", mac, map[string]any{"cpu_arch": "x86_64", "root_device": map[string]any{"name": loop}},
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

	start := time.Now()
	agent := startAgentInNS(t, n.client, "--ipa-listen-host="+n.clientIP, "--ipa-api-url=mdns", "--ipa-inspection-callback-url=mdns",
		"--ipa-inspection-collectors=default", "--goipa-devices="+loop)
	if _, err := ir.WaitState(ctx, uuid, "manageable", 90*time.Second, nil); err != nil {
		t.Fatalf("inspection through the mDNS-found inspector: %v", err)
	}
	t.Logf("inspected %.1f s after goipa started", time.Since(start).Seconds())

	// The node is manageable again: goipa's lookups are refused until an
	// operation waits for it. Cleaning does.
	if err := ir.Provision(ctx, uuid, "clean", map[string]any{"clean_steps": []any{
		map[string]any{"interface": "deploy", "step": "erase_devices_metadata"}}}); err != nil {
		t.Fatal(err)
	}
	nd, err := ir.WaitState(ctx, uuid, "manageable", 150*time.Second, nil)
	if err != nil {
		t.Fatalf("cleaning with the agent found by mDNS: %v", err)
	}
	if nd.Err() != "" {
		t.Errorf("cleaning ended with last_error %q", nd.Err())
	}
	log := agent.Log()
	for _, line := range [][]string{
		{"Ironic found by mDNS", "url=http://" + n.serverIP + ":6385"},
		{"inspector found by mDNS", "callback_url=http://" + n.serverIP + ":5050/v1/continue"},
		// Ironic publishes ipa_debug=True (it runs with debug); IPA's
		// default allowed_overrides keeps it from changing the agent.
		{"skipping a setting not in ipa-mdns-allowed-overrides", "key=ipa_debug"},
		{"inspection data accepted", "node=" + uuid},
		{"lookup succeeded", uuid},
		{"command finished", "command=clean.execute_clean_step", "status=SUCCEEDED"},
	} {
		if countLines(log, line...) == 0 {
			t.Errorf("goipa log has no line with %q", line)
		}
	}
}

// startAgentInNS runs `goipa agent` in network namespace ns and a PID
// namespace of its own (see TestMDNSFindsRealIronic for why nsenter).
func startAgentInNS(t *testing.T, ns string, args ...string) *agentProcess {
	t.Helper()
	port := 9999
	logPath := filepath.Join(t.TempDir(), "goipa.log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	full := append([]string{"--net=/run/netns/" + ns, "unshare", "--pid", "--fork", "--mount-proc", "--kill-child", goipa(t),
		"agent", "--cmdline-file=/dev/null", fmt.Sprintf("--ipa-listen-port=%d", port), "--ipa-debug=1"}, args...)
	cmd := exec.Command("nsenter", full...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &agentProcess{cmd: cmd, logPath: logPath, port: port}
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
		logf.Close()
		if t.Failed() {
			t.Logf("---- goipa log ----\n%s", tail(p.Log(), 150))
		}
	})
	return p
}
