package netcfg

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// waitChild runs the inspection waits inside the client namespace (see
// TestMain): it is called from there before m.Run.
func waitChild(mode string) bool {
	switch mode {
	case "lldp-wait":
		timeout, _ := time.ParseDuration(os.Getenv(childEnv + "_TIMEOUT"))
		start := time.Now()
		got, err := CollectLLDP(context.Background(), strings.Split(os.Getenv(childEnv+"_IFACES"), ","), timeout, WithCarrierOnly(), WithPollInterval(50*time.Millisecond))
		res := childResult{LLDP: got, Seconds: time.Since(start).Seconds()}
		if err != nil {
			res.Err = err.Error()
		}
		json.NewEncoder(os.Stdout).Encode(res)
	case "lldp-watch":
		timeout, _ := time.ParseDuration(os.Getenv(childEnv + "_TIMEOUT"))
		start := time.Now()
		ifaces := strings.Split(os.Getenv(childEnv+"_IFACES"), ",")
		w := WatchLLDP(context.Background(), func(context.Context) ([]string, error) { return ifaces, nil }, timeout, WithPollInterval(50*time.Millisecond))
		<-w.Done()
		res := childResult{LLDP: map[string][]TLV{}, Seconds: time.Since(start).Seconds()}
		for _, i := range ifaces {
			if tlvs := w.Heard(i); tlvs != nil {
				res.LLDP[i] = tlvs
			}
		}
		json.NewEncoder(os.Stdout).Encode(res)
	case "links-down":
		var res childResult
		if err := LinksDown(); err != nil {
			res.Err = err.Error()
		}
		json.NewEncoder(os.Stdout).Encode(res)
	case "up-then-wait":
		var cfg Config
		json.Unmarshal([]byte(os.Getenv(childEnv+"_CONFIG")), &cfg)
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		Up(ctx, cfg) // leases keep being sought in the background while ctx lives
		start := time.Now()
		missing := WaitForAddresses(ctx, cfg.Links, 12*time.Second, WithPollInterval(50*time.Millisecond))
		res := childResult{Seconds: time.Since(start).Seconds()}
		if len(missing) > 0 {
			res.Err = "missing: " + strings.Join(missing, ",")
		}
		for _, l := range cfg.Links {
			if (kernelLinks{}).HasIPv4(l) {
				res.Routes = append(res.Routes, l) // the links with an address
			}
		}
		json.NewEncoder(os.Stdout).Encode(res)
	case "lldp-send-bad":
		// A broken frame first (a TLV claiming more than the frame), then
		// good ones: the listener skips the first and takes the others.
		iface := os.Getenv(childEnv + "_IFACES")
		sendFrames(iface, []byte{0x02, 0xff, 0x01}, 3, 100*time.Millisecond)
		sendLLDP(iface, 8*time.Second)
	default:
		return false
	}
	return true
}

func sendFrames(iface string, pdu []byte, n int, gap time.Duration) {
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
	frame = append(frame, pdu...)
	addr := &unix.SockaddrLinklayer{Protocol: htons(ethPLLDP), Ifindex: ifi.Index, Halen: 6}
	copy(addr.Addr[:], lldpMulticast[:])
	for i := 0; i < n; i++ {
		unix.Sendto(fd, frame, 0, addr)
		time.Sleep(gap)
	}
}

// TestLLDPWaitEndsWhenEveryCarrierLinkHeard: c0's switch talks (after a
// malformed frame), c1 has no carrier. The wait ends once c0 heard,
// long before its 10 s timeout, and the bad frame breaks nothing.
func TestLLDPWaitEndsWhenEveryCarrierLinkHeard(t *testing.T) {
	l := newLab(t, 2)
	sh(t, "ip", "-n", l.client, "link", "set", "c0", "up")
	sh(t, "ip", "-n", l.client, "link", "set", "c1", "up")
	sh(t, "ip", "-n", l.server, "link", "set", "s1", "down") // c1: no carrier
	l.runIn(l.server, "lldp-send-bad", childEnv+"_IFACES=s0")
	res := l.run("lldp-wait", childEnv+"_IFACES=c0,c1", childEnv+"_TIMEOUT=10s")
	require.Empty(t, res.Err)
	require.Contains(t, res.LLDP, "c0")
	assert.NotContains(t, res.LLDP, "c1")
	assert.Equal(t, "tor-switch-3", Summarize(res.LLDP["c0"]).SystemName)
	assert.Less(t, res.Seconds, 5.0, "the wait did not end when c0 heard its switch")
}

