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

func TestEndpointURL(t *testing.T) {
	addrs := []netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("10.9.0.1"), netip.MustParseAddr("192.168.7.2")}
	only := func(ok ...string) func(netip.Addr) bool {
		return func(a netip.Addr) bool {
			for _, s := range ok {
				if a.String() == s {
					return true
				}
			}
			return false
		}
	}
	for _, tc := range []struct {
		name      string
		svc       discovery.Service
		routable  func(netip.Addr) bool
		want      string
		wantProps map[string]string
		wantErr   bool
	}{
		{name: "Ironic 21.4 with an IP in its URL (protocol http, port 6385)",
			svc:  discovery.Service{Instance: "baremetal._openstack._tcp.local.", Host: "baremetal._openstack._tcp.local.", Port: 6385, Addrs: addrs, TXT: map[string]string{"protocol": "http", "ipa_debug": "True"}},
			want: "http://10.9.0.1:6385", routable: only("10.9.0.1", "192.168.7.2"), wantProps: map[string]string{"ipa_debug": "True"}},
		{name: "no protocol record: https", svc: discovery.Service{Host: "x.local.", Port: 6385, Addrs: addrs[1:]}, routable: only("10.9.0.1"), want: "https://10.9.0.1:6385", wantProps: map[string]string{}},
		{name: "no protocol record on port 80: http", svc: discovery.Service{Host: "x.local.", Port: 80, Addrs: addrs[1:]}, routable: only("10.9.0.1"), want: "http://10.9.0.1:80", wantProps: map[string]string{}},
		{name: "path record", svc: discovery.Service{Host: "x.local.", Port: 443, Addrs: addrs[1:], TXT: map[string]string{"path": "/baremetal", "protocol": "https"}}, routable: only("10.9.0.1"), want: "https://10.9.0.1:443/baremetal", wantProps: map[string]string{}},
		{name: "loopback skipped, first routable wins", svc: discovery.Service{Host: "x.local.", Port: 6385, Addrs: addrs, TXT: map[string]string{"protocol": "http"}}, routable: only("192.168.7.2"), want: "http://192.168.7.2:6385", wantProps: map[string]string{}},
		{name: "nothing routable: the first non-loopback", svc: discovery.Service{Host: "x.local.", Port: 6385, Addrs: addrs, TXT: map[string]string{"protocol": "http"}}, routable: only(), want: "http://10.9.0.1:6385", wantProps: map[string]string{}},
		{name: "IPv6 in brackets", svc: discovery.Service{Host: "x.local.", Port: 6385, Addrs: []netip.Addr{netip.MustParseAddr("fd00::5")}, TXT: map[string]string{"protocol": "http"}}, routable: only("fd00::5"), want: "http://[fd00::5]:6385", wantProps: map[string]string{}},
		{name: "a real host name is kept", svc: discovery.Service{Host: "ironic.example.com.", Port: 6385, Addrs: addrs, TXT: map[string]string{"protocol": "https"}}, routable: only(), want: "https://ironic.example.com:6385", wantProps: map[string]string{}},
		{name: "only loopback: error", svc: discovery.Service{Host: "x.local.", Port: 6385, Addrs: addrs[:1]}, routable: only("127.0.0.1"), wantErr: true},
		{name: "port 0: error", svc: discovery.Service{Host: "x.local.", Port: 0, Addrs: addrs[1:]}, routable: only("10.9.0.1"), wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u, props, err := endpointURL(&tc.svc, tc.routable)
			if tc.wantErr {
				assert.Error(t, err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, u)
			assert.Equal(t, tc.wantProps, props)
		})
	}
}

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
