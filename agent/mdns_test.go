package agent

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/goipa/goipa/discovery"
)

func TestMDNSOverrides(t *testing.T) {
	for _, tc := range []struct {
		name       string
		allowed    string
		props      map[string]string
		wantDebug  bool
		wantNTP    string
		wantLogged []string
	}{
		{name: "IPA's default allows the NTP server, not debug", allowed: "", props: map[string]string{"ipa_debug": "True", "ipa_ntp_server": "10.0.0.9"},
			wantNTP: "10.0.0.9", wantLogged: []string{"not in ipa-mdns-allowed-overrides"}},
		{name: "debug allowed", allowed: "ipa-mdns-allowed-overrides=debug", props: map[string]string{"ipa_debug": "True"}, wantDebug: true},
		{name: "a key without ipa_ is skipped", allowed: "ipa-mdns-allowed-overrides=debug", props: map[string]string{"debug": "1"}, wantLogged: []string{"no agent setting"}},
		{name: "a bad value is logged, not applied", allowed: "ipa-mdns-allowed-overrides=debug", props: map[string]string{"ipa_debug": "perhaps"}, wantLogged: []string{"cannot apply"}},
		{name: "nothing allowed", allowed: "ipa-mdns-allowed-overrides=", props: map[string]string{"ipa_ntp_server": "x"}, wantLogged: []string{"not in ipa-mdns-allowed-overrides"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var logs bytes.Buffer
			lv := new(slog.LevelVar)
			a := newTestAgent(t, "ipa-api-url=mdns "+tc.allowed, WithLogger(slog.New(slog.NewTextHandler(&logs, nil))), WithLogLevel(lv))
			a.applyMDNSOverrides("baremetal", tc.props)
			assert.Equal(t, tc.wantDebug, a.cfg.Debug)
			assert.Equal(t, tc.wantNTP, a.cfg.NTPServer)
			if tc.wantDebug {
				assert.Equal(t, slog.LevelDebug, lv.Level(), "ipa_debug raises the log level")
			} else {
				assert.Equal(t, slog.LevelInfo, lv.Level())
			}
			for _, l := range tc.wantLogged {
				assert.Contains(t, logs.String(), l)
			}
		})
	}
}

func TestResolveMDNSFindsIronicThenTheInspector(t *testing.T) {
	var mu sync.Mutex
	var asked []string
	misses := 1
	a := newTestAgent(t, "ipa-api-url=mdns ipa-inspection-callback-url=mdns")
	a.findService = func(ctx context.Context, instance, serviceType string) (*discovery.Service, error) {
		mu.Lock()
		defer mu.Unlock()
		asked = append(asked, instance+"."+serviceType)
		if misses > 0 {
			misses--
			return nil, discovery.ErrNotFound
		}
		if instance == "baremetal" {
			return &discovery.Service{Instance: "baremetal._openstack._tcp.local.", Host: "baremetal._openstack._tcp.local.", Port: 6385,
				Addrs: []netip.Addr{netip.MustParseAddr("192.0.2.7")}, TXT: map[string]string{"protocol": "http"}}, nil
		}
		return &discovery.Service{Instance: "baremetal-introspection._openstack._tcp.local.", Host: "ironic-inspector.example.", Port: 5050, TXT: map[string]string{"protocol": "http"}}, nil
	}
	require.NoError(t, a.resolveMDNS(context.Background()))
	assert.Equal(t, []string{"baremetal._openstack._tcp", "baremetal._openstack._tcp", "baremetal-introspection._openstack._tcp"}, asked, "a miss is asked again")
	assert.Equal(t, []string{"http://192.0.2.7:6385"}, a.cfg.APIURLs)
	assert.Equal(t, "http://ironic-inspector.example:5050/v1/continue", a.cfg.InspectionCallbackURL)
}

func TestResolveMDNSStopsWithTheContext(t *testing.T) {
	a := newTestAgent(t, "ipa-api-url=mdns")
	ctx, cancel := context.WithCancel(context.Background())
	a.findService = func(context.Context, string, string) (*discovery.Service, error) {
		cancel()
		return nil, discovery.ErrNotFound
	}
	assert.True(t, errors.Is(a.resolveMDNS(ctx), context.Canceled))
}
