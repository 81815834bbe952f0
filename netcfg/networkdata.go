package netcfg

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sort"
	"strconv"
	"strings"
)

// NetworkData is OpenStack's network_data.json as Nova and Ironic write
// it (Ironic puts the node's network_data on its virtual media ISO at
// openstack/latest/network_data.json): links (NICs by MAC, bonds,
// VLANs), networks (addresses and routes on a link, or DHCP/SLAAC) and
// services (DNS).
type NetworkData struct {
	Links    []NDLink    `json:"links"`
	Networks []NDNetwork `json:"networks"`
	Services []NDService `json:"services"`
}

// NDLink is one entry of "links".
type NDLink struct {
	ID                 string   `json:"id"`
	Type               string   `json:"type"`
	EthernetMACAddress string   `json:"ethernet_mac_address"`
	MTU                flexInt  `json:"mtu"`
	BondMode           string   `json:"bond_mode"`
	BondLinks          []string `json:"bond_links"`
	BondMiimon         flexInt  `json:"bond_miimon"`
	BondXmitHashPolicy string   `json:"bond_xmit_hash_policy"`
	BondLACPRate       string   `json:"bond_lacp_rate"`
	VLANID             flexInt  `json:"vlan_id"`
	VLANLink           string   `json:"vlan_link"`
	VLANMACAddress     string   `json:"vlan_mac_address"`
}

// NDNetwork is one entry of "networks".
type NDNetwork struct {
	ID        string      `json:"id"`
	Type      string      `json:"type"`
	Link      string      `json:"link"`
	IPAddress string      `json:"ip_address"`
	Netmask   string      `json:"netmask"`
	Routes    []NDRoute   `json:"routes"`
	Services  []NDService `json:"services"`
}

// NDRoute is a static route of a network.
type NDRoute struct {
	Network string `json:"network"`
	Netmask string `json:"netmask"`
	Gateway string `json:"gateway"`
}

// NDService is a service entry; goipa uses type "dns".
type NDService struct {
	Type    string `json:"type"`
	Address string `json:"address"`
}

// flexInt takes a number or a string of digits: Nova writes numbers,
// hand-written network_data (Metal3 secrets) often quotes them; null is 0.
type flexInt int

func (f *flexInt) UnmarshalJSON(b []byte) error {
	s := strings.Trim(string(b), `"`)
	if s == "" || s == "null" {
		*f = 0
		return nil
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		return fmt.Errorf("%s is not a whole number", b)
	}
	*f = flexInt(n)
	return nil
}

// ParseNetworkData parses network_data.json. Only malformed JSON is an
// error; what is wrong inside (unknown link types, bad addresses,
// references to nothing) is reported by Plan, which still plans the rest.
func ParseNetworkData(b []byte) (*NetworkData, error) {
	var nd NetworkData
	if err := json.Unmarshal(b, &nd); err != nil {
		return nil, fmt.Errorf("network_data.json: %w", err)
	}
	return &nd, nil
}

// physicalLinkTypes are Nova's VIF types that stand for a NIC of the
// machine (glean treats every type but bond and vlan as one).
var physicalLinkTypes = map[string]bool{
	"phy": true, "ethernet": true, "ovs": true, "bridge": true, "tap": true, "vif": true,
	"hw_veb": true, "hostdev": true, "hyperv": true, "vhostuser": true, "vrouter": true,
	"dvs": true, "macvtap": true, "802.1qbg": true, "802.1qbh": true, "ib_hostdev": true,
	"unbound": true, "other": true,
}

// PlannedLink is a link the plan brings up: an existing NIC (Kind
// "phy"), or a bond or VLAN it creates.
type PlannedLink struct {
	ID      string // network_data's link id
	Name    string // kernel interface name
	Kind    string // "phy", "bond" or "vlan"
	MTU     int    // 0: leave it
	MAC     net.HardwareAddr
	Members []string // bond: member interface names
	Parent  string   // vlan: parent interface name
	VLANID  int
	// Bond settings as network_data spells them.
	BondMode, XmitHashPolicy, LACPRate string
	Miimon                             int
}

// PlannedAddress is a static address on a link.
type PlannedAddress struct {
	Link   string
	Prefix netip.Prefix
}

// PlannedRoute is a static route; Dst is 0.0.0.0/0 or ::/0 for a
// default route.
type PlannedRoute struct {
	Link    string
	Dst     netip.Prefix
	Gateway netip.Addr
}

