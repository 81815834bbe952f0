package netcfg

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestAdvertiseAddr(t *testing.T) {
	for _, tc := range []struct {
		name string
		adv  Advertise
		want string
	}{
		{"route to the peer", Advertise{URLs: []string{"http://127.0.0.1:6385"}}, "127.0.0.1"},
		{"the first URL with a route", Advertise{URLs: []string{"http://%zz", "https://127.0.0.2:6385/baremetal"}}, "127.0.0.1"},
		{"named interface", Advertise{Interface: "lo", URLs: []string{"http://192.0.2.1:6385"}}, "127.0.0.1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			tc.adv.Log = slog.New(slog.NewTextHandler(&bytes.Buffer{}, nil))
			got, err := AdvertiseAddr(ctx, tc.adv)
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
		})
	}
}

// Without an address the search goes on, louder after Attempts, until
// the context ends.
func TestAdvertiseAddrKeepsTrying(t *testing.T) {
	var logs bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 2500*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := AdvertiseAddr(ctx, Advertise{Interface: "goipa-none0", Attempts: 2, Interval: time.Millisecond,
		Log: slog.New(slog.NewTextHandler(&logs, nil))})
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	assert.GreaterOrEqual(t, time.Since(start), 2*time.Second, "rounds are at least a second apart")
	out := logs.String()
	assert.GreaterOrEqual(t, bytes.Count(logs.Bytes(), []byte("no IPv4 address on the interface")), 2, out)
	assert.Equal(t, 1, bytes.Count(logs.Bytes(), []byte("level=ERROR msg=\"still no address to advertise")), out)
}

func TestSourceAddrForURL(t *testing.T) {
	for _, tc := range []struct {
		url  string
		want string // "" for an error
	}{
		{"http://127.0.0.1:6385", "127.0.0.1"},
		{"https://127.0.0.1", "127.0.0.1"},
		{"http://%zz", ""},
		{"http://[::ffff:127.0.0.1]:1", "127.0.0.1"}, // mapped addresses are unmapped
	} {
		got, err := SourceAddrForURL(context.Background(), tc.url)
		if tc.want == "" {
			assert.Error(t, err, tc.url)
			continue
		}
		require.NoError(t, err, tc.url)
		assert.Equal(t, tc.want, got.String(), tc.url)
	}
}

func TestInterfaceIPv4(t *testing.T) {
	got, err := InterfaceIPv4("lo")
	require.NoError(t, err)
	assert.True(t, net.ParseIP(got).IsLoopback(), got)
	_, err = InterfaceIPv4("goipa-none0")
	assert.Error(t, err)
}
