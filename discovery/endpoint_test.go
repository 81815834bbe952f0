package discovery

import (
	"context"
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
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
		svc       Service
		routable  func(netip.Addr) bool
		want      string
		wantProps map[string]string
		wantErr   bool
	}{
		{name: "Ironic 21.4 with an IP in its URL (protocol http, port 6385)",
			svc:  Service{Instance: "baremetal._openstack._tcp.local.", Host: "baremetal._openstack._tcp.local.", Port: 6385, Addrs: addrs, TXT: map[string]string{"protocol": "http", "ipa_debug": "True"}},
			want: "http://10.9.0.1:6385", routable: only("10.9.0.1", "192.168.7.2"), wantProps: map[string]string{"ipa_debug": "True"}},
		{name: "no protocol record: https", svc: Service{Host: "x.local.", Port: 6385, Addrs: addrs[1:]}, routable: only("10.9.0.1"), want: "https://10.9.0.1:6385", wantProps: map[string]string{}},
		{name: "no protocol record on port 80: http", svc: Service{Host: "x.local.", Port: 80, Addrs: addrs[1:]}, routable: only("10.9.0.1"), want: "http://10.9.0.1:80", wantProps: map[string]string{}},
		{name: "path record", svc: Service{Host: "x.local.", Port: 443, Addrs: addrs[1:], TXT: map[string]string{"path": "/baremetal", "protocol": "https"}}, routable: only("10.9.0.1"), want: "https://10.9.0.1:443/baremetal", wantProps: map[string]string{}},
		{name: "loopback skipped, first routable wins", svc: Service{Host: "x.local.", Port: 6385, Addrs: addrs, TXT: map[string]string{"protocol": "http"}}, routable: only("192.168.7.2"), want: "http://192.168.7.2:6385", wantProps: map[string]string{}},
		{name: "nothing routable: the first non-loopback", svc: Service{Host: "x.local.", Port: 6385, Addrs: addrs, TXT: map[string]string{"protocol": "http"}}, routable: only(), want: "http://10.9.0.1:6385", wantProps: map[string]string{}},
		{name: "IPv6 in brackets", svc: Service{Host: "x.local.", Port: 6385, Addrs: []netip.Addr{netip.MustParseAddr("fd00::5")}, TXT: map[string]string{"protocol": "http"}}, routable: only("fd00::5"), want: "http://[fd00::5]:6385", wantProps: map[string]string{}},
		{name: "a real host name is kept", svc: Service{Host: "ironic.example.com.", Port: 6385, Addrs: addrs, TXT: map[string]string{"protocol": "https"}}, routable: only(), want: "https://ironic.example.com:6385", wantProps: map[string]string{}},
		{name: "only loopback: error", svc: Service{Host: "x.local.", Port: 6385, Addrs: addrs[:1]}, routable: only("127.0.0.1"), wantErr: true},
		{name: "port 0: error", svc: Service{Host: "x.local.", Port: 0, Addrs: addrs[1:]}, routable: only("10.9.0.1"), wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u, props, err := EndpointURL(&tc.svc, tc.routable)
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

// TestFindEndpoint: a miss or an unusable answer is asked again; the
// context ends the asking.
func TestFindEndpoint(t *testing.T) {
	good := &Service{Instance: "baremetal._openstack._tcp.local.", Host: "ironic.example.", Port: 6385, TXT: map[string]string{"protocol": "http", "ipa_debug": "1"}}
	badPort := &Service{Instance: "baremetal._openstack._tcp.local.", Host: "ironic.example.", Port: 0}
	for _, tc := range []struct {
		name    string
		answers []*Service // nil: not found
		cancel  bool
		want    Endpoint
		asks    int
	}{
		{name: "first answer", answers: []*Service{good}, want: Endpoint{URL: "http://ironic.example:6385", Properties: map[string]string{"ipa_debug": "1"}}, asks: 1},
		{name: "a miss, then the answer", answers: []*Service{nil, good}, want: Endpoint{URL: "http://ironic.example:6385", Properties: map[string]string{"ipa_debug": "1"}}, asks: 2},
		{name: "an unusable answer, then a good one", answers: []*Service{badPort, good}, want: Endpoint{URL: "http://ironic.example:6385", Properties: map[string]string{"ipa_debug": "1"}}, asks: 2},
		{name: "cancelled", answers: []*Service{nil}, cancel: true, asks: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			asks := 0
			find := func(_ context.Context, instance, serviceType string) (*Service, error) {
				assert.Equal(t, "baremetal", instance)
				assert.Equal(t, "_openstack._tcp", serviceType)
				s := tc.answers[min(asks, len(tc.answers)-1)]
				asks++
				if tc.cancel {
					cancel()
				}
				if s == nil {
					return nil, ErrNotFound
				}
				return s, nil
			}
			start := time.Now()
			ep, err := FindEndpoint(ctx, "baremetal", "_openstack._tcp", WithFinder(find), WithRoutable(func(netip.Addr) bool { return true }))
			assert.Less(t, time.Since(start), 5*time.Second)
			assert.Equal(t, tc.asks, asks)
			if tc.cancel {
				assert.True(t, errors.Is(err, context.Canceled), "%v", err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, ep)
		})
	}
}
