package netcfg

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/vishvananda/netlink"
)

// ndChildMode runs Up with network data inside the client namespace (as
// the "up" child does) and reports every route and MTU, then waits,
// bounded, for the link network_data leaves alone to get its DHCP lease.
const ndChildMode = "networkdata-up"

type ndChildResult struct {
	Interfaces []Interface
	Routes     []string
	MTU        map[string]int
	Resolv     string
	Err        string
}

func init() {
	if os.Getenv(childEnv) != ndChildMode {
		return
	}
	var cfg Config
	if err := json.Unmarshal([]byte(os.Getenv(childEnv+"_CONFIG")), &cfg); err != nil {
		fmt.Println(`{"Err": "bad config"}`)
		os.Exit(0)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	st, err := Up(ctx, cfg)
	res := ndChildResult{MTU: map[string]int{}}
	if err != nil {
		res.Err = err.Error()
	}
	if dhcpLink := os.Getenv(childEnv + "_WAIT_DHCP"); dhcpLink != "" && st != nil {
		for end := time.Now().Add(20 * time.Second); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
			got := false
			for _, i := range st.Interfaces() {
				got = got || (i.Name == dhcpLink && i.Source == "dhcp")
			}
			if got {
				break
			}
		}
	}
	if st != nil {
		res.Interfaces = st.Interfaces()
	}
	for _, fam := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
		routes, _ := netlink.RouteList(nil, fam)
		for _, r := range routes {
			if r.Gw == nil {
				continue
			}
			dst := "default"
			if r.Dst != nil {
				if ones, _ := r.Dst.Mask.Size(); ones > 0 {
					dst = r.Dst.String()
				}
			}
			l, _ := netlink.LinkByIndex(r.LinkIndex)
			res.Routes = append(res.Routes, dst+" via "+r.Gw.String()+" dev "+l.Attrs().Name)
		}
	}
	links, _ := netlink.LinkList()
	for _, l := range links {
		res.MTU[l.Attrs().Name] = l.Attrs().MTU
	}
	b, _ := os.ReadFile(cfg.ResolvConf)
	res.Resolv = string(b)
	json.NewEncoder(os.Stdout).Encode(res)
	os.Exit(0)
}

