package netcfg

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv4/nclient4"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Config says how to bring the ramdisk's network up.
type Config struct {
	BootIF      string        // BOOTIF: "01-aa-bb-..." or "aa:bb:..."
	KernelIP    string        // the kernel's ip= value, if any
	VLANs       string        // ipa-enable-vlan-interfaces
	LLDPTimeout time.Duration // how long to listen for the VLANs switches advertise ("all", bare names)
	CarrierWait time.Duration // how long to wait for links to get carrier (default 10 s)
	DHCPTimeout time.Duration // per DHCP attempt (default 10 s)
	ResolvConf  string        // where DNS servers go (default /etc/resolv.conf)
	// NetworkData, when set, is applied before any DHCP: the NICs it
	// uses get only what it asks for, the others DHCP as usual, and the
	// interface kernel ip= configures is left to ip=.
	NetworkData *NetworkData
	// Links, when set, are the only links used, physical or not (tests
	// and hosts name theirs); otherwise every physical link.
	Links []string
	Log   *slog.Logger
}

// Interface is what Up set up on one link.
type Interface struct {
	Name     string
	MAC      string
	Carrier  bool
	Address  netip.Prefix
	Gateway  netip.Addr
	DNS      []netip.Addr
	Source   string // "dhcp", "static" or "" (nothing yet)
	LeaseEnd time.Time
	Address6 netip.Prefix // from DHCPv6 (SLAAC addresses are the kernel's)
	DNS6     []netip.Addr
}

// State is the network as Up left it; leases keep renewing while ctx lives.
type State struct {
	mu         sync.Mutex
	interfaces map[string]*Interface
	defaultVia string
}

// Interfaces returns a copy of the per-link state.
func (s *State) Interfaces() []Interface {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Interface, 0, len(s.interfaces))
	for _, i := range s.interfaces {
		out = append(out, *i)
	}
	sort.Slice(out, func(a, b int) bool { return out[a].Name < out[b].Name })
	return out
}

