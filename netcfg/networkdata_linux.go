package netcfg

import (
	"context"
	"errors"
	"fmt"
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// netlinkLink is the object netlink.LinkAdd gets for a bond or a VLAN
// the plan creates; parentIndex resolves the VLAN's parent. NICs are
// not created and have none.
func (l PlannedLink) netlinkLink(parentIndex func(name string) (int, error)) (netlink.Link, error) {
	attrs := netlink.NewLinkAttrs()
	attrs.Name = l.Name
	attrs.MTU = l.MTU
	attrs.HardwareAddr = l.MAC
	switch l.Kind {
	case "bond":
		b := netlink.NewLinkBond(attrs)
		mode, err := bondMode(l.BondMode)
		if err != nil {
			return nil, err
		}
		b.Mode = netlink.StringToBondMode(mode)
		if l.Miimon > 0 {
			b.Miimon = l.Miimon
		}
		if l.XmitHashPolicy != "" {
			p, err := bondXmitHashPolicy(l.XmitHashPolicy)
			if err != nil {
				return nil, err
			}
			b.XmitHashPolicy = netlink.StringToBondXmitHashPolicy(p)
		}
		if l.LACPRate != "" && b.Mode == netlink.BOND_MODE_802_3AD {
			b.LacpRate = netlink.StringToBondLacpRate(l.LACPRate)
		}
		return b, nil
	case "vlan":
		idx, err := parentIndex(l.Parent)
		if err != nil {
			return nil, fmt.Errorf("VLAN parent %s: %w", l.Parent, err)
		}
		attrs.ParentIndex = idx
		return &netlink.Vlan{LinkAttrs: attrs, VlanId: l.VLANID, VlanProtocol: netlink.VLAN_PROTOCOL_8021Q}, nil
	}
	return nil, fmt.Errorf("link %s: a %s is not created", l.Name, l.Kind)
}

func linkIndex(name string) (int, error) {
	l, err := netlink.LinkByName(name)
	if err != nil {
		return 0, err
	}
	return l.Attrs().Index, nil
}

// applyLink brings one planned link up: a NIC gets its MTU; a bond is
// created and its members enslaved (down first, as the kernel wants);
// a VLAN is created on its parent.
func applyLink(l PlannedLink) error {
	if l.Kind != "phy" {
		obj, err := l.netlinkLink(linkIndex)
		if err != nil {
			return err
		}
		if err := netlink.LinkAdd(obj); errors.Is(err, unix.EEXIST) && l.Kind == "bond" {
			// Loading bonding makes an empty bond0 of its own: give it
			// the mode and options asked for (the kernel takes them
			// while the bond is down and has no members).
			if cur, lerr := netlink.LinkByName(l.Name); lerr == nil {
				netlink.LinkSetDown(cur)
			}
			if err := netlink.LinkModify(obj); err != nil {
				return fmt.Errorf("setting up bond %s: %w", l.Name, err)
			}
		} else if err != nil && !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("creating %s %s: %w", l.Kind, l.Name, err)
		}
	}
	link, err := netlink.LinkByName(l.Name)
	if err != nil {
		return err
	}
	for _, m := range l.Members {
		ml, err := netlink.LinkByName(m)
		if err != nil {
			return fmt.Errorf("bond member %s: %w", m, err)
		}
		if err := netlink.LinkSetDown(ml); err != nil {
			return fmt.Errorf("bond member %s down: %w", m, err)
		}
		if err := netlink.LinkSetMasterByIndex(ml, link.Attrs().Index); err != nil {
			return fmt.Errorf("enslaving %s to %s: %w", m, l.Name, err)
		}
		if err := netlink.LinkSetUp(ml); err != nil {
			return fmt.Errorf("bond member %s up: %w", m, err)
		}
	}
	if l.MTU > 0 && link.Attrs().MTU != l.MTU {
		if err := netlink.LinkSetMTU(link, l.MTU); err != nil {
			return fmt.Errorf("MTU %d on %s: %w", l.MTU, l.Name, err)
		}
	}
	if err := netlink.LinkSetUp(link); err != nil {
		return fmt.Errorf("%s up: %w", l.Name, err)
	}
	return nil
}

func routeFor(r PlannedRoute, index int) *netlink.Route {
	rt := &netlink.Route{LinkIndex: index, Gw: r.Gateway.AsSlice()}
	if r.Dst.Bits() > 0 {
		rt.Dst = prefixNet(r.Dst)
	}
	if r.Dst.Addr().Is4() {
		rt.Family = netlink.FAMILY_V4
	} else {
		rt.Family = netlink.FAMILY_V6
	}
	return rt
}

