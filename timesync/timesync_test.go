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

// TestSync: the clock is stepped by the server's offset only when a
// step is given and the answer is good; a failed step is a StepError.
func TestSync(t *testing.T) {
	good, err := timesynctest.NewServer(time.Hour)
	require.NoError(t, err)
	defer good.Close()
	bad, err := timesynctest.NewServer(time.Hour)
	require.NoError(t, err)
	defer bad.Close()
	bad.Unsynchronised()
	refused := errors.New("no CAP_SYS_TIME")
	for _, tc := range []struct {
		name      string
		server    string
		stepErr   error
		readOnly  bool
		wantSteps int
		check     func(error) bool
	}{
		{name: "stepped", server: good.Addr, wantSteps: 1, check: func(err error) bool { return err == nil }},
		{name: "read only", server: good.Addr, readOnly: true, check: func(err error) bool { return err == nil }},
		{name: "the step fails", server: good.Addr, stepErr: refused, wantSteps: 1, check: func(err error) bool {
			var se *StepError
			return errors.As(err, &se) && errors.Is(err, refused)
		}},
		{name: "an untrustworthy server leaves the clock", server: bad.Addr, check: func(err error) bool { return errors.Is(err, ErrBadAnswer) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var steps []time.Duration
			step := func(d time.Duration) error { steps = append(steps, d); return tc.stepErr }
			if tc.readOnly {
				step = nil
			}
			res, err := Sync(context.Background(), tc.server, step, WithAttempts(1, 0))
			assert.True(t, tc.check(err), "%v", err)
			require.Len(t, steps, tc.wantSteps)
			if tc.wantSteps > 0 {
				assert.InDelta(t, time.Hour.Seconds(), steps[0].Seconds(), 1)
			}
			if err == nil {
				assert.InDelta(t, time.Hour.Seconds(), res.Offset.Seconds(), 1)
			}
		})
	}
}
