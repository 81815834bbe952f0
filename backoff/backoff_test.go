package backoff

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func TestNextDoublesUpToTheCapWithJitter(t *testing.T) {
	for _, tc := range []struct {
		name       string
		first, max time.Duration
		steps      []time.Duration // the step each wait is jittered from
	}{
		{"lookup", time.Second, 60 * time.Second,
			[]time.Duration{1, 2, 4, 8, 16, 32, 60, 60, 60}},
		{"mDNS", time.Second, 30 * time.Second,
			[]time.Duration{1, 2, 4, 8, 16, 30, 30}},
		{"tokenless lookups", 5 * time.Second, 60 * time.Second,
			[]time.Duration{5, 10, 20, 40, 60, 60}},
		{"no first wait given", 0, 4 * time.Second,
			[]time.Duration{1, 2, 4, 4}},
		{"negative first wait", -time.Second, 2 * time.Second,
			[]time.Duration{1, 2, 2}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Jitter is random: many runs must all stay in bounds.
			for run := 0; run < 200; run++ {
				b := New(tc.first, tc.max)
				for i, step := range tc.steps {
					step *= time.Second
					w := b.Next()
					if w < step/2 || w > step {
						t.Fatalf("wait %d = %v, want within [%v, %v]", i, w, step/2, step)
					}
				}
			}
		})
	}
}

func TestNextIsJittered(t *testing.T) {
	seen := map[time.Duration]bool{}
	for i := 0; i < 50; i++ {
		seen[New(time.Second, time.Minute).Next()] = true
	}
	assert.Greater(t, len(seen), 1, "fifty first waits, all the same: no jitter")
}

func TestReset(t *testing.T) {
	b := New(time.Second, time.Minute)
	for i := 0; i < 5; i++ {
		b.Next()
	}
	b.Reset()
	w := b.Next()
	assert.GreaterOrEqual(t, w, 500*time.Millisecond)
	assert.LessOrEqual(t, w, time.Second)
}

func TestSleep(t *testing.T) {
	assert.NoError(t, Sleep(context.Background(), time.Millisecond))

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	start := time.Now()
	assert.ErrorIs(t, Sleep(ctx, time.Hour), context.Canceled)
	assert.Less(t, time.Since(start), time.Second, "a cancelled context ends the sleep at once")

	ctx, cancel = context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	assert.ErrorIs(t, Sleep(ctx, time.Hour), context.DeadlineExceeded)
}
