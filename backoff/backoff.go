// Package backoff spaces out the retries of something that must not give
// up (looking a node up in Ironic, finding Ironic by mDNS, heartbeats that
// fail): waits that double from a first one up to a cap, each jittered so
// a rack of machines booted together does not ask in step, and a sleep
// that ends with its context.
package backoff

import (
	"context"
	"math/rand/v2"
	"time"
)

// Backoff is a capped, jittered exponential backoff. It is not safe for
// concurrent use: each retry loop has its own.
type Backoff struct {
	cur, first, max time.Duration
}

// New returns a Backoff whose waits start at first (a second when first
// is not positive) and double up to max.
func New(first, max time.Duration) *Backoff {
	if first <= 0 {
		first = time.Second
	}
	return &Backoff{cur: first, first: first, max: max}
}

// Next returns the next wait: between half and all of the current step
// (full jitter over the upper half), then doubles the step up to the cap.
func (b *Backoff) Next() time.Duration {
	d := b.cur
	b.cur = min(b.cur*2, b.max)
	return d/2 + time.Duration(rand.Int64N(int64(d/2)+1))
}

// Reset starts the waits from the first again.
func (b *Backoff) Reset() { b.cur = b.first }

// Sleep waits d, or less when ctx ends first, and then returns ctx's
// error.
func Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
