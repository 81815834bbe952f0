package netcfg

import (
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseIP(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want IPConfig
	}{
		{"dhcp", IPConfig{Mode: "dhcp"}},
		{"on", IPConfig{Mode: "dhcp"}},
		{"off", IPConfig{Mode: "off"}},
		{"none", IPConfig{Mode: "off"}},
		{"eth1:dhcp", IPConfig{Mode: "dhcp", Device: "eth1"}},
		{"192.0.2.10::192.0.2.1:255.255.255.0:agent:eth0:off:192.0.2.53:192.0.2.54:192.0.2.123", IPConfig{
			Mode: "static", Client: netip.MustParsePrefix("192.0.2.10/24"), Gateway: netip.MustParseAddr("192.0.2.1"),
			Hostname: "agent", Device: "eth0", DNS: []netip.Addr{netip.MustParseAddr("192.0.2.53"), netip.MustParseAddr("192.0.2.54")},
			NTP: netip.MustParseAddr("192.0.2.123")}},
		{"10.1.2.3:::16::eth2:none", IPConfig{Mode: "static", Client: netip.MustParsePrefix("10.1.2.3/16"), Device: "eth2"}},
		{"10.1.2.3::::::", IPConfig{Mode: "static", Client: netip.MustParsePrefix("10.1.2.3/8")}},
		{"[2001:db8::5]::[2001:db8::1]:64::eth0:off", IPConfig{Mode: "static", Client: netip.MustParsePrefix("2001:db8::5/64"),
			Gateway: netip.MustParseAddr("2001:db8::1"), Device: "eth0"}},
		{":::::eth0:dhcp", IPConfig{Mode: "dhcp", Device: "eth0"}},
		{"::::::", IPConfig{Mode: "dhcp"}},
	} {
		got, err := ParseIP(tc.in)
		require.NoError(t, err, tc.in)
		assert.Equal(t, tc.want, got, tc.in)
	}
	for _, bad := range []string{"", "sometimes", "300.1.1.1::::::off", "10.0.0.1:::255.0.255.0:::off", "10.0.0.1:::99:::off",
		"10.0.0.1::[2001:db8::1]::::off", "10.0.0.1::::::weird", "1:2:3:4:5:6:7:8:9:10:11"} {
		_, err := ParseIP(bad)
		assert.Error(t, err, bad)
	}
}

func FuzzParseIP(f *testing.F) {
	for _, s := range []string{"dhcp", "192.0.2.10::192.0.2.1:255.255.255.0:h:eth0:off:1.1.1.1", "[::1]::::::off", "eth0:dhcp", ":::"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := ParseIP(s)
		if err != nil {
			return
		}
		if c.Mode == "static" && !c.Client.IsValid() {
			t.Fatalf("static without an address: %+v", c)
		}
	})
}

func tlv(typ int, v []byte) []byte {
	b := make([]byte, 2, 2+len(v))
	binary.BigEndian.PutUint16(b, uint16(typ)<<9|uint16(len(v)))
	return append(b, v...)
}

func samplePDU() []byte {
	var p []byte
	p = append(p, tlv(1, []byte{4, 0x52, 0x54, 0, 0xaa, 0xbb, 0xcc})...)
	p = append(p, tlv(2, append([]byte{5}, "Ethernet1/7"...))...)
	p = append(p, tlv(3, []byte{0, 120})...)
	p = append(p, tlv(5, []byte("tor-switch-3"))...)
	p = append(p, tlv(127, []byte{0x00, 0x80, 0xc2, 1, 0, 100})...)
	p = append(p, tlv(127, append([]byte{0x00, 0x80, 0xc2, 3, 0, 200, 4}, "prov"...))...)
	return append(p, 0, 0)
}

func TestParseLLDP(t *testing.T) {
	tlvs, err := ParseLLDP(samplePDU())
	require.NoError(t, err)
	require.Len(t, tlvs, 6)
	assert.Equal(t, 5, tlvs[3].Type)
	n := Summarize(tlvs)
	assert.Equal(t, "52:54:00:aa:bb:cc", n.ChassisID)
	assert.Equal(t, "Ethernet1/7", n.PortID)
	assert.Equal(t, "tor-switch-3", n.SystemName)
	assert.Equal(t, []int{100, 200}, n.VLANs)

	_, err = ParseLLDP([]byte{0x02, 0xff, 1})
	assert.Error(t, err, "a TLV longer than the frame")
}

func FuzzParseLLDP(f *testing.F) {
	f.Add(samplePDU())
	f.Add([]byte{0xfe, 0x03, 0x00, 0x80, 0xc2})
	f.Fuzz(func(t *testing.T, b []byte) {
		tlvs, _ := ParseLLDP(b)
		Summarize(tlvs)
	})
}

func TestExpandVLANs(t *testing.T) {
	adv := map[string][]int{"eth0": {100, 200}, "eth1": {300}}
	links := []string{"eth0", "eth1", "eth2"}
	assert.Equal(t, "eth0.100,eth0.200,eth1.300", ExpandVLANs("all", links, adv))
	assert.Equal(t, "eth1.300,eth0.42", ExpandVLANs("eth1, eth0.42", links, adv))
	assert.Equal(t, "", ExpandVLANs("eth2", links, adv), "nothing advertised on eth2")
	assert.True(t, needsLLDP("eth0.5,all"))
	assert.False(t, needsLLDP("eth0.5, eth1.7"))
}
