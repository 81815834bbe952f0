package agent

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/goipa/goipa/discovery"
	"github.com/goipa/goipa/netcfg"
)

// The mDNS names Ironic and ironic-inspector publish (ironic-lib's
// mdns: instance "<service type>" of "_openstack._tcp" in "local").
const (
	mdnsServiceType    = "_openstack._tcp"
	mdnsIronic         = "baremetal"
	mdnsInspector      = "baremetal-introspection"
	inspectorCallbackP = "/v1/continue" // IPA appends it to the inspector's catalog URL
)

// serviceFinder finds an mDNS service instance; discovery.Find in life.
type serviceFinder func(ctx context.Context, instance, serviceType string) (*discovery.Service, error)

// WithLogLevel lets mDNS's ipa_debug override raise the log level.
func WithLogLevel(l *slog.LevelVar) Option { return func(a *Agent) { a.logLevel = l } }

// resolveMDNS fills in the URLs given as "mdns", as IPA does: Ironic's
// first (its TXT records may override the inspection callback URL),
// then the inspector's. It returns only when both are known or ctx ends.
func (a *Agent) resolveMDNS(ctx context.Context) error {
	if a.cfg.APIFromMDNS || (a.cfg.UseMDNS && len(a.cfg.APIURLs) == 0 && !a.cfg.Standalone) {
		u, err := a.findEndpoint(ctx, mdnsIronic)
		if err != nil {
			return err
		}
		a.cfg.APIURLs = []string{u}
		a.log.Info("Ironic found by mDNS", "url", u)
	}
	if a.cfg.InspectionFromMDNS && a.cfg.InspectionCallbackURL == "" {
		u, err := a.findEndpoint(ctx, mdnsInspector)
		if err != nil {
			return err
		}
		a.cfg.InspectionCallbackURL = strings.TrimRight(u, "/") + inspectorCallbackP
		a.log.Info("inspector found by mDNS", "callback_url", a.cfg.InspectionCallbackURL)
	}
	return nil
}

// findEndpoint asks mDNS for instance until it answers. IPA gives up
// after three tries and the agent dies; goipa keeps asking with a capped
// backoff, as lookup does, since a dead agent helps nobody.
func (a *Agent) findEndpoint(ctx context.Context, instance string) (string, error) {
	find := a.findService
	if find == nil {
		find = func(ctx context.Context, instance, serviceType string) (*discovery.Service, error) {
			return discovery.Find(ctx, instance, serviceType, discovery.WithLogger(a.log))
		}
	}
	bo := newBackoff(time.Second, 30*time.Second)
	for attempt := 1; ; attempt++ {
		svc, err := find(ctx, instance, mdnsServiceType)
		if err == nil {
			var u string
			var props map[string]string
			u, props, err = endpointURL(svc, routable)
			if err == nil {
				a.applyMDNSOverrides(instance, props)
				return u, nil
			}
		}
		if ctx.Err() != nil {
			return "", ctx.Err()
		}
		wait := bo.next()
		a.log.Warn("mDNS: service not found yet, asking again", "service", instance+"."+mdnsServiceType+".local.", "attempt", attempt, "error", err, "retry_in", wait.Round(time.Millisecond))
		if err := sleepCtx(ctx, wait); err != nil {
			return "", err
		}
	}
}

// endpointURL builds the service's URL as IPA's mdns.get_endpoint: the
// scheme from the "protocol" TXT record (else http on port 80, https
// otherwise), the path from "path"; a ".local." host means "use its
// address" (the first one this machine has a route to, loopback
// skipped), any other host name is used as it is. The other TXT records
// are returned as properties.
func endpointURL(s *discovery.Service, routable func(netip.Addr) bool) (string, map[string]string, error) {
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

// routable reports whether this machine has a route to a.
func routable(a netip.Addr) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_, err := netcfg.SourceAddr(ctx, a)
	return err == nil
}

// applyMDNSOverrides sets the agent parameters TXT records carry, as
// IPA's config.override: only "ipa_<name>" keys, only names allowed by
// ipa-mdns-allowed-overrides (IPA's [mdns] allowed_overrides: mDNS is
// unauthenticated, so anyone on the link could answer).
func (a *Agent) applyMDNSOverrides(instance string, props map[string]string) {
	keys := make([]string, 0, len(props))
	for k := range props {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		v := props[k]
		name, ok := strings.CutPrefix(k, "ipa_")
		switch {
		case !ok:
			a.log.Warn("mDNS: skipping a TXT record that is no agent setting", "service", instance, "key", k)
		case !slices.Contains(a.cfg.MDNSAllowedOverrides, name):
			a.log.Warn("mDNS: skipping a setting not in ipa-mdns-allowed-overrides", "service", instance, "key", k)
		default:
			param := "ipa-" + strings.ReplaceAll(name, "_", "-")
			if err := a.cfg.Override(param, v); err != nil {
				a.log.Warn("mDNS: cannot apply a setting", "service", instance, "key", k, "error", err)
				continue
			}
			a.log.Info("mDNS: setting applied", "service", instance, "parameter", param, "value", v)
			if param == "ipa-debug" && a.cfg.Debug && a.logLevel != nil {
				a.logLevel.Set(slog.LevelDebug)
			}
		}
	}
}
