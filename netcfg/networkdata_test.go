package netcfg

import (
	"errors"
	"net"
	"net/netip"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var testNICs = map[string]string{"52:54:00:00:00:01": "eth0", "52:54:00:00:00:02": "eth1", "52:54:00:00:00:03": "eth2"}

// Shapes as Nova writes network_data.json and Metal3 users hand it to
// Ironic (preprovisioningNetworkDataName).
const (
	ndStaticV4 = `{
  "links": [{"id": "enp1s0", "type": "phy", "ethernet_mac_address": "52:54:00:00:00:01", "mtu": 1450}],
  "networks": [{"id": "provisioning", "type": "ipv4", "link": "enp1s0", "ip_address": "192.168.111.20", "netmask": "255.255.255.0",
    "routes": [{"network": "0.0.0.0", "netmask": "0.0.0.0", "gateway": "192.168.111.1"},
               {"network": "10.10.0.0", "netmask": "255.255.0.0", "gateway": "192.168.111.254"}]}],
  "services": [{"type": "dns", "address": "192.168.111.1"}]
}`
	ndStaticV6 = `{
  "links": [{"id": "port0", "type": "ethernet", "ethernet_mac_address": "52:54:00:00:00:02"}],
  "networks": [{"id": "v6", "type": "ipv6", "link": "port0", "ip_address": "fd2e:6f44:5dd8:c956::14", "netmask": "ffff:ffff:ffff:ffff::",
    "routes": [{"network": "::", "netmask": "::", "gateway": "fd2e:6f44:5dd8:c956::1"}],
    "services": [{"type": "dns", "address": "fd2e:6f44:5dd8:c956::1"}]}]
}`
	ndBondVLAN = `{
  "links": [
    {"id": "nic1", "type": "phy", "ethernet_mac_address": "52:54:00:00:00:01"},
    {"id": "nic2", "type": "phy", "ethernet_mac_address": "52:54:00:00:00:02"},
    {"id": "bond0", "type": "bond", "bond_links": ["nic1", "nic2"], "bond_mode": "802.3ad", "bond_miimon": 100,
     "bond_xmit_hash_policy": "layer3+4", "ethernet_mac_address": "52:54:00:00:00:01", "mtu": 9000},
    {"id": "vlan101", "type": "vlan", "vlan_link": "bond0", "vlan_id": 101, "vlan_mac_address": "52:54:00:00:00:01", "mtu": "1500"}
  ],
  "networks": [{"id": "n", "type": "ipv4", "link": "vlan101", "ip_address": "10.1.0.5/24",
    "routes": [{"network": "0.0.0.0", "netmask": "0", "gateway": "10.1.0.1"}]}],
  "services": [{"type": "dns", "address": "10.1.0.1"}, {"type": "dns", "address": "10.1.0.1"}, {"type": "ntp", "address": "x"}]
}`
	ndMixed = `{
  "links": [
    {"id": "a", "type": "phy", "ethernet_mac_address": "52:54:00:00:00:01"},
    {"id": "b", "type": "phy", "ethernet_mac_address": "52:54:00:00:00:02"}
  ],
  "networks": [
    {"id": "s", "type": "ipv4", "link": "a", "ip_address": "192.0.2.10", "netmask": "24"},
    {"id": "s6", "type": "ipv6_slaac", "link": "a"},
    {"id": "d", "type": "ipv4_dhcp", "link": "b"},
    {"id": "d6", "type": "ipv6_dhcp", "link": "b"}
  ],
  "services": []
}`
	ndBad = `{
  "links": [
    {"id": "ok", "type": "phy", "ethernet_mac_address": "52:54:00:00:00:01"},
    {"id": "ghost", "type": "phy", "ethernet_mac_address": "de:ad:be:ef:00:01"},
    {"id": "weird", "type": "infiniband-thing", "ethernet_mac_address": "52:54:00:00:00:02"},
    {"id": "vx", "type": "vlan", "vlan_link": "ghost", "vlan_id": 5},
    {"id": "vbad", "type": "vlan", "vlan_link": "ok", "vlan_id": 5000},
    {"id": "b", "type": "bond", "bond_links": ["ok"], "bond_mode": "round-robin-ish"}
  ],
  "networks": [
    {"id": "good", "type": "ipv4", "link": "ok", "ip_address": "192.0.2.10", "netmask": "255.255.255.0"},
    {"id": "on-ghost", "type": "ipv4", "link": "ghost", "ip_address": "192.0.2.11", "netmask": "255.255.255.0"},
    {"id": "badaddr", "type": "ipv4", "link": "ok", "ip_address": "192.0.2.300", "netmask": "255.255.255.0"},
    {"id": "holes", "type": "ipv4", "link": "ok", "ip_address": "192.0.2.12", "netmask": "255.0.255.0"},
    {"id": "fam", "type": "ipv6", "link": "ok", "ip_address": "192.0.2.13", "netmask": "64"},
    {"id": "rt", "type": "ipv4", "link": "ok", "ip_address": "198.51.100.2", "netmask": "255.255.255.0",
     "routes": [{"network": "::", "netmask": "::", "gateway": "fe80::1"}, {"network": "0.0.0.0", "netmask": "0.0.0.0", "gateway": "198.51.100.1"}]},
    {"id": "what", "type": "ipv5", "link": "ok"}
  ],
  "services": [{"type": "dns", "address": "not-an-ip"}, {"type": "dns", "address": "192.0.2.53"}]
}`
)

func TestParseNetworkData(t *testing.T) {
	for _, tc := range []struct {
		name    string
		json    string
		keep    map[string]bool
		want    Plan
		errWhat []string // PlanError.Where of each expected error, in order
		errIs   []error
	}{
		{name: "static IPv4 with MTU, routes and DNS", json: ndStaticV4, want: Plan{
			Links:     []PlannedLink{{ID: "enp1s0", Name: "eth0", Kind: "phy", MTU: 1450}},
			Addresses: []PlannedAddress{{Link: "eth0", Prefix: netip.MustParsePrefix("192.168.111.20/24")}},
			Routes: []PlannedRoute{
				{Link: "eth0", Dst: netip.MustParsePrefix("0.0.0.0/0"), Gateway: netip.MustParseAddr("192.168.111.1")},
				{Link: "eth0", Dst: netip.MustParsePrefix("10.10.0.0/16"), Gateway: netip.MustParseAddr("192.168.111.254")},
			},
			DNS:   []netip.Addr{netip.MustParseAddr("192.168.111.1")},
			Taken: map[string]bool{"eth0": true},
		}},
		{name: "static IPv6 with a default route and the network's DNS", json: ndStaticV6, want: Plan{
			Links:     []PlannedLink{{ID: "port0", Name: "eth1", Kind: "phy"}},
			Addresses: []PlannedAddress{{Link: "eth1", Prefix: netip.MustParsePrefix("fd2e:6f44:5dd8:c956::14/64")}},
			Routes:    []PlannedRoute{{Link: "eth1", Dst: netip.MustParsePrefix("::/0"), Gateway: netip.MustParseAddr("fd2e:6f44:5dd8:c956::1")}},
			DNS:       []netip.Addr{netip.MustParseAddr("fd2e:6f44:5dd8:c956::1")},
			Taken:     map[string]bool{"eth1": true},
		}},
		{name: "bond of two NICs with a VLAN on top", json: ndBondVLAN, want: Plan{
			Links: []PlannedLink{
				{ID: "nic1", Name: "eth0", Kind: "phy"},
				{ID: "nic2", Name: "eth1", Kind: "phy"},
				{ID: "bond0", Name: "bond0", Kind: "bond", MTU: 9000, MAC: mustMAC("52:54:00:00:00:01"), Members: []string{"eth0", "eth1"},
					BondMode: "802.3ad", XmitHashPolicy: "layer3+4", Miimon: 100},
				{ID: "vlan101", Name: "bond0.101", Kind: "vlan", MTU: 1500, MAC: mustMAC("52:54:00:00:00:01"), Parent: "bond0", VLANID: 101},
			},
			Addresses: []PlannedAddress{{Link: "bond0.101", Prefix: netip.MustParsePrefix("10.1.0.5/24")}},
			Routes:    []PlannedRoute{{Link: "bond0.101", Dst: netip.MustParsePrefix("0.0.0.0/0"), Gateway: netip.MustParseAddr("10.1.0.1")}},
			DNS:       []netip.Addr{netip.MustParseAddr("10.1.0.1")},
			Taken:     map[string]bool{"eth0": true, "eth1": true, "bond0": true},
		}},
		{name: "DHCP, SLAAC and static mixed", json: ndMixed, want: Plan{
			Links:     []PlannedLink{{ID: "a", Name: "eth0", Kind: "phy"}, {ID: "b", Name: "eth1", Kind: "phy"}},
			Addresses: []PlannedAddress{{Link: "eth0", Prefix: netip.MustParsePrefix("192.0.2.10/24")}},
			DHCPv4:    []string{"eth1"},
			DHCPv6:    []string{"eth1"},
			SLAAC:     []string{"eth0"},
			Taken:     map[string]bool{"eth0": true, "eth1": true},
		}},
		{name: "ip= wins for the interface it names", json: ndMixed, keep: map[string]bool{"eth0": true}, want: Plan{
			Links:  []PlannedLink{{ID: "b", Name: "eth1", Kind: "phy"}},
			DHCPv4: []string{"eth1"},
			DHCPv6: []string{"eth1"},
			Taken:  map[string]bool{"eth1": true},
		}, errWhat: []string{"link a", "network s", "network s6"}},
		{name: "bad parts skipped, the rest planned", json: ndBad, want: Plan{
			Links: []PlannedLink{{ID: "ok", Name: "eth0", Kind: "phy"}},
			Addresses: []PlannedAddress{
				{Link: "eth0", Prefix: netip.MustParsePrefix("192.0.2.10/24")},
				{Link: "eth0", Prefix: netip.MustParsePrefix("198.51.100.2/24")},
			},
			Routes: []PlannedRoute{{Link: "eth0", Dst: netip.MustParsePrefix("0.0.0.0/0"), Gateway: netip.MustParseAddr("198.51.100.1")}},
			DNS:    []netip.Addr{netip.MustParseAddr("192.0.2.53")},
			Taken:  map[string]bool{"eth0": true},
		},
			errWhat: []string{"link ghost", "link weird", "link b", "link vx", "link vbad", "network on-ghost", "network badaddr", "network holes", "network fam", "network rt", "network what", "services"},
			errIs:   []error{ErrNoSuchNIC, ErrUnknownLinkType},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			nd, err := ParseNetworkData([]byte(tc.json))
			require.NoError(t, err)
			got, errs := nd.Plan(testNICs, tc.keep)
			for _, e := range errs {
				t.Log(e)
			}
			assert.Equal(t, tc.want, *got)
			var where []string
			for _, e := range errs {
				var pe *PlanError
				require.ErrorAs(t, e, &pe)
				where = append(where, pe.Where)
			}
			assert.Equal(t, tc.errWhat, where)
			for _, target := range tc.errIs {
				found := false
				for _, e := range errs {
					found = found || errors.Is(e, target)
				}
				assert.True(t, found, "no error is %v", target)
			}
		})
	}
}