// TestNetworkDataAppliedInNamespace applies a static network_data.json
// for real: veth NICs found by MAC, an MTU, a static IPv4 address with a
// default and a static route, a static IPv6 address with a default
// route, DNS; a link with an unknown MAC and one of an unknown type are
// logged and skipped; the NIC network_data.json does not mention still
// gets DHCP, without taking the default route.
func TestNetworkDataAppliedInNamespace(t *testing.T) {
	l := newLab(t, 3)
	for i, mac := range []string{"52:54:00:88:00:01", "52:54:00:88:00:02", "52:54:00:88:00:03"} {
		sh(t, "ip", "-n", l.client, "link", "set", fmt.Sprintf("c%d", i), "address", mac)
	}
	l.dnsmasq("s2", "10.88.2")
	nd, err := ParseNetworkData([]byte(`{
  "links": [
    {"id": "prov", "type": "phy", "ethernet_mac_address": "52:54:00:88:00:01", "mtu": 1400},
    {"id": "v6", "type": "phy", "ethernet_mac_address": "52:54:00:88:00:02"},
    {"id": "ghost", "type": "phy", "ethernet_mac_address": "52:54:00:ff:ff:ff"},
    {"id": "odd", "type": "token-ring", "ethernet_mac_address": "52:54:00:88:00:03"}
  ],
  "networks": [
    {"id": "n4", "type": "ipv4", "link": "prov", "ip_address": "10.88.0.5", "netmask": "255.255.255.0",
     "routes": [{"network": "0.0.0.0", "netmask": "0.0.0.0", "gateway": "10.88.0.1"},
                {"network": "10.99.0.0", "netmask": "255.255.0.0", "gateway": "10.88.0.254"}]},
    {"id": "n6", "type": "ipv6", "link": "v6", "ip_address": "fd00:88::5", "netmask": "ffff:ffff:ffff:ffff::",
     "routes": [{"network": "::", "netmask": "::", "gateway": "fd00:88::1"}]},
    {"id": "lost", "type": "ipv4", "link": "ghost", "ip_address": "10.88.9.5", "netmask": "255.255.255.0"}
  ],
  "services": [{"type": "dns", "address": "10.88.0.53"}, {"type": "dns", "address": "fd00:88::53"}]
}`))
	require.NoError(t, err)
	cfg := Config{Links: []string{"c0", "c1", "c2"}, NetworkData: nd, CarrierWait: 3 * time.Second, DHCPTimeout: 8 * time.Second,
		ResolvConf: filepath.Join(l.dir, "resolv.conf")}
	b, err := json.Marshal(cfg)
	require.NoError(t, err)
	out := l.runND(string(b), "c2")
	require.Empty(t, out.Err)

	c0, c1, c2 := ndIface(out, "c0"), ndIface(out, "c1"), ndIface(out, "c2")
	assert.Equal(t, "static", c0.Source)
	assert.Equal(t, netip.MustParsePrefix("10.88.0.5/24"), c0.Address)
	assert.Equal(t, 1400, out.MTU["c0"])
	assert.Equal(t, 1500, out.MTU["c1"], "no MTU asked for c1")
	assert.Equal(t, netip.MustParsePrefix("fd00:88::5/64"), c1.Address6)
	assert.False(t, c1.Address.IsValid(), "network_data.json gives c1 no IPv4 and no DHCP")
	assert.Equal(t, "dhcp", c2.Source, "the NIC network_data.json does not use gets DHCP")
	assert.True(t, strings.HasPrefix(c2.Address.String(), "10.88.2."), "c2 %s", c2.Address)

	assert.Contains(t, out.Routes, "default via 10.88.0.1 dev c0")
	assert.NotContains(t, out.Routes, "default via 10.88.2.1 dev c2", "a later DHCP lease does not take the static default route")
	assert.Contains(t, out.Routes, "10.99.0.0/16 via 10.88.0.254 dev c0")
	assert.Contains(t, out.Routes, "default via fd00:88::1 dev c1")
	assert.Equal(t, "# written by goipa\nnameserver 10.88.0.53\nnameserver fd00:88::53\n", out.Resolv)
}

func (l *lab) runND(cfgJSON, waitDHCP string) ndChildResult {
	t := l.t
	cmd := commandInNS(l.client, os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+ndChildMode, childEnv+"_CONFIG="+cfgJSON, childEnv+"_WAIT_DHCP="+waitDHCP)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	b, err := cmd.Output()
	t.Logf("child log:\n%s", stderr.String())
	require.NoError(t, err, "%s", b)
	var res ndChildResult
	require.NoError(t, json.Unmarshal(b, &res), "%s", b)
	return res
}

func ndIface(res ndChildResult, name string) Interface {
	for _, i := range res.Interfaces {
		if i.Name == name {
			return i
		}
	}
	return Interface{}
}

