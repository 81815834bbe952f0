package logbundle

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// linkFlags are `ip link`'s words for the interface flags, in its order.
func linkFlags(a *netlink.LinkAttrs) string {
	var f []string
	if a.RawFlags&unix.IFF_LOOPBACK != 0 {
		f = append(f, "LOOPBACK")
	}
	if a.RawFlags&unix.IFF_BROADCAST != 0 {
		f = append(f, "BROADCAST")
	}
	if a.RawFlags&unix.IFF_POINTOPOINT != 0 {
		f = append(f, "POINTOPOINT")
	}
	if a.RawFlags&unix.IFF_MULTICAST != 0 {
		f = append(f, "MULTICAST")
	}
	if a.RawFlags&unix.IFF_UP != 0 {
		f = append(f, "UP")
	}
	if a.RawFlags&unix.IFF_RUNNING != 0 {
		f = append(f, "LOWER_UP")
	}
	return strings.Join(f, ",")
}

// linkLines are `ip link`'s two lines of a link; masters and VLAN ids
// are named by index and id, which is what an operator looks for.
func linkLines(l netlink.Link, byIndex map[int]string) string {
	a := l.Attrs()
	var b strings.Builder
	fmt.Fprintf(&b, "%d: %s: <%s> mtu %d", a.Index, a.Name, linkFlags(a), a.MTU)
	if m, ok := byIndex[a.MasterIndex]; ok && a.MasterIndex != 0 {
		fmt.Fprintf(&b, " master %s", m)
	}
	fmt.Fprintf(&b, " state %s", strings.ToUpper(a.OperState.String()))
	if v, ok := l.(*netlink.Vlan); ok {
		fmt.Fprintf(&b, " vlan id %d", v.VlanId)
	}
	fmt.Fprintf(&b, " type %s\n", l.Type())
	kind := "ether"
	if a.RawFlags&unix.IFF_LOOPBACK != 0 {
		kind = "loopback"
	}
	if len(a.HardwareAddr) > 0 {
		fmt.Fprintf(&b, "    link/%s %s\n", kind, a.HardwareAddr)
	} else {
		fmt.Fprintf(&b, "    link/none\n")
	}
	return b.String()
}

func addrLine(ad netlink.Addr, name string) string {
	fam := "inet"
	if ad.IP.To4() == nil {
		fam = "inet6"
	}
	scope := map[int]string{unix.RT_SCOPE_UNIVERSE: "global", unix.RT_SCOPE_HOST: "host", unix.RT_SCOPE_LINK: "link", unix.RT_SCOPE_SITE: "site"}[ad.Scope]
	s := fmt.Sprintf("    %s %s scope %s", fam, ad.IPNet, scope)
	if fam == "inet" {
		s += " " + name
	}
	return s + "\n"
}

func listLinks() ([]netlink.Link, map[int]string, error) {
	links, err := netlink.LinkList()
	if err != nil {
		return nil, nil, fmt.Errorf("listing links: %w", err)
	}
	sort.Slice(links, func(i, j int) bool { return links[i].Attrs().Index < links[j].Attrs().Index })
	byIndex := map[int]string{}
	for _, l := range links {
		byIndex[l.Attrs().Index] = l.Attrs().Name
	}
	return links, byIndex, nil
}

// ipAddr is `ip addr`: every link with its IPv4 and IPv6 addresses.
func (c *Collector) ipAddr(context.Context) ([]byte, error) {
	links, byIndex, err := listLinks()
	if err != nil {
		return nil, err
	}
	var b strings.Builder
	for _, l := range links {
		b.WriteString(linkLines(l, byIndex))
		addrs, err := netlink.AddrList(l, netlink.FAMILY_ALL)
		if err != nil {
			fmt.Fprintf(&b, "    (addresses: %v)\n", err)
			continue
		}
		for _, ad := range addrs {
			b.WriteString(addrLine(ad, l.Attrs().Name))
		}
	}
	return []byte(b.String()), nil
}

// ipLink is `ip link`.
func (c *Collector) ipLink(context.Context) ([]byte, error) {
	links, byIndex, err := listLinks()
	if err != nil {
		return nil, err
	}
	var b strings.Builder
	for _, l := range links {
		b.WriteString(linkLines(l, byIndex))
	}
	return []byte(b.String()), nil
}

// routeLine is one line of `ip route` / `ip -6 route`.
func routeLine(r netlink.Route, byIndex map[int]string) string {
	var b strings.Builder
	if r.Dst == nil || (r.Dst.IP.IsUnspecified() && func() bool { o, _ := r.Dst.Mask.Size(); return o == 0 }()) {
		b.WriteString("default")
	} else {
		b.WriteString(r.Dst.String())
	}
	if r.Gw != nil {
		fmt.Fprintf(&b, " via %s", r.Gw)
	}
	if n, ok := byIndex[r.LinkIndex]; ok {
		fmt.Fprintf(&b, " dev %s", n)
	}
	if p := routeProto(int(r.Protocol)); p != "" {
		fmt.Fprintf(&b, " proto %s", p)
	}
	if r.Scope == netlink.SCOPE_LINK {
		b.WriteString(" scope link")
	}
	if r.Src != nil {
		fmt.Fprintf(&b, " src %s", r.Src)
	}
	if r.Priority != 0 {
		fmt.Fprintf(&b, " metric %d", r.Priority)
	}
	return b.String() + "\n"
}

func routeProto(p int) string {
	switch p {
	case unix.RTPROT_KERNEL:
		return "kernel"
	case unix.RTPROT_BOOT:
		return "boot"
	case unix.RTPROT_STATIC:
		return "static"
	case unix.RTPROT_DHCP:
		return "dhcp"
	case unix.RTPROT_RA:
		return "ra"
	}
	return ""
}

// ipRoute is `ip route` followed by `ip -6 route` (main table).
func (c *Collector) ipRoute(context.Context) ([]byte, error) {
	_, byIndex, err := listLinks()
	if err != nil {
		return nil, err
	}
	var b strings.Builder
	for _, fam := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
		routes, err := netlink.RouteList(nil, fam)
		if err != nil {
			return nil, fmt.Errorf("listing routes: %w", err)
		}
		if fam == netlink.FAMILY_V6 && len(routes) > 0 {
			b.WriteString("# ip -6 route\n")
		}
		for _, r := range routes {
			b.WriteString(routeLine(r, byIndex))
		}
	}
	return []byte(b.String()), nil
}