// Plan is network_data.json resolved against the machine's NICs.
type Plan struct {
	Links     []PlannedLink // in creation order: NICs, bonds, VLANs
	Addresses []PlannedAddress
	Routes    []PlannedRoute
	DHCPv4    []string // links to run DHCPv4 on
	DHCPv6    []string // links to run DHCPv6 on
	SLAAC     []string // links left to the kernel's SLAAC
	DNS       []netip.Addr
	// Taken are the NICs network_data.json uses (by MAC, as bond members
	// or VLAN parents): the caller runs no DHCP of its own on them.
	Taken map[string]bool
}

// PlanError is one thing in network_data.json that was skipped.
type PlanError struct {
	Where string // "link bond0", "network net1", "service 2"
	Err   error
}

func (e *PlanError) Error() string { return "network_data.json " + e.Where + ": " + e.Err.Error() }
func (e *PlanError) Unwrap() error { return e.Err }

// ErrNoSuchNIC is a link whose MAC matches no NIC of the machine.
var ErrNoSuchNIC = errors.New("no NIC has this MAC address")

// ErrUnknownLinkType is a link type goipa cannot set up.
var ErrUnknownLinkType = errors.New("unknown link type")

func validIfName(s string) bool {
	if s == "" || len(s) > 15 || s == "." || s == ".." {
		return false
	}
	return !strings.ContainsAny(s, "/: \t\n\x00")
}

