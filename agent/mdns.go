package agent

import (
	"context"
	"log/slog"
	"maps"
	"slices"
	"strings"

	"github.com/goipa/goipa/discovery"
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

// findEndpoint asks mDNS for instance until it answers
// (discovery.FindEndpoint) and applies the TXT records' overrides.
func (a *Agent) findEndpoint(ctx context.Context, instance string) (string, error) {
	opts := []discovery.EndpointOption{discovery.WithEndpointLogger(a.log)}
	if a.findService != nil {
		opts = append(opts, discovery.WithFinder(discovery.Finder(a.findService)))
	}
	ep, err := discovery.FindEndpoint(ctx, instance, mdnsServiceType, opts...)
	if err != nil {
		return "", err
	}
	a.applyMDNSOverrides(instance, ep.Properties)
	return ep.URL, nil
}

// applyMDNSOverrides sets the agent parameters TXT records carry, as
// IPA's config.override: only "ipa_<name>" keys, only names allowed by
// ipa-mdns-allowed-overrides (IPA's [mdns] allowed_overrides: mDNS is
// unauthenticated, so anyone on the link could answer).
func (a *Agent) applyMDNSOverrides(instance string, props map[string]string) {
	for _, k := range slices.Sorted(maps.Keys(props)) {
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
