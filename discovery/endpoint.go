package discovery

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// Endpoint is a service's URL built from its mDNS answer, and the TXT
// records the URL did not use.
type Endpoint struct {
	URL        string
	Properties map[string]string
}

// Finder asks mDNS for one service instance (Find).
type Finder func(ctx context.Context, instance, serviceType string) (*Service, error)

type endpointOptions struct {
	find     Finder
	routable func(netip.Addr) bool
	log      *slog.Logger
	first    time.Duration
	maxWait  time.Duration
}

// EndpointOption configures FindEndpoint.
type EndpointOption func(*endpointOptions)

// WithFinder replaces Find (tests, or Find with options of its own).
func WithFinder(f Finder) EndpointOption { return func(o *endpointOptions) { o.find = f } }

// WithRoutable replaces the route lookup that picks a ".local." host's
// address.
func WithRoutable(f func(netip.Addr) bool) EndpointOption {
	return func(o *endpointOptions) { o.routable = f }
}

// WithEndpointLogger logs each failed attempt.
func WithEndpointLogger(l *slog.Logger) EndpointOption { return func(o *endpointOptions) { o.log = l } }

// FindEndpoint asks mDNS for instance of serviceType until an answer
// gives a usable endpoint (EndpointURL), or ctx ends. IPA gives up after
// three tries and its agent dies; this keeps asking with a capped,
// jittered backoff (1 s doubling to 30 s), since a dead agent helps
// nobody.
func FindEndpoint(ctx context.Context, instance, serviceType string, opts ...EndpointOption) (Endpoint, error) {
	o := endpointOptions{log: slog.Default(), routable: routable, first: time.Second, maxWait: 30 * time.Second}
	for _, f := range opts {
		f(&o)
	}
	if o.find == nil {
		o.find = func(ctx context.Context, instance, serviceType string) (*Service, error) {
			return Find(ctx, instance, serviceType, WithLogger(o.log))
		}
	}
	wait := o.first
	for attempt := 1; ; attempt++ {
		svc, err := o.find(ctx, instance, serviceType)
		if err == nil {
			var ep Endpoint
			ep.URL, ep.Properties, err = EndpointURL(svc, o.routable)
			if err == nil {
				return ep, nil
			}
		}
		if ctx.Err() != nil {
			return Endpoint{}, ctx.Err()
		}
		// Full jitter between wait/2 and wait, so a rack of agents spreads out.
		d := wait/2 + time.Duration(rand.Int64N(int64(wait/2)+1))
		wait = min(wait*2, o.maxWait)
		o.log.Warn("mDNS: service not found yet, asking again", "service", instance+"."+serviceType+".local.", "attempt", attempt, "error", err, "retry_in", d.Round(time.Millisecond))
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return Endpoint{}, ctx.Err()
		case <-t.C:
		}
	}
}

// EndpointURL builds the service's URL as OpenStack's
// mdns.get_endpoint: the scheme from the "protocol" TXT record (else
// http on port 80, https otherwise), the path from "path"; a ".local."
// host means "use its address" (the first one routable from here,
// loopback skipped), any other host name is used as it is. The other
// TXT records are returned as properties.
func EndpointURL(s *Service, routable func(netip.Addr) bool) (string, map[string]string, error) {
	props := map[string]string{}
	for k, v := range s.TXT {
		props[k] = v
	}
	path := props["path"]
	proto := props["protocol"]
	delete(props, "path")
	delete(props, "protocol")
	if proto == "" {
		proto = "https"
		if s.Port == 80 {
			proto = "http"
		}
	}
	if s.Port <= 0 || s.Port > 65535 {
		return "", nil, fmt.Errorf("mDNS: %s announces port %d", s.Instance, s.Port)
	}
	host := strings.TrimSuffix(s.Host, ".")
	if host == "" || strings.HasSuffix(strings.ToLower(s.Host), ".local.") {
		addr, err := pickAddress(s.Addrs, routable)
		if err != nil {
			return "", nil, fmt.Errorf("mDNS: %s: %w", s.Instance, err)
		}
		host = addr.String()
	}
	if path != "" && !strings.HasPrefix(path, "/") {
		path = "/" + path
	}
	return proto + "://" + net.JoinHostPort(host, strconv.Itoa(s.Port)) + path, props, nil
}

// pickAddress is the first non-loopback address routable from here, or
// else the first non-loopback one (IPA warns and uses it).
func pickAddress(addrs []netip.Addr, routable func(netip.Addr) bool) (netip.Addr, error) {
	var fallback netip.Addr
	for _, a := range addrs {
		if !a.IsValid() || a.IsLoopback() {
			continue
		}
		if routable(a) {
			return a, nil
		}
		if !fallback.IsValid() {
			fallback = a
		}
	}
	if fallback.IsValid() {
		return fallback, nil
	}
	return netip.Addr{}, fmt.Errorf("none of the addresses %v is usable", addrs)
}
