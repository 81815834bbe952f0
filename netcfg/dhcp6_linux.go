package netcfg

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv6"
	"github.com/insomniacslk/dhcp/dhcpv6/nclient6"
	"github.com/vishvananda/netlink"
)

// waitLinkLocal waits, bounded, until the link has a usable (not
// tentative) IPv6 link-local address: DHCPv6 is sent from it.
func waitLinkLocal(ctx context.Context, l netlink.Link, wait time.Duration) bool {
	deadline := time.Now().Add(wait)
	for {
		addrs, _ := netlink.AddrList(l, netlink.FAMILY_V6)
		for _, a := range addrs {
			if a.IP.IsLinkLocalUnicast() && a.Flags&0x40 == 0 { // 0x40: IFA_F_TENTATIVE
				return true
			}
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return false
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// runDHCPv6 asks for an address over DHCPv6 where the network offers one
// (SLAAC needs nothing from us: the kernel does it from router
// advertisements). No answer is normal on IPv4-only networks: it retries
// quietly with a capped backoff for ctx's lifetime.
func runDHCPv6(ctx context.Context, st *State, name string, cfg Config, onLease func()) {
	backoff := 5 * time.Second
	for ctx.Err() == nil {
		l, err := netlink.LinkByName(name)
		if err != nil {
			return
		}
		if !waitLinkLocal(ctx, l, 10*time.Second) {
			cfg.Log.Debug("no IPv6 link-local address: no DHCPv6", "link", name)
			return
		}
		reply, err := dhcpv6Lease(ctx, name, cfg.DHCPTimeout)
		if err == nil {
			var valid time.Duration
			valid, err = applyLease6(st, l, reply, cfg)
			if err == nil {
				onLease()
				backoff = 5 * time.Second
				select {
				case <-ctx.Done():
					return
				case <-time.After(max(valid/2, 30*time.Second)):
				}
				continue
			}
		}
		cfg.Log.Debug("no DHCPv6 lease", "link", name, "error", err, "retry_in", backoff)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 5*time.Minute)
	}
}

func dhcpv6Lease(ctx context.Context, name string, timeout time.Duration) (*dhcpv6.Message, error) {
	c, err := nclient6.New(name, nclient6.WithTimeout(time.Second), nclient6.WithRetry(max(int(timeout/time.Second), 1)))
	if err != nil {
		return nil, err
	}
	defer c.Close()
	rctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	adv, err := c.Solicit(rctx)
	if err != nil {
		return nil, fmt.Errorf("solicit: %w", err)
	}
	return c.Request(rctx, adv)
}

func applyLease6(st *State, l netlink.Link, reply *dhcpv6.Message, cfg Config) (time.Duration, error) {
	ia := reply.Options.OneIANA()
	if ia == nil {
		return 0, fmt.Errorf("reply without an address (IA_NA)")
	}
	a := ia.Options.OneAddress()
	if a == nil {
		return 0, fmt.Errorf("IA_NA without an address")
	}
	ip, ok := netip.AddrFromSlice(a.IPv6Addr)
	if !ok {
		return 0, fmt.Errorf("bad address %v", a.IPv6Addr)
	}
	pfx := netip.PrefixFrom(ip, 128) // DHCPv6 gives no prefix length; the RA's on-link route covers the subnet
	nl := &netlink.Addr{IPNet: &net.IPNet{IP: a.IPv6Addr, Mask: net.CIDRMask(128, 128)},
		ValidLft: int(a.ValidLifetime.Seconds()), PreferedLft: int(a.PreferredLifetime.Seconds())}
	if err := netlink.AddrReplace(l, nl); err != nil {
		return 0, fmt.Errorf("address %s: %w", pfx, err)
	}
	var dns []netip.Addr
	for _, d := range reply.Options.DNS() {
		if x, ok := netip.AddrFromSlice(d); ok {
			dns = append(dns, x)
		}
	}
	st.mu.Lock()
	i := st.interfaces[l.Attrs().Name]
	i.Address6, i.DNS6 = pfx, dns
	st.mu.Unlock()
	cfg.Log.Info("DHCPv6 lease", "link", l.Attrs().Name, "address", pfx, "dns", dns, "valid", a.ValidLifetime)
	return a.ValidLifetime, nil
}
