package timesync

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/goipa/goipa/timesync/timesynctest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestQueryReadsTheServersOffset(t *testing.T) {
	for _, offset := range []time.Duration{time.Hour, -90 * time.Minute, 0} {
		srv, err := timesynctest.NewServer(offset)
		require.NoError(t, err)
		res, err := Query(context.Background(), srv.Addr, WithAttempts(1, 0))
		srv.Close()
		require.NoError(t, err)
		assert.InDelta(t, offset.Seconds(), res.Offset.Seconds(), 1, "offset %v", offset)
		assert.Equal(t, uint8(1), res.Stratum)
	}
}

func TestQueryRefusesUnsynchronisedServer(t *testing.T) {
	srv, err := timesynctest.NewServer(time.Hour)
	require.NoError(t, err)
	defer srv.Close()
	srv.Unsynchronised()
	_, err = Query(context.Background(), srv.Addr, WithAttempts(2, 10*time.Millisecond))
	assert.ErrorIs(t, err, ErrBadAnswer)
}

func TestQueryGivesUpOnSilence(t *testing.T) {
	// A UDP port that never answers.
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	require.NoError(t, err)
	defer c.Close()
	_, err = Query(context.Background(), c.LocalAddr().String(), WithTimeout(100*time.Millisecond), WithAttempts(2, 10*time.Millisecond))
	assert.Error(t, err)

	// And a cancelled context stops it at once, whatever the timeout.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = Query(ctx, c.LocalAddr().String(), WithTimeout(time.Hour))
	assert.True(t, errors.Is(err, context.Canceled), "got %v", err)
}