// Plan resolves links to interface names through nics (MAC -> name) and
// lists what to configure. keep names interfaces network_data must leave
// alone (the one kernel ip= configures: ip= wins for it). Every problem
// is returned and skipped; everything else is still planned.
func (nd *NetworkData) Plan(nics map[string]string, keep map[string]bool) (*Plan, []error) {
	p := &Plan{Taken: map[string]bool{}}
	var errs []error
	fail := func(where string, err error) { errs = append(errs, &PlanError{Where: where, Err: err}) }
	names := map[string]string{} // link id -> interface name, once planned
	macToNIC := map[string]string{}
	for mac, n := range nics {
		macToNIC[normMAC(mac)] = n
	}
	planned := map[string]bool{} // interface names the plan already uses
	enslaved := map[string]bool{}
	parseMAC := func(where, s string) (net.HardwareAddr, bool) {
		if s == "" {
			return nil, true
		}
		m, err := net.ParseMAC(s)
		if err != nil {
			fail(where, fmt.Errorf("MAC address %q: %w", s, err))
			return nil, false
		}
		return m, true
	}
	// NICs first: bonds and VLANs refer to them.
	for _, l := range nd.Links {
		where := "link " + l.ID
		switch {
		case l.Type == "bond" || l.Type == "vlan":
			continue
		case !physicalLinkTypes[l.Type]:
			fail(where, fmt.Errorf("%w %q", ErrUnknownLinkType, l.Type))
			continue
		}
		n, ok := macToNIC[normMAC(l.EthernetMACAddress)]
		if !ok {
			fail(where, fmt.Errorf("%w %q", ErrNoSuchNIC, l.EthernetMACAddress))
			continue
		}
		if keep[n] {
			fail(where, fmt.Errorf("%s is configured by the kernel's ip= parameter, which wins", n))
			continue
		}
		if planned[n] || names[l.ID] != "" {
			fail(where, fmt.Errorf("%s (or the link id) is already used by another link", n))
			continue
		}
		planned[n] = true
		names[l.ID] = n
		p.Taken[n] = true
		p.Links = append(p.Links, PlannedLink{ID: l.ID, Name: n, Kind: "phy", MTU: int(l.MTU)})
	}
	physNames := map[string]bool{}
	for _, n := range names {
		physNames[n] = true
	}
	usedNames := map[string]bool{}
	for _, n := range nics {
		usedNames[n] = true
	}
	for i, l := range nd.Links {
		if l.Type != "bond" {
			continue
		}
		where := "link " + l.ID
		var members []string
		ok := len(l.BondLinks) > 0
		if !ok {
			fail(where, errors.New("a bond without bond_links"))
		}
		for _, m := range l.BondLinks {
			n, found := names[m]
			if !found || !physNames[n] {
				fail(where, fmt.Errorf("bond member %q is not a NIC link that was set up", m))
				ok = false
				continue
			}
			if enslaved[n] {
				fail(where, fmt.Errorf("bond member %s is already in a bond", n))
				ok = false
				continue
			}
			members = append(members, n)
		}
		if _, dup := names[l.ID]; dup {
			fail(where, errors.New("the link id is already used by another link"))
			ok = false
		}
		mac, macOK := parseMAC(where, l.EthernetMACAddress)
		if !ok || !macOK {
			continue
		}
		if _, err := bondMode(l.BondMode); err != nil {
			fail(where, err)
			continue
		}
		if l.BondXmitHashPolicy != "" {
			if _, err := bondXmitHashPolicy(l.BondXmitHashPolicy); err != nil {
				fail(where, err)
				continue
			}
		}
		name := l.ID
		if !validIfName(name) || usedNames[name] || planned[name] {
			name = fmt.Sprintf("bond%d", i)
		}
		if usedNames[name] || planned[name] {
			fail(where, fmt.Errorf("no free interface name for the bond (%s is taken)", name))
			continue
		}
		for _, m := range members {
			enslaved[m] = true
		}
		planned[name] = true
		names[l.ID] = name
		p.Links = append(p.Links, PlannedLink{ID: l.ID, Name: name, Kind: "bond", MTU: int(l.MTU), MAC: mac, Members: members,
			BondMode: l.BondMode, XmitHashPolicy: l.BondXmitHashPolicy, LACPRate: l.BondLACPRate, Miimon: int(l.BondMiimon)})
	}
	for _, l := range nd.Links {
		if l.Type != "vlan" {
			continue
		}
		where := "link " + l.ID
		parent, ok := names[l.VLANLink]
		if !ok {
			// A VLAN may name its parent by MAC alone (older Nova).
			if n, byMAC := macToNIC[normMAC(l.EthernetMACAddress)]; l.VLANLink == "" && byMAC && !keep[n] {
				parent, ok = n, true
			}
		}
		if !ok {
			fail(where, fmt.Errorf("vlan_link %q is not a link that was set up", l.VLANLink))
			continue
		}
		if l.VLANID < 1 || l.VLANID > 4094 {
			fail(where, fmt.Errorf("vlan_id %d is not 1-4094", l.VLANID))
			continue
		}
		mac, macOK := parseMAC(where, l.VLANMACAddress)
		if !macOK {
			continue
		}
		if enslaved[parent] {
			fail(where, fmt.Errorf("vlan_link %s is a bond member", parent))
			continue
		}
		if _, dup := names[l.ID]; dup {
			fail(where, errors.New("the link id is already used by another link"))
			continue
		}
		name := fmt.Sprintf("%s.%d", parent, l.VLANID)
		if len(name) > 15 {
			name = fmt.Sprintf("vlan%d", l.VLANID)
		}
		if planned[name] || usedNames[name] {
			fail(where, fmt.Errorf("VLAN %d on %s is already set up", l.VLANID, parent))
			continue
		}
		planned[name] = true
		names[l.ID] = name
		p.Taken[parent] = true
		p.Links = append(p.Links, PlannedLink{ID: l.ID, Name: name, Kind: "vlan", MTU: int(l.MTU), MAC: mac, Parent: parent, VLANID: int(l.VLANID)})
	}
	addDNS := func(where string, svcs []NDService) {
		for _, s := range svcs {
			if s.Type != "dns" {
				continue
			}
			a, err := netip.ParseAddr(strings.TrimSpace(s.Address))
			if err != nil {
				fail(where, fmt.Errorf("DNS server %q is not an IP address", s.Address))
				continue
			}
			if !containsAddr(p.DNS, a) {
				p.DNS = append(p.DNS, a)
			}
		}
	}
	addOnce := func(list *[]string, n string) {
		for _, x := range *list {
			if x == n {
				return
			}
		}
		*list = append(*list, n)
	}
	for _, nw := range nd.Networks {
		where := "network " + nw.ID
		link, ok := names[nw.Link]
		if !ok {
			fail(where, fmt.Errorf("link %q is not a link that was set up", nw.Link))
			continue
		}
		switch nw.Type {
		case "ipv4_dhcp":
			addOnce(&p.DHCPv4, link)
		case "ipv6_dhcp", "ipv6_dhcpv6-stateful":
			addOnce(&p.DHCPv6, link)
		case "ipv6_slaac", "ipv6_dhcpv6-stateless":
			addOnce(&p.SLAAC, link)
		case "ipv4", "ipv6":
			pfx, err := staticPrefix(nw.Type, nw.IPAddress, nw.Netmask)
			if err != nil {
				fail(where, err)
				continue
			}
			p.Addresses = append(p.Addresses, PlannedAddress{Link: link, Prefix: pfx})
			for _, r := range nw.Routes {
				rt, err := staticRoute(r, pfx.Addr().Is4())
				if err != nil {
					fail(where, err)
					continue
				}
				rt.Link = link
				p.Routes = append(p.Routes, rt)
			}
		default:
			fail(where, fmt.Errorf("unknown network type %q", nw.Type))
			continue
		}
		addDNS(where, nw.Services)
	}
	addDNS("services", nd.Services)
	return p, errs
}

