package netcfg

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/goipa/goipa/internal/testenv"
)

// The namespace tests re-run this test binary inside the client
// namespace: netcfg's goroutines and sockets must all live there, which
// a thread switched with setns cannot promise.
const childEnv = "GOIPA_NETCFG_CHILD"

type childResult struct {
	Interfaces []Interface
	Routes     []string
	Resolv     string
	LLDP       map[string][]TLV
	Err        string
	Seconds    float64
}

func TestMain(m *testing.M) {
	switch os.Getenv(childEnv) {
	case "up":
		var cfg Config
		json.Unmarshal([]byte(os.Getenv(childEnv+"_CONFIG")), &cfg)
		start := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		st, err := Up(ctx, cfg)
		res := childResult{Seconds: time.Since(start).Seconds()}
		if err != nil {
			res.Err = err.Error()
		}
		if st != nil {
			res.Interfaces = st.Interfaces()
		}
		routes, _ := netlink.RouteList(nil, netlink.FAMILY_V4)
		for _, r := range routes {
			isDefault := r.Dst == nil
			if r.Dst != nil {
				ones, _ := r.Dst.Mask.Size()
				isDefault = ones == 0
			}
			if isDefault && r.Gw != nil {
				l, _ := netlink.LinkByIndex(r.LinkIndex)
				res.Routes = append(res.Routes, "default via "+r.Gw.String()+" dev "+l.Attrs().Name)
			}
		}
		b, _ := os.ReadFile(cfg.ResolvConf)
		res.Resolv = string(b)
		json.NewEncoder(os.Stdout).Encode(res)
		os.Exit(0)
	case "lldp-listen":
		got, err := CollectLLDP(context.Background(), strings.Split(os.Getenv(childEnv+"_IFACES"), ","), 5*time.Second)
		res := childResult{LLDP: got}
		if err != nil {
			res.Err = err.Error()
		}
		json.NewEncoder(os.Stdout).Encode(res)
		os.Exit(0)
	case "lldp-send":
		sendLLDP(os.Getenv(childEnv+"_IFACES"), 8*time.Second)
		os.Exit(0)
	default:
		if waitChild(os.Getenv(childEnv)) {
			os.Exit(0)
		}
	}
	os.Exit(m.Run())
}

// sendLLDP transmits an LLDP frame on iface every 200 ms.
func sendLLDP(iface string, d time.Duration) {
	ifi, err := net.InterfaceByName(iface)
	if err != nil {
		return
	}
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW, int(htons(ethPLLDP)))
	if err != nil {
		return
	}
	defer unix.Close(fd)
	frame := append(append(append([]byte{}, lldpMulticast[:]...), ifi.HardwareAddr...), 0x88, 0xcc)
	frame = append(frame, samplePDU()...)
	addr := &unix.SockaddrLinklayer{Protocol: htons(ethPLLDP), Ifindex: ifi.Index, Halen: 6}
	copy(addr.Addr[:], lldpMulticast[:])
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(200 * time.Millisecond) {
		unix.Sendto(fd, frame, 0, addr)
	}
}

type lab struct {
	t              *testing.T
	client, server string
	dir            string
}

func sh(t *testing.T, args ...string) {
	t.Helper()
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	require.NoError(t, err, "%v: %s", args, out)
}

var labSeq int

// newLab makes two namespaces the test owns, joined by veth pairs
// c<i> (client) <-> s<i> (server).
func newLab(t *testing.T, pairs int) *lab {
	testenv.NeedRoot(t)
	testenv.NeedCommands(t, "ip", "dnsmasq")
	labSeq++
	l := &lab{t: t, client: fmt.Sprintf("goipa-c%d-%d", os.Getpid(), labSeq), server: fmt.Sprintf("goipa-s%d-%d", os.Getpid(), labSeq), dir: t.TempDir()}
	sh(t, "ip", "netns", "add", l.client)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", l.client).Run() })
	sh(t, "ip", "netns", "add", l.server)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", l.server).Run() })
	for _, ns := range []string{l.client, l.server} {
		sh(t, "ip", "-n", ns, "link", "set", "lo", "up")
	}
	for i := 0; i < pairs; i++ {
		sh(t, "ip", "link", "add", fmt.Sprintf("c%d", i), "netns", l.client, "type", "veth", "peer", "name", fmt.Sprintf("s%d", i), "netns", l.server)
		sh(t, "ip", "-n", l.server, "link", "set", fmt.Sprintf("s%d", i), "up")
	}
	return l
}