// applyPlan sets up what network_data.json asks for, each piece on its
// own: one that fails is logged and the rest still applied. It returns
// whether any static address was set.
func applyPlan(ctx context.Context, p *Plan, st *State, cfg Config) bool {
	failed := map[string]bool{}
	for _, l := range p.Links {
		if ctx.Err() != nil {
			return false
		}
		if err := applyLink(l); err != nil {
			cfg.Log.Error("network_data.json: link not set up", "link", l.ID, "name", l.Name, "error", err)
			failed[l.Name] = true
			continue
		}
		st.mu.Lock()
		if st.interfaces[l.Name] == nil {
			mac := ""
			if nl, err := netlink.LinkByName(l.Name); err == nil {
				mac = nl.Attrs().HardwareAddr.String()
			}
			st.interfaces[l.Name] = &Interface{Name: l.Name, MAC: mac}
		}
		st.mu.Unlock()
		cfg.Log.Info("network_data.json link", "id", l.ID, "name", l.Name, "kind", l.Kind, "mtu", l.MTU, "members", l.Members, "parent", l.Parent)
	}
	addressed := false
	for _, a := range p.Addresses {
		if failed[a.Link] {
			continue
		}
		l, err := netlink.LinkByName(a.Link)
		if err == nil {
			// No DAD wait: the address is ours by configuration, and
			// lookup should not wait a second or two for it.
			err = netlink.AddrReplace(l, &netlink.Addr{IPNet: prefixNet(a.Prefix), Flags: unix.IFA_F_NODAD})
		}
		if err != nil {
			cfg.Log.Error("network_data.json: address not set", "link", a.Link, "address", a.Prefix, "error", err)
			continue
		}
		addressed = true
		st.mu.Lock()
		i := st.interfaces[a.Link]
		if a.Prefix.Addr().Is4() {
			i.Address = a.Prefix
		} else {
			i.Address6 = a.Prefix
		}
		i.Source = "static"
		st.mu.Unlock()
		cfg.Log.Info("network_data.json address", "link", a.Link, "address", a.Prefix)
	}
	for _, r := range p.Routes {
		if failed[r.Link] {
			continue
		}
		idx, err := linkIndex(r.Link)
		if err == nil {
			err = netlink.RouteReplace(routeFor(r, idx))
		}
		if err != nil {
			cfg.Log.Error("network_data.json: route not set", "link", r.Link, "to", r.Dst, "via", r.Gateway, "error", err)
			continue
		}
		if r.Dst.Bits() == 0 {
			st.mu.Lock()
			if r.Dst.Addr().Is4() {
				st.interfaces[r.Link].Gateway = r.Gateway
				// DHCP on other links must not take the default route.
				st.defaultVia = r.Link
			}
			st.mu.Unlock()
		}
		cfg.Log.Info("network_data.json route", "link", r.Link, "to", r.Dst, "via", r.Gateway)
	}
	if len(p.DNS) > 0 {
		if err := writeResolvConf(cfg.ResolvConf, p.DNS); err != nil {
			cfg.Log.Error("network_data.json: DNS servers not written", "error", err)
		} else {
			st.mu.Lock()
			for _, a := range p.Addresses {
				if i := st.interfaces[a.Link]; i != nil && i.Source == "static" {
					i.DNS = append([]netip.Addr(nil), p.DNS...)
				}
			}
			st.mu.Unlock()
		}
	}
	return addressed
}

// nicsByMAC maps each link's MAC to its name.
func nicsByMAC(links []netlink.Link) map[string]string {
	out := map[string]string{}
	for _, l := range links {
		a := l.Attrs()
		if a.HardwareAddr != nil {
			out[a.HardwareAddr.String()] = a.Name
		}
	}
	return out
}

// networkDataResult says what network_data.json took over.
type networkDataResult struct {
	owned        map[string]bool // links it configures (NICs it uses, bonds, VLANs)
	dhcp4, dhcp6 map[string]bool // of those, where it asks for DHCP
	addressed    bool
}

// applyNetworkData plans cfg.NetworkData against the machine's NICs,
// leaving ipTarget to the kernel's ip=, logs every part it skips, and
// applies the rest.
func applyNetworkData(ctx context.Context, cfg Config, links []netlink.Link, ipTarget string, st *State) networkDataResult {
	res := networkDataResult{owned: map[string]bool{}, dhcp4: map[string]bool{}, dhcp6: map[string]bool{}}
	if cfg.NetworkData == nil {
		return res
	}
	keep := map[string]bool{}
	if ipTarget != "" {
		keep[ipTarget] = true
	}
	p, errs := cfg.NetworkData.Plan(nicsByMAC(links), keep)
	for _, err := range errs {
		cfg.Log.Error("network_data.json: skipped", "error", err)
	}
	for n := range p.Taken {
		res.owned[n] = true
	}
	for _, l := range p.Links {
		res.owned[l.Name] = true
	}
	for _, n := range p.DHCPv4 {
		res.dhcp4[n] = true
	}
	for _, n := range p.DHCPv6 {
		res.dhcp6[n] = true
	}
	cfg.Log.Info("network_data.json", "plan", p.Summary(), "dhcp4", p.DHCPv4, "dhcp6", p.DHCPv6, "slaac", p.SLAAC, "dns", p.DNS)
	res.addressed = applyPlan(ctx, p, st, cfg)
	return res
}
