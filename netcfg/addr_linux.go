package netcfg

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"net/url"
	"time"
)

// Advertise says where AdvertiseAddr looks for the address a service on
// this machine gives its peers to call it back.
type Advertise struct {
	// Interface, when set, is the link whose IPv4 address is advertised
	// (IPA's ipa-network-interface).
	Interface string
	// URLs are the peers' URLs (Ironic's API): without Interface, the
	// address is the source of the route to the first of their hosts
	// that has one.
	URLs []string
	// Attempts is how many rounds pass before a failure is logged as an
	// error; the search goes on, since nothing works without an address.
	Attempts int
	// Interval is the wait between rounds (at least a second).
	Interval time.Duration
	// Log gets a line for each failed try (slog.Default when nil).
	Log *slog.Logger
}

// AdvertiseAddr finds the address to advertise, as IPA does: the named
// interface's IPv4 address, else the local address the kernel would use
// to reach one of the URLs (the address the peer's side of that route can
// reach back). It tries again every Interval until it finds one or ctx
// ends (then ctx's error).
func AdvertiseAddr(ctx context.Context, a Advertise) (string, error) {
	log := a.Log
	if log == nil {
		log = slog.Default()
	}
	for attempt := 1; ; attempt++ {
		if a.Interface != "" {
			addr, err := InterfaceIPv4(a.Interface)
			if err == nil {
				return addr, nil
			}
			log.Warn("no IPv4 address on the interface to advertise yet", "interface", a.Interface, "error", err)
		} else {
			for _, u := range a.URLs {
				addr, err := SourceAddrForURL(ctx, u)
				if err == nil {
					return addr.String(), nil
				}
				log.Warn("cannot find the address on the route to the peer", "url", u, "attempt", attempt, "error", err)
			}
		}
		if attempt == a.Attempts {
			log.Error("still no address to advertise; retrying", "attempts", attempt)
		}
		t := time.NewTimer(max(a.Interval, time.Second))
		select {
		case <-ctx.Done():
			t.Stop()
			return "", ctx.Err()
		case <-t.C:
		}
	}
}

// SourceAddrForURL is SourceAddr for the host of rawURL: the first of the
// addresses its name resolves to that has a route with a usable source.
func SourceAddrForURL(ctx context.Context, rawURL string) (netip.Addr, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return netip.Addr{}, err
	}
	addrs, err := net.DefaultResolver.LookupNetIP(ctx, "ip", u.Hostname())
	if err != nil {
		return netip.Addr{}, err
	}
	var lastErr error
	for _, ip := range addrs {
		src, err := SourceAddr(ctx, ip.Unmap())
		if err == nil {
			return src, nil
		}
		lastErr = err
	}
	if lastErr == nil {
		lastErr = fmt.Errorf("%s resolves to no address", u.Hostname())
	}
	return netip.Addr{}, lastErr
}

// InterfaceIPv4 returns the first IPv4 address of the named link.
func InterfaceIPv4(name string) (string, error) {
	ifc, err := net.InterfaceByName(name)
	if err != nil {
		return "", err
	}
	addrs, err := ifc.Addrs()
	if err != nil {
		return "", err
	}
	for _, ad := range addrs {
		if ipn, ok := ad.(*net.IPNet); ok && ipn.IP.To4() != nil {
			return ipn.IP.String(), nil
		}
	}
	return "", fmt.Errorf("%s has no IPv4 address", name)
}
