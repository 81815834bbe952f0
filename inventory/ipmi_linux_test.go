package inventory

import (
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestIPMIDeviceSend: the device layer (u-root's pkg/ipmi) refuses at
// once, without a panic or a wait, what cannot reach a BMC; a request
// of an ended context is never sent.
func TestIPMIDeviceSend(t *testing.T) {
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	for _, tc := range []struct {
		name string
		ctx  context.Context
		data []byte
		want func(error) bool
	}{
		{name: "an ended context", ctx: cancelled, want: func(err error) bool { return errors.Is(err, context.Canceled) }},
		// /dev/null is a character device whose ioctls fail.
		{name: "no IPMI device behind the path", ctx: context.Background(), data: []byte{1, 3, 0, 0},
			want: func(err error) bool { return err != nil && !errors.Is(err, os.ErrDeadlineExceeded) }},
		{name: "empty request data", ctx: context.Background(), data: []byte{},
			want: func(err error) bool { return err != nil && !errors.Is(err, os.ErrDeadlineExceeded) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, err := openIPMI("/dev/null", time.Minute)
			require.NoError(t, err)
			defer d.Close()
			start := time.Now()
			_, err = d.send(tc.ctx, netfnApp, cmdGetChannelInfo, tc.data)
			assert.True(t, tc.want(err), "%v", err)
			assert.Less(t, time.Since(start), 5*time.Second)
		})
	}
}

func TestParseDeviceID(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   []byte
		want *BMC
	}{
		// A Dell iDRAC: firmware 2.83, IPMI 2.0, manufacturer 674 (0x02a2).
		{"idrac", []byte{0x20, 0x81, 0x02, 0x83, 0x02, 0xbf, 0xa2, 0x02, 0x00, 0x00, 0x01, 0x00, 0x0a, 0x00, 0x00},
			&BMC{DeviceID: 0x20, DeviceRevision: 1, FirmwareVersion: "2.83", IPMIVersion: "2.0", ManufacturerID: 674, ProductID: 256, AuxFirmwareRevision: "000a0000"}},
		// QEMU's simulator with fwrev1=3 fwrev2=0x14, "device available" bit set, IPMI 1.5.
		{"no aux", []byte{0x20, 0x00, 0x83, 0x14, 0x51, 0x00, 0x34, 0x12, 0x0f, 0xcd, 0xab},
			&BMC{DeviceID: 0x20, FirmwareVersion: "3.14", IPMIVersion: "1.5", ManufacturerID: 0x0f1234, ProductID: 0xabcd}},
		{"short", []byte{0x20, 0x00, 0x83}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseDeviceID(tc.in)
			if tc.want == nil {
				assert.Error(t, err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
		})
	}
}

func TestCompletionAndLANParams(t *testing.T) {
	_, err := completion(netfnTransport, cmdGetLANConfig, []byte{0x80})
	var ce *ipmiCompletionError
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, byte(0x80), ce.Code)
	_, err = completion(netfnApp, cmdGetDeviceID, nil)
	assert.Error(t, err)
	d, err := completion(netfnApp, cmdGetDeviceID, []byte{0, 1, 2})
	require.NoError(t, err)
	assert.Equal(t, []byte{1, 2}, d)

	assert.Equal(t, []byte{0x01, 3, 0, 0}, lanConfigRequest(0x11, lanParamIPAddress, 0), "channel is 4 bits; bit 7 (revision only) stays clear")
	ip, err := parseIPv4Param([]byte{0x11, 10, 1, 2, 3})
	require.NoError(t, err)
	assert.Equal(t, "10.1.2.3", ip)
	_, err = parseIPv4Param([]byte{0x11, 10, 1})
	assert.Error(t, err)
	mac, err := parseMACParam([]byte{0x11, 0xAA, 0xbb, 0, 1, 2, 0xff})
	require.NoError(t, err)
	assert.Equal(t, "aa:bb:00:01:02:ff", mac)

	a, err := parseIP6AddressParam(append(append([]byte{0x11, 0, 0x82}, netip.MustParseAddr("2001:db8::5").AsSlice()...), 64, 0))
	require.NoError(t, err)
	assert.Equal(t, ip6Address{Enabled: true, Source: 2, Addr: netip.MustParseAddr("2001:db8::5"), Prefix: 64, Status: 0}, a)
	assert.Equal(t, "2001:db8::5/64", a.String())
}

// fakeBMC answers as a BMC with LAN channels: params[channel][param][set].
type fakeBMC struct {
	medium map[byte]byte // channel -> medium; missing: completion code 0xcc
	params map[byte]map[byte]map[byte][]byte
	noChan bool // Get Channel Info unsupported (0xc1)
	asked  int
}

func (f *fakeBMC) send(ctx context.Context, netfn, cmd byte, data []byte) ([]byte, error) {
	f.asked++
	switch {
	case netfn == netfnApp && cmd == cmdGetChannelInfo:
		if f.noChan {
			return nil, &ipmiCompletionError{netfn, cmd, 0xc1}
		}
		m, ok := f.medium[data[0]]
		if !ok {
			return nil, &ipmiCompletionError{netfn, cmd, 0xcc}
		}
		return []byte{data[0], m, 1, 0x80, 0xf2, 0x1b, 0, 0, 0}, nil
	case netfn == netfnTransport && cmd == cmdGetLANConfig:
		if v, ok := f.params[data[0]][data[1]][data[2]]; ok {
			return append([]byte{0x11}, v...), nil
		}
		return nil, &ipmiCompletionError{netfn, cmd, 0x80}
	}
	return nil, &ipmiCompletionError{netfn, cmd, 0xc1}
}

func ip6Entry(set, source byte, addr string, prefix, status byte) []byte {
	return append(append([]byte{set, source}, netip.MustParseAddr(addr).AsSlice()...), prefix, status)
}

func lan(ip string, mac []byte) map[byte]map[byte][]byte {
	p := map[byte]map[byte][]byte{}
	if ip != "" {
		p[lanParamIPAddress] = map[byte][]byte{0: netip.MustParseAddr(ip).AsSlice()}
	}
	if mac != nil {
		p[lanParamMACAddress] = map[byte][]byte{0: mac}
	}
	return p
}

func with(p map[byte]map[byte][]byte, param byte, set byte, v []byte) map[byte]map[byte][]byte {
	if p[param] == nil {
		p[param] = map[byte][]byte{}
	}
	p[param][set] = v
	return p
}

func TestBMCAddressesFollowIPA(t *testing.T) {
	mac1 := []byte{0x52, 0x54, 0, 0, 0, 1}
	mac2 := []byte{0x52, 0x54, 0, 0, 0, 2}
	zero := []byte{0, 0, 0, 0, 0, 0}
	str := func(s string) *string { return &s }
	for _, tc := range []struct {
		name   string
		bmc    *fakeBMC
		v4, v6 string
		mac    *string
	}{
		{"no LAN parameters (QEMU's simulator)", &fakeBMC{}, "0.0.0.0", "::/0", nil},
		{"first channel with an address", &fakeBMC{medium: map[byte]byte{1: 4, 2: 4},
			params: map[byte]map[byte]map[byte][]byte{1: lan("0.0.0.0", mac1), 2: lan("10.0.0.9", mac2)}},
			// Channel 1's MAC counts too: 0.0.0.0 and no IPv6 parameters is
			// IPA's empty-awk-line case.
			"10.0.0.9", "::/0", str("52:54:00:00:00:01")},
		{"non-LAN channels are skipped", &fakeBMC{medium: map[byte]byte{1: 0x01, 3: 0x06},
			params: map[byte]map[byte]map[byte][]byte{1: lan("10.9.9.9", mac1), 3: lan("10.0.0.3", mac2)}},
			"10.0.0.3", "::/0", str("52:54:00:00:00:02")},
		{"Get Channel Info unsupported: every channel is asked", &fakeBMC{noChan: true,
			params: map[byte]map[byte]map[byte][]byte{7: lan("192.0.2.7", mac1)}},
			"192.0.2.7", "::/0", str("52:54:00:00:00:01")},
		{"zero MACs are no MAC", &fakeBMC{medium: map[byte]byte{1: 4},
			params: map[byte]map[byte]map[byte][]byte{1: lan("10.0.0.1", zero)}},
			"10.0.0.1", "::/0", nil},
		{"a MAC without an IPv4 parameter is not reported", &fakeBMC{medium: map[byte]byte{1: 4},
			params: map[byte]map[byte]map[byte][]byte{1: lan("", mac1)}},
			"0.0.0.0", "::/0", nil},
		{"IPv6: dynamic SLAAC before static, on the channel with IPv6 enabled", &fakeBMC{medium: map[byte]byte{1: 4, 2: 4},
			params: map[byte]map[byte]map[byte][]byte{
				// IPv4 only, and only a link-local address listed.
				1: with(with(with(lan("0.0.0.0", mac1),
					lanParamIP6Enables, 0, []byte{0}),
					lanParamIP6Status, 0, []byte{0, 1, 0}),
					lanParamIP6Dynamic, 0, ip6Entry(0, ip6SourceSLAAC, "fe80::9", 64, ip6StatusActive)),
				2: with(with(with(with(with(lan("0.0.0.0", mac2),
					lanParamIP6Enables, 0, []byte{2}),
					lanParamIP6Status, 0, []byte{1, 2, 0}),
					lanParamIP6Static, 0, ip6Entry(0, 0x80, "2001:db8::10", 64, ip6StatusActive)),
					lanParamIP6Dynamic, 0, ip6Entry(0, ip6SourceSLAAC, "fe80::1", 64, ip6StatusActive)),
					lanParamIP6Dynamic, 1, ip6Entry(1, ip6SourceDHCPv6, "2001:db8::20", 128, ip6StatusActive)),
			}},
			// IPA's v6 rule takes the link-local SLAAC address; its MAC rule
			// wants a global address, which channel 2 has.
			"0.0.0.0", "fe80::1", str("52:54:00:00:00:02")},
		{"IPv6: inactive, disabled and unspecified addresses do not count", &fakeBMC{medium: map[byte]byte{1: 4},
			params: map[byte]map[byte]map[byte][]byte{
				1: with(with(with(with(lan("0.0.0.0", mac1),
					lanParamIP6Enables, 0, []byte{1}),
					lanParamIP6Status, 0, []byte{2, 1, 0}),
					lanParamIP6Static, 0, ip6Entry(0, 0x00, "fe80::10", 64, ip6StatusActive)), // not enabled
					lanParamIP6Dynamic, 0, ip6Entry(0, ip6SourceDHCPv6, "::", 0, ip6StatusActive)),
			}},
			// Listed addresses exist and none is usable: no MAC either.
			"0.0.0.0", "::/0", nil},
		{"IPv6: static active enabled", &fakeBMC{medium: map[byte]byte{4: 4},
			params: map[byte]map[byte]map[byte][]byte{
				4: with(with(with(lan("10.4.4.4", mac1),
					lanParamIP6Enables, 0, []byte{2}),
					lanParamIP6Status, 0, []byte{1, 0, 0}),
					lanParamIP6Static, 0, ip6Entry(0, 0x80, "2001:db8::44", 64, ip6StatusActive)),
			}},
			"10.4.4.4", "2001:db8::44", str("52:54:00:00:00:01")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v4, v6, mac := bmcAddresses(context.Background(), tc.bmc)
			assert.Equal(t, tc.v4, v4)
			assert.Equal(t, tc.v6, v6)
			assert.Equal(t, tc.mac, mac)
		})
	}
}

func TestBMCAddressesStopWithTheContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	f := &fakeBMC{noChan: true}
	v4, v6, _ := bmcAddresses(ctx, f)
	assert.Equal(t, "0.0.0.0", v4)
	assert.Equal(t, "::/0", v6)
	assert.Zero(t, f.asked)
}

// TestCollectBMCWithoutAUsableDevice: no device gives IPA's nulls; a
// device that is not the kernel's IPMI interface gives IPA's placeholders
// and a logged gap, never a failure.
func TestCollectBMCWithoutAUsableDevice(t *testing.T) {
	root := t.TempDir()
	inv := &Inventory{}
	collectBMC(context.Background(), inv, newOptions([]Option{WithRoot(root)}))
	assert.Nil(t, inv.BMCAddress)
	assert.Nil(t, inv.BMCV6Address)
	assert.Nil(t, inv.BMC)

	// /dev/null is a character device; its ioctls fail.
	require.NoError(t, os.MkdirAll(filepath.Join(root, "dev"), 0o755))
	require.NoError(t, os.Symlink("/dev/null", filepath.Join(root, "dev", "ipmi0")))
	var logged []string
	h := &recordHandler{msgs: &logged}
	collectBMC(context.Background(), inv, newOptions([]Option{WithRoot(root), WithLogger(slog.New(h))}))
	require.NotNil(t, inv.BMCAddress)
	assert.Equal(t, "0.0.0.0", *inv.BMCAddress)
	assert.Equal(t, "::/0", *inv.BMCV6Address)
	assert.Nil(t, inv.BMCMAC)
	assert.Nil(t, inv.BMC)
	assert.Contains(t, logged, "inventory: cannot read the BMC; reporting IPA's placeholder addresses")
}

