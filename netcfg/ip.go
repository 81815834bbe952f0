package netcfg

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// IPConfig is the kernel's ip= parameter (Documentation/admin-guide/
// nfs/nfsroot.rst), as the ramdisk honours it.
type IPConfig struct {
	// Mode is "static", "dhcp" (also on, any, both, bootp, dhcp6, auto6) or
	// "off" (also none: configure nothing automatically).
	Mode     string
	Client   netip.Prefix // address with its prefix (from netmask)
	Server   netip.Addr
	Gateway  netip.Addr
	Hostname string
	Device   string // empty: the boot NIC, else the first with carrier
	DNS      []netip.Addr
	NTP      netip.Addr
}

func splitIPFields(s string) []string {
	var out []string
	var cur strings.Builder
	depth := 0
	for _, r := range s {
		switch {
		case r == '[':
			depth++
		case r == ']':
			depth--
		case r == ':' && depth == 0:
			out = append(out, cur.String())
			cur.Reset()
			continue
		}
		cur.WriteRune(r)
	}
	return append(out, cur.String())
}

func parseAddr(field, v string) (netip.Addr, error) {
	v = strings.Trim(v, "[]")
	if v == "" {
		return netip.Addr{}, nil
	}
	a, err := netip.ParseAddr(v)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("ip= %s %q is not an IP address", field, v)
	}
	return a, nil
}

var dhcpModes = map[string]bool{"dhcp": true, "on": true, "any": true, "both": true, "bootp": true, "rarp": true, "dhcp6": true, "auto6": true}

// ParseIP parses every form of ip=: a bare mode, the colon-separated
// static form (IPv6 in brackets), and dracut's "<device>:dhcp".
func ParseIP(s string) (IPConfig, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return IPConfig{}, fmt.Errorf("ip= is empty")
	}
	if !strings.Contains(s, ":") {
		switch {
		case dhcpModes[s]:
			return IPConfig{Mode: "dhcp"}, nil
		case s == "off" || s == "none":
			return IPConfig{Mode: "off"}, nil
		}
		return IPConfig{}, fmt.Errorf("ip=%s: unknown mode", s)
	}
	f := splitIPFields(s)
	if len(f) == 2 && dhcpModes[f[1]] {
		return IPConfig{Mode: "dhcp", Device: f[0]}, nil
	}
	if len(f) > 10 {
		return IPConfig{}, fmt.Errorf("ip=%s: more than 10 fields", s)
	}
	for len(f) < 10 {
		f = append(f, "")
	}
	c := IPConfig{Hostname: f[4], Device: f[5]}
	var err error
	client, err := parseAddr("client address", f[0])
	if err != nil {
		return c, err
	}
	if c.Server, err = parseAddr("server address", f[1]); err != nil {
		return c, err
	}
	if c.Gateway, err = parseAddr("gateway", f[2]); err != nil {
		return c, err
	}
	for _, i := range []int{7, 8} {
		a, err := parseAddr("DNS server", f[i])
		if err != nil {
			return c, err
		}
		if a.IsValid() {
			c.DNS = append(c.DNS, a)
		}
	}
	if c.NTP, err = parseAddr("NTP server", f[9]); err != nil {
		return c, err
	}
	switch auto := f[6]; {
	case auto == "" || auto == "off" || auto == "none":
		c.Mode = "static"
		if !client.IsValid() {
			if auto == "" {
				c.Mode = "dhcp" // the kernel autoconfigures when no address is given
				return c, nil
			}
			c.Mode = "off"
			return c, nil
		}
	case dhcpModes[auto]:
		c.Mode = "dhcp"
		return c, nil
	default:
		return c, fmt.Errorf("ip= autoconf %q is unknown", auto)
	}
	bits := -1
	mask := strings.Trim(f[3], "[]")
	switch {
	case mask == "":
		bits = client.BitLen()
		if client.Is4() {
			bits = defaultPrefix(client)
		}
	case !strings.Contains(mask, ".") && !strings.Contains(mask, ":"):
		n, err := strconv.Atoi(mask)
		if err != nil || n < 0 || n > client.BitLen() {
			return c, fmt.Errorf("ip= netmask %q is not a prefix length", mask)
		}
		bits = n
	default:
		m, err := netip.ParseAddr(mask)
		if err != nil || !m.Is4() {
			return c, fmt.Errorf("ip= netmask %q is not a netmask", mask)
		}
		bits = maskBits(m.As4())
		if bits < 0 {
			return c, fmt.Errorf("ip= netmask %q is not contiguous", mask)
		}
	}
	if c.Gateway.IsValid() && c.Gateway.Is4() != client.Is4() {
		return c, fmt.Errorf("ip= gateway %s and address %s are of different families", c.Gateway, client)
	}
	c.Client = netip.PrefixFrom(client, bits)
	return c, nil
}

// defaultPrefix is the classful default the kernel uses without a netmask.
func defaultPrefix(a netip.Addr) int {
	b := a.As4()[0]
	switch {
	case b < 128:
		return 8
	case b < 192:
		return 16
	}
	return 24
}

func maskBits(m [4]byte) int {
	v := uint32(m[0])<<24 | uint32(m[1])<<16 | uint32(m[2])<<8 | uint32(m[3])
	n := 0
	for v&0x80000000 != 0 {
		n++
		v <<= 1
	}
	if v != 0 {
		return -1
	}
	return n
}
