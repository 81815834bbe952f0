package inventory

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestDHCPWaitLinks(t *testing.T) {
	ifs := []Interface{{Name: "eth0", MACAddress: "52:54:00:aa:bb:01"}, {Name: "eth1", MACAddress: "52:54:00:aa:bb:02"}}
	for _, tc := range []struct {
		name   string
		all    bool
		bootif string
		want   []string
	}{
		{name: "all interfaces", all: true, want: []string{"eth0", "eth1"}},
		{name: "all interfaces, BOOTIF known", all: true, bootif: "01-52-54-00-aa-bb-02", want: []string{"eth0", "eth1"}},
		{name: "the PXE NIC, pxelinux form", bootif: "01-52-54-00-aa-bb-02", want: []string{"eth1"}},
		{name: "the PXE NIC, MAC form, upper case", bootif: "52:54:00:AA:BB:01", want: []string{"eth0"}},
		{name: "no BOOTIF: nothing to wait for", want: nil},
		{name: "BOOTIF of no NIC here", bootif: "01-52-54-00-aa-bb-99", want: nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, dhcpWaitLinks(ifs, tc.all, tc.bootif))
		})
	}
}

// TestWaitForRootDisk picks from a QEMU guest's snapshot: a match at
// once, no match after every attempt, bad hints without waiting, and a
// cancelled wait.
func TestWaitForRootDisk(t *testing.T) {
	f, err := os.Open(filepath.Join("testdata", "snapshots", "bios-virtio-scsi-nvme.tar.gz"))
	require.NoError(t, err)
	defer f.Close()
	root := t.TempDir()
	require.NoError(t, Unpack(f, root))
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	for _, tc := range []struct {
		name     string
		ctx      context.Context
		hints    map[string]any
		attempts int
		delay    time.Duration
		want     string
		notFound bool
		minWait  time.Duration
	}{
		{name: "serial hint", ctx: context.Background(), hints: map[string]any{"serial": "goipa-scsi-0"}, attempts: 3, delay: time.Hour, want: "/dev/sda"},
		{name: "no hints and no disk of 4 GiB: not found", ctx: context.Background(), hints: nil, attempts: 1, notFound: true},
		{name: "no match after every attempt", ctx: context.Background(), hints: map[string]any{"serial": "nope"}, attempts: 3, delay: 20 * time.Millisecond, notFound: true, minWait: 40 * time.Millisecond},
		{name: "bad hints: no waiting", ctx: context.Background(), hints: map[string]any{"size": "huge"}, attempts: 3, delay: time.Hour},
		{name: "cancelled while waiting", ctx: cancelled, hints: map[string]any{"serial": "nope"}, attempts: 3, delay: time.Hour},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			got, err := WaitForRootDisk(tc.ctx, tc.hints, tc.attempts, tc.delay, log, WithRoot(root), WithSkipBMC(true))
			assert.Less(t, time.Since(start), time.Minute)
			assert.GreaterOrEqual(t, time.Since(start), tc.minWait)
			if tc.want != "" {
				require.NoError(t, err)
				assert.Equal(t, tc.want, got)
				return
			}
			require.Error(t, err)
			var nf *DeviceNotFoundError
			assert.Equal(t, tc.notFound, errors.As(err, &nf), "%v", err)
		})
	}
}