type recordHandler struct {
	slog.Handler
	msgs *[]string
}

func (h *recordHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *recordHandler) Handle(_ context.Context, r slog.Record) error {
	*h.msgs = append(*h.msgs, r.Message)
	return nil
}

func FuzzIPMIResponses(f *testing.F) {
	f.Add([]byte{0x20, 0x81, 0x02, 0x83, 0x02, 0xbf, 0xa2, 0x02, 0x00, 0x00, 0x01, 0x00, 0x0a, 0x00, 0x00})
	f.Add([]byte{0x11, 10, 1, 2, 3, 4, 5})
	f.Add(ip6Entry(0, 0x80, "2001:db8::10", 64, 0))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		if d, err := completion(netfnApp, cmdGetDeviceID, b); err == nil {
			if bmc, err := parseDeviceID(d); err == nil && bmc.ManufacturerID >= 1<<20 {
				t.Fatalf("manufacturer id %d is more than 20 bits", bmc.ManufacturerID)
			}
		}
		parseChannelMedium(b)
		if ip, err := parseIPv4Param(b); err == nil {
			if _, err := netip.ParseAddr(ip); err != nil {
				t.Fatalf("parsed IPv4 %q does not parse back", ip)
			}
		}
		if mac, err := parseMACParam(b); err == nil && len(mac) != 17 {
			t.Fatalf("MAC %q", mac)
		}
		if a, err := parseIP6AddressParam(b); err == nil && !a.Addr.Is6() {
			t.Fatalf("IPv6 entry %v", a)
		}
		// A BMC that answers everything with these bytes is still scanned
		// to an answer.
		v4, v6, _ := bmcAddresses(context.Background(), echoBMC(b))
		if _, err := netip.ParseAddr(v4); err != nil {
			t.Fatalf("bmc_address %q", v4)
		}
		if v6 != noBMCV6Address {
			if _, err := netip.ParseAddr(v6); err != nil {
				t.Fatalf("bmc_v6address %q", v6)
			}
		}
	})
}

// echoBMC answers every request with the same data.
type echoBMC []byte

func (e echoBMC) send(context.Context, byte, byte, []byte) ([]byte, error) { return e, nil }