func (s *State) names() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	names := make([]string, 0, len(s.interfaces))
	for n := range s.interfaces {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// HasAddress reports whether any link has an address.
func (s *State) HasAddress() bool {
	for _, i := range s.Interfaces() {
		if i.Address.IsValid() || i.Address6.IsValid() {
			return true
		}
	}
	return false
}

func normMAC(s string) string {
	s = strings.ToLower(strings.TrimSpace(s))
	if strings.HasPrefix(s, "01-") && strings.Count(s, "-") == 6 {
		s = s[3:]
	}
	return strings.ReplaceAll(s, "-", ":")
}

// physicalLinks lists links IPA would use: backed by a device, not
// wireless, not loopback; the boot NIC first.
func physicalLinks(bootif string, only []string) ([]netlink.Link, error) {
	links, err := netlink.LinkList()
	if err != nil {
		return nil, err
	}
	var out []netlink.Link
	for _, l := range links {
		a := l.Attrs()
		if a.Flags&net.FlagLoopback != 0 || a.HardwareAddr == nil {
			continue
		}
		base := filepath.Join("/sys/class/net", a.Name)
		if len(only) > 0 {
			named := false
			for _, n := range only {
				named = named || n == a.Name
			}
			if !named {
				continue
			}
		} else if _, err := os.Stat(filepath.Join(base, "device")); err != nil {
			continue // virtual
		}
		if _, err := os.Stat(filepath.Join(base, "wireless")); err == nil {
			continue
		}
		out = append(out, l)
	}
	boot := normMAC(bootif)
	sort.SliceStable(out, func(i, j int) bool {
		bi := out[i].Attrs().HardwareAddr.String() == boot
		bj := out[j].Attrs().HardwareAddr.String() == boot
		if bi != bj {
			return bi
		}
		return out[i].Attrs().Name < out[j].Attrs().Name
	})
	return out, nil
}

// Up brings the network up: every physical link, a bounded wait for
// carrier, then static configuration from ip= or DHCPv4 on every link
// with carrier, in parallel. The first lease sets the default route.
// Links that get no lease keep trying in the background while ctx lives;
// Up returns once one link has an address or the first round is over.
func Up(ctx context.Context, cfg Config) (*State, error) {
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.CarrierWait <= 0 {
		cfg.CarrierWait = 10 * time.Second
	}
	if cfg.DHCPTimeout <= 0 {
		cfg.DHCPTimeout = 10 * time.Second
	}
	if cfg.ResolvConf == "" {
		cfg.ResolvConf = "/etc/resolv.conf"
	}
	var static *IPConfig
	if cfg.KernelIP != "" {
		ipc, err := ParseIP(cfg.KernelIP)
		if err != nil {
			cfg.Log.Error("ignoring the ip= parameter", "error", err)
		} else {
			static = &ipc
		}
	}
	links, err := physicalLinks(cfg.BootIF, cfg.Links)
	if err != nil {
		return nil, fmt.Errorf("listing links: %w", err)
	}
	if len(links) == 0 {
		return nil, errors.New("no physical network interface found")
	}
	st := &State{interfaces: map[string]*Interface{}}
	for _, l := range links {
		a := l.Attrs()
		st.interfaces[a.Name] = &Interface{Name: a.Name, MAC: a.HardwareAddr.String()}
		if err := netlink.LinkSetUp(l); err != nil {
			cfg.Log.Warn("link up failed", "link", a.Name, "error", err)
		}
	}
	if needsLLDP(cfg.VLANs) {
		var names []string
		for _, l := range links {
			names = append(names, l.Attrs().Name)
		}
		wait := cfg.LLDPTimeout
		if wait <= 0 {
			wait = 30 * time.Second
		}
		heard, err := CollectLLDP(ctx, names, wait)
		if err != nil {
			cfg.Log.Warn("LLDP for VLAN discovery", "error", err)
		}
		adv := map[string][]int{}
		for n, tlvs := range heard {
			adv[n] = Summarize(tlvs).VLANs
		}
		cfg.VLANs = ExpandVLANs(cfg.VLANs, names, adv)
		cfg.Log.Info("VLANs from LLDP", "vlans", cfg.VLANs)
	}
	if err := createVLANs(cfg, links, st); err != nil {
		cfg.Log.Error("VLAN interfaces", "error", err)
	}
	names := st.names()
	ipTarget := "" // the interface ip= configures statically
	if static != nil && static.Mode == "static" {
		ipTarget = static.Device
		if ipTarget == "" && len(names) > 0 {
			ipTarget = names[0]
		}
	}
	first := make(chan struct{})
	var once sync.Once
	done := func() { once.Do(func() { close(first) }) }
	nd := applyNetworkData(ctx, cfg, links, ipTarget, st)
	if nd.addressed {
		done()
	}
	names = st.names()
	var wg sync.WaitGroup
	for _, n := range names {
		n := n
		if static != nil && static.Mode == "off" {
			continue
		}
		if n == ipTarget {
			if err := applyStatic(st, n, *static, cfg); err != nil {
				cfg.Log.Error("static configuration failed", "link", n, "error", err)
			} else {
				done()
			}
			continue
		}
		if static != nil && static.Device != "" && static.Device != n && !nd.owned[n] {
			continue // ip= names one device: the others are left alone
		}
		v4, v6 := true, true
		if nd.owned[n] {
			// network_data.json configures it: DHCP only where it says so.
			v4, v6 = nd.dhcp4[n], nd.dhcp6[n]
			if !v4 && !v6 {
				continue
			}
		}
		// Each link starts DHCP as soon as it has carrier: one without a
		// cable delays nobody.
		wg.Add(1)
		go func() {
			defer wg.Done()
			carrier := waitCarrier(ctx, []string{n}, cfg.CarrierWait)[n]
			st.mu.Lock()
			st.interfaces[n].Carrier = carrier
			st.mu.Unlock()
			cfg.Log.Info("link", "name", n, "carrier", carrier)
			if carrier {
				if v6 {
					wg.Add(1)
					go func() {
						defer wg.Done()
						runDHCPv6(ctx, st, n, cfg, done)
					}()
				}
				if v4 {
					runDHCP(ctx, st, n, cfg, done)
				}
			}
		}()
	}
	allDone := make(chan struct{})
	go func() { wg.Wait(); close(allDone) }()
	select {
	case <-first:
	case <-allDone:
	case <-ctx.Done():
		return st, ctx.Err()
	case <-time.After(cfg.DHCPTimeout + cfg.CarrierWait):
	}
	if !st.HasAddress() {
		return st, errors.New("no interface got an address yet (DHCP keeps trying in the background)")
	}
	return st, nil
}

// waitCarrier waits, bounded, until each link reports carrier.
func waitCarrier(ctx context.Context, names []string, wait time.Duration) map[string]bool {
	out := map[string]bool{}
	deadline := time.Now().Add(wait)
	for {
		all := true
		for _, n := range names {
			if !out[n] {
				b, _ := os.ReadFile(filepath.Join("/sys/class/net", n, "carrier"))
				out[n] = strings.TrimSpace(string(b)) == "1"
				all = all && out[n]
			}
		}
		if all || time.Now().After(deadline) || ctx.Err() != nil {
			return out
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func applyStatic(st *State, name string, c IPConfig, cfg Config) error {
	l, err := netlink.LinkByName(name)
	if err != nil {
		return err
	}
	if err := netlink.AddrReplace(l, &netlink.Addr{IPNet: prefixNet(c.Client)}); err != nil {
		return fmt.Errorf("address %s: %w", c.Client, err)
	}
	if c.Gateway.IsValid() {
		if err := netlink.RouteReplace(&netlink.Route{LinkIndex: l.Attrs().Index, Gw: c.Gateway.AsSlice()}); err != nil {
			return fmt.Errorf("default route via %s: %w", c.Gateway, err)
		}
	}
	if len(c.DNS) > 0 {
		if err := writeResolvConf(cfg.ResolvConf, c.DNS); err != nil {
			return err
		}
	}
	st.mu.Lock()
	i := st.interfaces[name]
	i.Address, i.Gateway, i.DNS, i.Source = c.Client, c.Gateway, c.DNS, "static"
	st.mu.Unlock()
	cfg.Log.Info("static address", "link", name, "address", c.Client, "gateway", c.Gateway)
	return nil
}

func prefixNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

// runDHCP gets a lease on one link, applies it, and renews it for ctx's
// lifetime; without an answer it retries with a capped backoff.
func runDHCP(ctx context.Context, st *State, name string, cfg Config, onLease func()) {
	backoff := time.Second
	for ctx.Err() == nil {
		lease, err := dhcpLease(ctx, name, cfg.DHCPTimeout)
		if err != nil {
			cfg.Log.Warn("no DHCP lease yet", "link", name, "error", err, "retry_in", backoff)
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(backoff*2, 60*time.Second)
			continue
		}
		backoff = time.Second
		if err := applyLease(st, name, lease, cfg); err != nil {
			cfg.Log.Error("applying the DHCP lease", "link", name, "error", err)
			continue
		}
		onLease()
		// Renew at half the lease time (T1), as DHCP clients do.
		lt := lease.ACK.IPAddressLeaseTime(time.Hour)
		select {
		case <-ctx.Done():
			return
		case <-time.After(lt / 2):
		}
	}
}

func dhcpLease(ctx context.Context, name string, timeout time.Duration) (*nclient4.Lease, error) {
	// Short attempts: the first DISCOVER often goes out while the link is
	// still settling, and waiting long for its answer wastes boot time.
	c, err := nclient4.New(name, nclient4.WithTimeout(time.Second), nclient4.WithRetry(max(int(timeout/time.Second), 1)))
	if err != nil {
		return nil, err
	}
	defer c.Close()
	rctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	return c.Request(rctx, dhcpv4.WithRequestedOptions(dhcpv4.OptionRouter, dhcpv4.OptionDomainNameServer, dhcpv4.OptionSubnetMask))
}

func applyLease(st *State, name string, lease *nclient4.Lease, cfg Config) error {
	ack := lease.ACK
	l, err := netlink.LinkByName(name)
	if err != nil {
		return err
	}
	mask := ack.SubnetMask()
	if mask == nil {
		mask = net.CIDRMask(24, 32)
	}
	bits, _ := mask.Size()
	ip, ok := netip.AddrFromSlice(ack.YourIPAddr.To4())
	if !ok {
		return fmt.Errorf("lease without an address")
	}
	pfx := netip.PrefixFrom(ip, bits)
	lt := ack.IPAddressLeaseTime(time.Hour)
	addr := &netlink.Addr{IPNet: prefixNet(pfx), ValidLft: int(lt.Seconds()), PreferedLft: int(lt.Seconds())}
	if err := netlink.AddrReplace(l, addr); err != nil {
		return fmt.Errorf("address %s: %w", pfx, err)
	}
	var gw netip.Addr
	if routers := ack.Router(); len(routers) > 0 {
		gw, _ = netip.AddrFromSlice(routers[0].To4())
	}
	var dns []netip.Addr
	for _, d := range ack.DNS() {
		if a, ok := netip.AddrFromSlice(d.To4()); ok {
			dns = append(dns, a)
		}
	}
	st.mu.Lock()
	i := st.interfaces[name]
	i.Address, i.Gateway, i.DNS, i.Source, i.LeaseEnd = pfx, gw, dns, "dhcp", time.Now().Add(lt)
	firstRoute := st.defaultVia == "" || st.defaultVia == name
	if firstRoute && gw.IsValid() {
		st.defaultVia = name
	}
	st.mu.Unlock()
	if firstRoute && gw.IsValid() {
		// The first lease wins the default route; later ones keep their
		// addresses only.
		if err := netlink.RouteReplace(&netlink.Route{LinkIndex: l.Attrs().Index, Gw: gw.AsSlice()}); err != nil {
			return fmt.Errorf("default route via %s: %w", gw, err)
		}
		if len(dns) > 0 {
			if err := writeResolvConf(cfg.ResolvConf, dns); err != nil {
				return err
			}
		}
	}
	cfg.Log.Info("DHCP lease", "link", name, "address", pfx, "gateway", gw, "dns", dns, "lease", lt)
	return nil
}

func writeResolvConf(path string, dns []netip.Addr) error {
	var b strings.Builder
	b.WriteString("# written by goipa\n")
	for _, d := range dns {
		b.WriteString("nameserver " + d.String() + "\n")
	}
	tmp := path + ".goipa"
	if err := os.WriteFile(tmp, []byte(b.String()), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// createVLANs makes the VLAN interfaces ipa-enable-vlan-interfaces names:
// "eth0.100", "<mac>.100" (several, comma separated). "all" and a bare
// interface name need the VLANs LLDP advertises, which the caller gets
// from CollectLLDP and passes as "iface.vlan" entries.
func createVLANs(cfg Config, links []netlink.Link, st *State) error {
	if cfg.VLANs == "" {
		return nil
	}
	var errs []error
	for _, spec := range strings.Split(cfg.VLANs, ",") {
		spec = strings.TrimSpace(spec)
		i := strings.LastIndex(spec, ".")
		if i < 0 {
			continue // "all" and bare names were expanded from LLDP above
		}
		parentName, idText := spec[:i], spec[i+1:]
		id, err := strconv.Atoi(idText)
		if err != nil || id < 1 || id > 4094 {
			errs = append(errs, fmt.Errorf("VLAN %q: id must be 1-4094", spec))
			continue
		}
		var parent netlink.Link
		for _, l := range links {
			if l.Attrs().Name == parentName || l.Attrs().HardwareAddr.String() == normMAC(parentName) {
				parent = l
			}
		}
		if parent == nil {
			errs = append(errs, fmt.Errorf("VLAN %q: no interface %q", spec, parentName))
			continue
		}
		name := fmt.Sprintf("%s.%d", parent.Attrs().Name, id)
		v := &netlink.Vlan{LinkAttrs: netlink.LinkAttrs{Name: name, ParentIndex: parent.Attrs().Index}, VlanId: id}
		if err := netlink.LinkAdd(v); err != nil && !errors.Is(err, unix.EEXIST) {
			errs = append(errs, fmt.Errorf("VLAN %s: %w", name, err))
			continue
		}
		l, err := netlink.LinkByName(name)
		if err == nil {
			err = netlink.LinkSetUp(l)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("VLAN %s up: %w", name, err))
			continue
		}
		st.interfaces[name] = &Interface{Name: name, MAC: l.Attrs().HardwareAddr.String()}
		cfg.Log.Info("VLAN interface", "name", name, "parent", parent.Attrs().Name, "id", id)
	}
	return errors.Join(errs...)
}