// TestWatchLLDP: the background collection stops waiting for a link
// without carrier, and what c0 heard is there once it is done.
func TestWatchLLDP(t *testing.T) {
	l := newLab(t, 2)
	sh(t, "ip", "-n", l.client, "link", "set", "c0", "up")
	sh(t, "ip", "-n", l.client, "link", "set", "c1", "up")
	sh(t, "ip", "-n", l.server, "link", "set", "s1", "down") // c1: no carrier
	l.runIn(l.server, "lldp-send", childEnv+"_IFACES=s0")
	res := l.run("lldp-watch", childEnv+"_IFACES=c0,c1", childEnv+"_TIMEOUT=10s")
	require.Contains(t, res.LLDP, "c0")
	assert.NotContains(t, res.LLDP, "c1")
	assert.Equal(t, "tor-switch-3", Summarize(res.LLDP["c0"]).SystemName)
	assert.Less(t, res.Seconds, 5.0, "the watch did not end when c0 heard its switch")
}

// TestWatchLLDPWithoutLinks: links that cannot be listed end the watch
// at once with nothing heard.
func TestWatchLLDPWithoutLinks(t *testing.T) {
	for _, tc := range []struct {
		name  string
		links func(context.Context) ([]string, error)
	}{
		{"listing fails", func(context.Context) ([]string, error) { return nil, errors.New("no sysfs") }},
		{"no links", func(context.Context) ([]string, error) { return nil, nil }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := WatchLLDP(context.Background(), tc.links, time.Minute)
			select {
			case <-w.Done():
			case <-time.After(5 * time.Second):
				t.Fatal("the watch did not end")
			}
			assert.Nil(t, w.Heard("eth0"))
		})
	}
}

// TestLinksDown: every link of the namespace goes down but loopback.
func TestLinksDown(t *testing.T) {
	l := newLab(t, 2)
	sh(t, "ip", "-n", l.client, "link", "set", "c0", "up")
	sh(t, "ip", "-n", l.client, "link", "set", "c1", "up")
	res := l.run("links-down")
	require.Empty(t, res.Err)
	for _, tc := range []struct {
		link string
		up   bool
	}{{"lo", true}, {"c0", false}, {"c1", false}} {
		out, err := exec.Command("ip", "-n", l.client, "-o", "link", "show", tc.link).CombinedOutput()
		require.NoError(t, err, "%s", out)
		flags := strings.SplitN(string(out), ">", 2)[0]
		assert.Equal(t, tc.up, strings.Contains(flags, ",UP") || strings.Contains(flags, "<UP"), "%s: %s", tc.link, out)
	}
}

// TestLLDPWaitIsBounded: c1 has carrier but its switch never talks.
func TestLLDPWaitIsBounded(t *testing.T) {
	l := newLab(t, 2)
	sh(t, "ip", "-n", l.client, "link", "set", "c0", "up")
	sh(t, "ip", "-n", l.client, "link", "set", "c1", "up")
	l.runIn(l.server, "lldp-send", childEnv+"_IFACES=s0")
	res := l.run("lldp-wait", childEnv+"_IFACES=c0,c1", childEnv+"_TIMEOUT=3s")
	require.Contains(t, res.LLDP, "c0")
	assert.NotContains(t, res.LLDP, "c1")
	assert.GreaterOrEqual(t, res.Seconds, 2.9, "it waited for c1 until the timeout")
	assert.Less(t, res.Seconds, 5.0, "the wait is bounded by its timeout")
}

// TestDHCPAllInterfacesWait: c1's DHCP server starts late; Up returns
// with c0's lease, and the wait holds until c1 has its address too.
func TestDHCPAllInterfacesWait(t *testing.T) {
	l := newLab(t, 2)
	l.dnsmasq("s0", "10.77.5")
	l.dnsmasq("s1", "10.77.6", "--dhcp-reply-delay=2")
	b, _ := json.Marshal(Config{Links: []string{"c0", "c1"}, CarrierWait: 3 * time.Second, DHCPTimeout: 5 * time.Second, ResolvConf: l.dir + "/resolv.conf"})
	res := l.run("up-then-wait", childEnv+"_CONFIG="+string(b))
	require.Empty(t, res.Err)
	assert.Equal(t, []string{"c0", "c1"}, res.Routes, "both links have an address when the wait ends")
	assert.Greater(t, res.Seconds, 0.5, "c1's lease came late: the wait must have waited for it")
}

// runIn starts a child mode in namespace ns in the background.
func (l *lab) runIn(ns, mode string, env ...string) {
	t := l.t
	cmd := execInNS(ns, mode, env...)
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
}