func mustMAC(s string) net.HardwareAddr {
	m, err := net.ParseMAC(s)
	if err != nil {
		panic(err)
	}
	return m
}

func TestParseNetworkDataBadJSON(t *testing.T) {
	for _, in := range []string{``, `{`, `[]`, `{"links": {}}`, `{"links": [{"mtu": "big"}]}`, `{"networks": [{"routes": 5}]}`} {
		_, err := ParseNetworkData([]byte(in))
		assert.Error(t, err, "%q", in)
	}
	nd, err := ParseNetworkData([]byte(`{}`))
	require.NoError(t, err)
	p, errs := nd.Plan(testNICs, nil)
	assert.Empty(t, errs)
	assert.Empty(t, p.Links)
}

func FuzzParseNetworkData(f *testing.F) {
	for _, s := range []string{ndStaticV4, ndStaticV6, ndBondVLAN, ndMixed, ndBad, `{}`, `{"links":[{"type":"bond","bond_links":["x","x"]}]}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		nd, err := ParseNetworkData(b)
		if err != nil {
			return
		}
		p, _ := nd.Plan(testNICs, map[string]bool{"eth2": true})
		names := map[string]bool{}
		for _, l := range p.Links {
			if names[l.Name] {
				t.Fatalf("interface %s planned twice", l.Name)
			}
			names[l.Name] = true
			if l.Name == "eth2" || !validIfName(l.Name) {
				t.Fatalf("bad or kept interface planned: %q", l.Name)
			}
			if l.Kind == "vlan" && (l.VLANID < 1 || l.VLANID > 4094) {
				t.Fatalf("VLAN id %d planned", l.VLANID)
			}
		}
		for _, a := range p.Addresses {
			if !names[a.Link] || !a.Prefix.IsValid() {
				t.Fatalf("address %v on unplanned link %s", a.Prefix, a.Link)
			}
		}
		for _, r := range p.Routes {
			if r.Dst.Addr().Is4() != r.Gateway.Is4() {
				t.Fatalf("route mixes families: %+v", r)
			}
		}
	})
}