// dnsmasq serves DHCP on iface (in the server namespace) until the test ends.
func (l *lab) dnsmasq(iface, prefix string, extra ...string) {
	t := l.t
	sh(t, "ip", "-n", l.server, "addr", "add", prefix+".1/24", "dev", iface)
	cmd := exec.Command("ip", append([]string{"netns", "exec", l.server, "dnsmasq", "--no-daemon", "--conf-file=/dev/null", "--port=0",
		"--interface=" + iface, "--bind-interfaces", "--no-ping", "--pid-file=", "--dhcp-leasefile=" + filepath.Join(l.dir, iface+".leases"),
		fmt.Sprintf("--dhcp-range=%s.50,%s.60,255.255.255.0,1h", prefix, prefix),
		"--dhcp-option=option:router," + prefix + ".1", "--dhcp-option=option:dns-server," + prefix + ".53"}, extra...)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	log, _ := os.Create(filepath.Join(l.dir, iface+".dnsmasq.log"))
	cmd.Stdout, cmd.Stderr = log, log
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		cmd.Wait()
		if t.Failed() {
			b, _ := os.ReadFile(filepath.Join(l.dir, iface+".dnsmasq.log"))
			t.Logf("dnsmasq on %s:\n%s", iface, b)
		}
	})
}

func (l *lab) run(mode string, env ...string) childResult {
	t := l.t
	ns := l.client
	if mode == "lldp-send" {
		ns = l.server
	}
	cmd := execInNS(ns, mode, env...)
	if mode == "lldp-send" {
		require.NoError(t, cmd.Start())
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		return childResult{}
	}
	out, err := cmd.Output()
	require.NoError(t, err, "%s", out)
	var res childResult
	require.NoError(t, json.Unmarshal(out, &res), "%s", out)
	return res
}

// execInNS runs this test binary in namespace ns as the child mode.
func execInNS(ns, mode string, env ...string) *exec.Cmd {
	cmd := exec.Command("ip", "netns", "exec", ns, os.Args[0], "-test.run=^$")
	cmd.Env = append(append(os.Environ(), childEnv+"="+mode), env...)
	return cmd
}

func (l *lab) up(cfg Config) childResult {
	cfg.ResolvConf = filepath.Join(l.dir, "resolv.conf")
	if cfg.CarrierWait == 0 {
		cfg.CarrierWait = 3 * time.Second
	}
	b, _ := json.Marshal(cfg)
	return l.run("up", childEnv+"_CONFIG="+string(b))
}

func iface(res childResult, name string) Interface {
	for _, i := range res.Interfaces {
		if i.Name == name {
			return i
		}
	}
	return Interface{}
}

func TestDHCPLease(t *testing.T) {
	l := newLab(t, 1)
	l.dnsmasq("s0", "10.77.0")
	res := l.up(Config{Links: []string{"c0"}})
	require.Empty(t, res.Err)
	c0 := iface(res, "c0")
	assert.Equal(t, "dhcp", c0.Source)
	assert.True(t, strings.HasPrefix(c0.Address.String(), "10.77.0.5") || strings.HasPrefix(c0.Address.String(), "10.77.0.60"), "address %s in the range", c0.Address)
	assert.Equal(t, 24, c0.Address.Bits())
	assert.Contains(t, res.Routes, "default via 10.77.0.1 dev c0")
	assert.Contains(t, res.Resolv, "nameserver 10.77.0.53")
	t.Logf("first lease after %.2f s", res.Seconds)
}

func TestLinkWithoutCarrierDoesNotDelayTheOthers(t *testing.T) {
	l := newLab(t, 2)
	l.dnsmasq("s0", "10.77.1")
	sh(t, "ip", "-n", l.server, "link", "set", "s1", "down") // c1 has no carrier
	res := l.up(Config{Links: []string{"c0", "c1"}, CarrierWait: 2 * time.Second, DHCPTimeout: 5 * time.Second})
	require.Empty(t, res.Err)
	assert.Equal(t, "dhcp", iface(res, "c0").Source)
	assert.False(t, iface(res, "c1").Carrier)
	assert.Less(t, res.Seconds, 2.0, "c0's lease does not wait for c1's carrier")
}

func TestStaticFromKernelIP(t *testing.T) {
	l := newLab(t, 1)
	res := l.up(Config{Links: []string{"c0"}, KernelIP: "10.77.2.9::10.77.2.1:255.255.255.0:agent:c0:off:10.77.2.53"})
	require.Empty(t, res.Err)
	c0 := iface(res, "c0")
	assert.Equal(t, "static", c0.Source)
	assert.Equal(t, "10.77.2.9/24", c0.Address.String())
	assert.Contains(t, res.Routes, "default via 10.77.2.1 dev c0")
	assert.Contains(t, res.Resolv, "nameserver 10.77.2.53")
}