// The bond and VLAN objects handed to netlink.LinkAdd: this host's
// kernel has neither bonding nor 8021q, so they are created only in the
// VM; here the objects themselves are checked.
func TestNetworkDataNetlinkObjects(t *testing.T) {
	nd, err := ParseNetworkData([]byte(ndBondVLAN))
	require.NoError(t, err)
	p, errs := nd.Plan(testNICs, nil)
	require.Empty(t, errs)
	require.Len(t, p.Links, 4)
	parents := map[string]int{"bond0": 42}
	index := func(n string) (int, error) {
		if i, ok := parents[n]; ok {
			return i, nil
		}
		return 0, fmt.Errorf("no link %s", n)
	}

	obj, err := p.Links[2].netlinkLink(index)
	require.NoError(t, err)
	bond, ok := obj.(*netlink.Bond)
	require.True(t, ok, "%T", obj)
	assert.Equal(t, "bond0", bond.Name)
	assert.Equal(t, 9000, bond.MTU)
	assert.Equal(t, "52:54:00:00:00:01", bond.HardwareAddr.String())
	assert.Equal(t, netlink.BOND_MODE_802_3AD, bond.Mode)
	assert.Equal(t, 100, bond.Miimon)
	assert.Equal(t, netlink.BOND_XMIT_HASH_POLICY_LAYER3_4, bond.XmitHashPolicy)
	assert.Equal(t, -1, bond.DownDelay, "options network_data does not give stay the kernel's")

	obj, err = p.Links[3].netlinkLink(index)
	require.NoError(t, err)
	vlan, ok := obj.(*netlink.Vlan)
	require.True(t, ok, "%T", obj)
	assert.Equal(t, "bond0.101", vlan.Name)
	assert.Equal(t, 101, vlan.VlanId)
	assert.Equal(t, 42, vlan.ParentIndex)
	assert.Equal(t, 1500, vlan.MTU)
	assert.Equal(t, netlink.VLAN_PROTOCOL_8021Q, vlan.VlanProtocol)

	_, err = PlannedLink{Name: "x.5", Kind: "vlan", Parent: "nope", VLANID: 5}.netlinkLink(index)
	assert.Error(t, err)
	_, err = p.Links[0].netlinkLink(index)
	assert.Error(t, err, "a NIC is never created")

	for mode, want := range map[string]netlink.BondMode{"": netlink.BOND_MODE_BALANCE_RR, "active-backup": netlink.BOND_MODE_ACTIVE_BACKUP, "1": netlink.BOND_MODE_ACTIVE_BACKUP, "balance-alb": netlink.BOND_MODE_BALANCE_ALB} {
		obj, err := PlannedLink{Name: "b", Kind: "bond", BondMode: mode}.netlinkLink(index)
		require.NoError(t, err)
		assert.Equal(t, want, obj.(*netlink.Bond).Mode, "mode %q", mode)
	}
}

// Kernel ip= and network_data.json both given: ip= wins for the
// interface it names, network_data.json configures the rest.
func TestNetworkDataWithKernelIP(t *testing.T) {
	l := newLab(t, 2)
	for i, mac := range []string{"52:54:00:89:00:01", "52:54:00:89:00:02"} {
		sh(t, "ip", "-n", l.client, "link", "set", fmt.Sprintf("c%d", i), "address", mac)
	}
	nd, err := ParseNetworkData([]byte(`{
  "links": [
    {"id": "a", "type": "phy", "ethernet_mac_address": "52:54:00:89:00:01", "mtu": 1300},
    {"id": "b", "type": "phy", "ethernet_mac_address": "52:54:00:89:00:02"}
  ],
  "networks": [
    {"id": "na", "type": "ipv4", "link": "a", "ip_address": "10.89.0.99", "netmask": "255.255.255.0"},
    {"id": "nb", "type": "ipv4", "link": "b", "ip_address": "10.89.1.5", "netmask": "255.255.255.0"}
  ]
}`))
	require.NoError(t, err)
	cfg := Config{Links: []string{"c0", "c1"}, NetworkData: nd, KernelIP: "10.89.0.7::10.89.0.1:255.255.255.0::c0:off",
		CarrierWait: 3 * time.Second, DHCPTimeout: 5 * time.Second, ResolvConf: filepath.Join(l.dir, "resolv.conf")}
	b, err := json.Marshal(cfg)
	require.NoError(t, err)
	out := l.runND(string(b), "")
	require.Empty(t, out.Err)
	assert.Equal(t, netip.MustParsePrefix("10.89.0.7/24"), ndIface(out, "c0").Address, "ip= wins for c0")
	assert.Equal(t, 1500, out.MTU["c0"], "network_data.json's MTU for c0 is not applied either")
	assert.Equal(t, netip.MustParsePrefix("10.89.1.5/24"), ndIface(out, "c1").Address, "network_data.json configures the rest")
	assert.Contains(t, out.Routes, "default via 10.89.0.1 dev c0")
}
