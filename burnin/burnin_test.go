package burnin

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestCPU(t *testing.T) {
	r, err := CPU(context.Background(), 2, 300*time.Millisecond)
	require.NoError(t, err)
	assert.Equal(t, "cpu", r.Stressor)
	assert.Equal(t, 2, r.Workers)
	assert.Greater(t, r.Ops, uint64(0))
	// The duration is a floor; a loaded machine may overrun it a little.
	assert.GreaterOrEqual(t, r.Seconds, 0.3)
	assert.Less(t, r.Seconds, 3.0)

	r, err = CPU(context.Background(), 0, 50*time.Millisecond)
	require.NoError(t, err)
	assert.Greater(t, r.Workers, 0, "0 means every CPU")

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = CPU(ctx, 1, time.Hour)
	assert.True(t, errors.Is(err, context.Canceled), "a cancelled step is not a finished burn-in: %v", err)
}

func TestMemory(t *testing.T) {
	r, err := Memory(context.Background(), 2, 16<<20, 300*time.Millisecond)
	require.NoError(t, err)
	assert.Equal(t, "vm", r.Stressor)
	assert.Equal(t, int64(16<<20), r.Bytes)
	assert.Greater(t, r.Ops, uint64(0))

	_, err = Memory(context.Background(), 4, 4096, time.Second)
	assert.Error(t, err, "less than a page per worker")
	// More than there is is clipped, not an OOM kill of the agent.
	avail, err := MemAvailable()
	require.NoError(t, err)
	r, err = Memory(context.Background(), 1, avail*4, time.Millisecond)
	require.NoError(t, err)
	assert.LessOrEqual(t, r.Bytes, avail-memReserve)
}

func TestParseBytes(t *testing.T) {
	for in, want := range map[string]int64{"98%": 98 << 20, "50%": 50 << 20, "4096": 4096, "1k": 1024, "512M": 512 << 20, "2G": 2 << 30, " 1t ": 1 << 40, "10b": 10} {
		got, err := ParseBytes(in, 100<<20)
		require.NoError(t, err, in)
		assert.Equal(t, want, got, in)
	}
	for _, bad := range []string{"", "0", "-1", "101%", "x%", "1q", "99999999999999999999g",
		"nan%", "NaN%", "-nan%", "inf%", "-inf%", "1e-30%", "0%"} {
		_, err := ParseBytes(bad, 100<<20)
		assert.Error(t, err, bad)
	}
}

func FuzzParseBytes(f *testing.F) {
	f.Add("98%")
	f.Add("1G")
	f.Add("nan%")
	f.Add("1e-30%")
	f.Add("99999999999999999999g")
	f.Fuzz(func(t *testing.T, s string) {
		if v, err := ParseBytes(s, 1<<30); err == nil && v <= 0 {
			t.Fatalf("%q parsed to %d", s, v)
		}
	})
}