func TestVLANWithDHCP(t *testing.T) {
	l := newLab(t, 1)
	if out, err := exec.Command("ip", "-n", l.server, "link", "add", "link", "s0", "name", "s0.42", "type", "vlan", "id", "42").CombinedOutput(); err != nil {
		if strings.Contains(string(out), "Unknown device type") {
			// Not a missing package: this kernel is built without 802.1Q
			// and has no modules to load. Said loudly, not hidden.
			t.Skipf("this kernel (%s) has no 802.1Q VLAN support; VLAN creation cannot be tested here", kernelRelease())
		}
		t.Fatalf("creating the server's VLAN: %v: %s", err, out)
	}
	sh(t, "ip", "-n", l.server, "link", "set", "s0.42", "up")
	l.dnsmasq("s0.42", "10.77.42")
	res := l.up(Config{Links: []string{"c0"}, VLANs: "c0.42", DHCPTimeout: 6 * time.Second})
	require.Empty(t, res.Err)
	v := iface(res, "c0.42")
	assert.Equal(t, "dhcp", v.Source, "%+v", res.Interfaces)
	assert.True(t, strings.HasPrefix(v.Address.String(), "10.77.42."), "VLAN address %s", v.Address)
}

func TestBadVLANIsLoggedNotFatal(t *testing.T) {
	l := newLab(t, 1)
	l.dnsmasq("s0", "10.77.3")
	res := l.up(Config{Links: []string{"c0"}, VLANs: "c0.5000,nosuch.7"})
	require.Empty(t, res.Err)
	assert.Equal(t, "dhcp", iface(res, "c0").Source)
}

func TestLLDPFromThePeer(t *testing.T) {
	l := newLab(t, 2)
	sh(t, "ip", "-n", l.client, "link", "set", "c0", "up")
	sh(t, "ip", "-n", l.client, "link", "set", "c1", "up")
	l.run("lldp-send", childEnv+"_IFACES=s0")
	start := time.Now()
	res := l.run("lldp-listen", childEnv+"_IFACES=c0,c1")
	require.Empty(t, res.Err)
	require.Contains(t, res.LLDP, "c0")
	assert.NotContains(t, res.LLDP, "c1", "nothing was sent on c1")
	n := Summarize(res.LLDP["c0"])
	assert.Equal(t, "tor-switch-3", n.SystemName)
	assert.Equal(t, "Ethernet1/7", n.PortID)
	assert.Less(t, time.Since(start), 15*time.Second)
}

func kernelRelease() string {
	var u unix.Utsname
	unix.Uname(&u)
	return unix.ByteSliceToString(u.Release[:])
}

// dnsmasq6 serves DHCPv6 (and router advertisements) on iface.
func (l *lab) dnsmasq6(iface string) {
	t := l.t
	sh(t, "ip", "-n", l.server, "addr", "add", "fd00:77::1/64", "dev", iface, "nodad")
	cmd := exec.Command("ip", "netns", "exec", l.server, "dnsmasq", "--no-daemon", "--conf-file=/dev/null", "--port=0",
		"--interface="+iface, "--bind-interfaces", "--pid-file=", "--dhcp-leasefile="+filepath.Join(l.dir, iface+".leases6"),
		"--dhcp-range=fd00:77::100,fd00:77::1ff,64,1h", "--enable-ra", "--dhcp-option=option6:dns-server,[fd00:77::53]")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	log, _ := os.Create(filepath.Join(l.dir, iface+".dnsmasq6.log"))
	cmd.Stdout, cmd.Stderr = log, log
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		cmd.Wait()
		if t.Failed() {
			b, _ := os.ReadFile(filepath.Join(l.dir, iface+".dnsmasq6.log"))
			t.Logf("dnsmasq (v6) on %s:\n%s", iface, b)
		}
	})
}

func TestDHCPv6Lease(t *testing.T) {
	l := newLab(t, 1)
	l.dnsmasq6("s0")
	res := l.up(Config{Links: []string{"c0"}, DHCPTimeout: 8 * time.Second})
	require.Empty(t, res.Err)
	c0 := iface(res, "c0")
	assert.True(t, strings.HasPrefix(c0.Address6.String(), "fd00:77::1"), "DHCPv6 address %s in the range", c0.Address6)
	assert.Contains(t, fmt.Sprint(c0.DNS6), "fd00:77::53")
	t.Logf("first DHCPv6 lease after %.2f s", res.Seconds)
}
