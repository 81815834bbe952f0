package discovery

import (
	"net"
	"net/netip"
	"strings"
	"testing"

	"github.com/hashicorp/mdns"
	"github.com/stretchr/testify/assert"
)

func TestParseTXT(t *testing.T) {
	for _, tc := range []struct {
		name   string
		fields []string
		want   map[string]string
	}{
		{name: "Ironic's records", fields: []string{"protocol=http", "ipa_debug=True"}, want: map[string]string{"protocol": "http", "ipa_debug": "True"}},
		{name: "no records", fields: nil, want: map[string]string{}},
		{name: "an empty string (zeroconf's empty TXT)", fields: []string{""}, want: map[string]string{}},
		{name: "a key without value", fields: []string{"flag"}, want: map[string]string{"flag": ""}},
		{name: "an empty value", fields: []string{"path="}, want: map[string]string{"path": ""}},
		{name: "the value keeps its = signs", fields: []string{"params=a=b,c=d"}, want: map[string]string{"params": "a=b,c=d"}},
		{name: "an empty key is ignored", fields: []string{"=x", "k=v"}, want: map[string]string{"k": "v"}},
		{name: "the first of a repeated key wins, any case", fields: []string{"Path=/a", "path=/b"}, want: map[string]string{"Path": "/a"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, ParseTXT(tc.fields))
		})
	}
}

func FuzzParseTXT(f *testing.F) {
	f.Add("protocol=http\x00ipa_debug=True")
	f.Add("=\x00a\x00a=b=c")
	f.Fuzz(func(t *testing.T, s string) {
		got := ParseTXT(strings.Split(s, "\x00"))
		for k := range got {
			if k == "" || strings.Contains(k, "=") {
				t.Fatalf("bad key %q", k)
			}
		}
	})
}

func TestInstanceName(t *testing.T) {
	assert.Equal(t, "baremetal._openstack._tcp.local.", instanceName("baremetal", "_openstack._tcp"))
	assert.Equal(t, "baremetal-introspection._openstack._tcp.local.", instanceName("baremetal-introspection.", "_openstack._tcp."))
}

func TestFromEntry(t *testing.T) {
	e := &mdns.ServiceEntry{Name: "baremetal._openstack._tcp.local.", Host: "baremetal._openstack._tcp.local.", Port: 6385,
		AddrV4: net.IPv4(10, 9, 0, 1), AddrV6IPAddr: &net.IPAddr{IP: net.ParseIP("fe80::1"), Zone: "veth0"}, InfoFields: []string{"protocol=http"}}
	s := fromEntry(e)
	assert.Equal(t, []netip.Addr{netip.MustParseAddr("10.9.0.1"), netip.MustParseAddr("fe80::1%veth0")}, s.Addrs)
	assert.Equal(t, 6385, s.Port)
	assert.Equal(t, map[string]string{"protocol": "http"}, s.TXT)

	s = fromEntry(&mdns.ServiceEntry{Name: "x", Port: 1})
	assert.Empty(t, s.Addrs, "no address records, no addresses")
}
