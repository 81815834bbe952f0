package agent

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/goipa/goipa/timesync/timesynctest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// syncBuffer is a log sink safe for the agent's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestNTPServerSetsTheClockOnlyInTheRamdisk(t *testing.T) {
	srv, err := timesynctest.NewServer(time.Hour)
	require.NoError(t, err)
	t.Cleanup(srv.Close)
	for _, ramdisk := range []bool{false, true} {
		var logs syncBuffer
		a := newTestAgent(t, "ipa-standalone=1 ipa-ntp-server="+srv.Addr,
			WithRealPower(ramdisk), WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))
		var stepped []time.Duration
		a.stepClock = func(d time.Duration) error { stepped = append(stepped, d); return nil }
		a.syncClock(context.Background())
		if !ramdisk {
			assert.Empty(t, stepped, "a host agent set the clock")
			assert.Contains(t, logs.String(), "the host's clock is not set")
			continue
		}
		require.Len(t, stepped, 1)
		assert.InDelta(t, time.Hour.Seconds(), stepped[0].Seconds(), 1)
		assert.Contains(t, logs.String(), "clock set from ipa-ntp-server")
	}
}

func TestNTPServerThatCannotBeTrustedLeavesTheClock(t *testing.T) {
	srv, err := timesynctest.NewServer(time.Hour)
	require.NoError(t, err)
	t.Cleanup(srv.Close)
	srv.Unsynchronised()
	var logs syncBuffer
	a := newTestAgent(t, "ipa-standalone=1 ipa-ntp-server="+srv.Addr,
		WithRealPower(true), WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))
	a.stepClock = func(d time.Duration) error {
		t.Errorf("clock stepped by %v from an unsynchronised server", d)
		return nil
	}
	a.syncClock(context.Background())
	assert.Contains(t, logs.String(), "the clock is left as it is")
}

// Run reads the time before the API (and any certificate) starts.
func TestRunSyncsTheClockBeforeServing(t *testing.T) {
	srv, err := timesynctest.NewServer(-time.Hour)
	require.NoError(t, err)
	t.Cleanup(srv.Close)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	var logs syncBuffer
	a := newTestAgent(t, "ipa-standalone=1 boot_method=vmedia ipa-ntp-server="+srv.Addr,
		WithListener(ln), WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Error("Run did not stop")
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get("http://" + ln.Addr().String() + "/v1/status")
		if err == nil {
			resp.Body.Close()
			break
		}
		require.True(t, time.Now().Before(deadline), "the API never answered")
		time.Sleep(20 * time.Millisecond)
	}
	out := logs.String()
	ntp := strings.Index(out, "ipa-ntp-server")
	serving := strings.Index(out, "API listening")
	require.GreaterOrEqual(t, ntp, 0, out)
	require.GreaterOrEqual(t, serving, 0, out)
	assert.Less(t, ntp, serving, "the clock was read after the API started")
	// goipa init reads the virtual CD with boot_method=vmedia: the agent
	// must not tell the operator it ignores it.
	assert.NotContains(t, out, "parameter ignored")
}