func containsAddr(l []netip.Addr, a netip.Addr) bool {
	for _, x := range l {
		if x == a {
			return true
		}
	}
	return false
}

// prefixLen reads a netmask as Nova writes it (255.255.255.0, or an IPv6
// mask ffff:ffff:ffff:ffff::) or as a bare prefix length.
func prefixLen(mask string, bitLen int) (int, error) {
	mask = strings.TrimSpace(mask)
	if n, err := strconv.Atoi(mask); err == nil {
		if n < 0 || n > bitLen {
			return 0, fmt.Errorf("prefix length %d out of range", n)
		}
		return n, nil
	}
	m, err := netip.ParseAddr(mask)
	if err != nil || m.BitLen() != bitLen {
		return 0, fmt.Errorf("netmask %q is not a mask of this address family", mask)
	}
	ones, bits := net.IPMask(m.AsSlice()).Size()
	if bits == 0 {
		return 0, fmt.Errorf("netmask %q is not contiguous", mask)
	}
	return ones, nil
}

func staticPrefix(typ, ip, mask string) (netip.Prefix, error) {
	ip = strings.TrimSpace(ip)
	if a, b, ok := strings.Cut(ip, "/"); ok {
		ip, mask = a, b
	}
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("ip_address %q is not an IP address", ip)
	}
	a = a.Unmap()
	if (typ == "ipv4") != a.Is4() {
		return netip.Prefix{}, fmt.Errorf("ip_address %s is not an %s address", a, typ)
	}
	if mask == "" {
		return netip.Prefix{}, fmt.Errorf("ip_address %s has no netmask", a)
	}
	bits, err := prefixLen(mask, a.BitLen())
	if err != nil {
		return netip.Prefix{}, err
	}
	return netip.PrefixFrom(a, bits), nil
}

func staticRoute(r NDRoute, v4 bool) (PlannedRoute, error) {
	dst, err := netip.ParseAddr(strings.TrimSpace(r.Network))
	if err != nil {
		return PlannedRoute{}, fmt.Errorf("route network %q is not an IP address", r.Network)
	}
	gw, err := netip.ParseAddr(strings.TrimSpace(r.Gateway))
	if err != nil {
		return PlannedRoute{}, fmt.Errorf("route gateway %q is not an IP address", r.Gateway)
	}
	dst, gw = dst.Unmap(), gw.Unmap()
	if dst.Is4() != v4 || gw.Is4() != v4 {
		return PlannedRoute{}, fmt.Errorf("route %s via %s: not the network's address family", dst, gw)
	}
	bits, err := prefixLen(r.Netmask, dst.BitLen())
	if err != nil {
		return PlannedRoute{}, fmt.Errorf("route %s: %w", dst, err)
	}
	return PlannedRoute{Dst: netip.PrefixFrom(dst, bits).Masked(), Gateway: gw}, nil
}

// bondModes are the kernel's bonding modes by name and number, as
// network_data (and ifupdown's bond-mode) may give them.
var bondModes = map[string]string{
	"balance-rr": "balance-rr", "0": "balance-rr",
	"active-backup": "active-backup", "1": "active-backup",
	"balance-xor": "balance-xor", "2": "balance-xor",
	"broadcast": "broadcast", "3": "broadcast",
	"802.3ad": "802.3ad", "4": "802.3ad",
	"balance-tlb": "balance-tlb", "5": "balance-tlb",
	"balance-alb": "balance-alb", "6": "balance-alb",
}

func bondMode(s string) (string, error) {
	if s == "" {
		return "balance-rr", nil // the kernel's default
	}
	m, ok := bondModes[strings.ToLower(strings.TrimSpace(s))]
	if !ok {
		return "", fmt.Errorf("unknown bond_mode %q", s)
	}
	return m, nil
}

var xmitHashPolicies = map[string]bool{"layer2": true, "layer3+4": true, "layer2+3": true, "encap2+3": true, "encap3+4": true, "vlan+srcmac": true}

func bondXmitHashPolicy(s string) (string, error) {
	s = strings.ToLower(strings.TrimSpace(s))
	if !xmitHashPolicies[s] {
		return "", fmt.Errorf("unknown bond_xmit_hash_policy %q", s)
	}
	return s, nil
}

// Summary is a one-line description of the plan for the console.
func (p *Plan) Summary() string {
	var parts []string
	for _, l := range p.Links {
		parts = append(parts, l.Kind+" "+l.Name)
	}
	for _, a := range p.Addresses {
		parts = append(parts, a.Link+" "+a.Prefix.String())
	}
	sort.Strings(parts)
	return strings.Join(parts, ", ")
}
