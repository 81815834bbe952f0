package timesync

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/beevik/ntp"
)

// Result is a checked answer from an NTP server.
type Result struct {
	Server  string
	Offset  time.Duration // add to the local clock to get the server's
	RTT     time.Duration
	Stratum uint8
}

type options struct {
	timeout  time.Duration
	attempts int
	pause    time.Duration
}

// Option tunes Query.
type Option func(*options)

// WithTimeout bounds each attempt (default 5 s).
func WithTimeout(d time.Duration) Option { return func(o *options) { o.timeout = d } }

// WithAttempts sets how many times the server is asked before Query
// gives up (default 3), with pause between attempts (default 1 s).
func WithAttempts(n int, pause time.Duration) Option {
	return func(o *options) { o.attempts, o.pause = max(n, 1), pause }
}

// Query asks server (a host name or address, optionally with :port) for
// the time and checks the answer.
func Query(ctx context.Context, server string, opts ...Option) (Result, error) {
	o := options{timeout: 5 * time.Second, attempts: 3, pause: time.Second}
	for _, f := range opts {
		f(&o)
	}
	var last error
	for i := 0; i < o.attempts; i++ {
		if i > 0 {
			t := time.NewTimer(o.pause)
			select {
			case <-ctx.Done():
				t.Stop()
				return Result{}, ctx.Err()
			case <-t.C:
			}
		}
		res, err := queryOnce(ctx, server, o.timeout)
		if err == nil {
			return res, nil
		}
		if ctx.Err() != nil {
			return Result{}, ctx.Err()
		}
		last = err
	}
	return Result{}, fmt.Errorf("NTP server %s: %w", server, last)
}

func queryOnce(ctx context.Context, server string, timeout time.Duration) (Result, error) {
	type answer struct {
		r   *ntp.Response
		err error
	}
	// beevik/ntp has no context: the attempt is bounded by its timeout,
	// and a cancelled ctx stops waiting for it.
	c := make(chan answer, 1)
	go func() {
		r, err := ntp.QueryWithOptions(server, ntp.QueryOptions{Timeout: timeout})
		c <- answer{r, err}
	}()
	select {
	case <-ctx.Done():
		return Result{}, ctx.Err()
	case a := <-c:
		if a.err != nil {
			return Result{}, a.err
		}
		if err := a.r.Validate(); err != nil {
			return Result{}, fmt.Errorf("%w: %w", ErrBadAnswer, err)
		}
		return Result{Server: server, Offset: a.r.ClockOffset, RTT: a.r.RTT, Stratum: a.r.Stratum}, nil
	}
}

// ErrBadAnswer marks an answer that arrived but must not be trusted.
var ErrBadAnswer = errors.New("NTP answer refused")

// StepError is a clock that could not be set from a good answer.
type StepError struct {
	Result Result
	Err    error
}

func (e *StepError) Error() string {
	return fmt.Sprintf("setting the clock by %v from %s: %v", e.Result.Offset, e.Result.Server, e.Err)
}

func (e *StepError) Unwrap() error { return e.Err }

// Sync reads the time from server (Query) and, when step is not nil,
// steps the clock by the offset (Step, or a test's). A nil step only
// reads the offset: an agent on a host must not set the host's clock.
// A server that gives no trustworthy answer leaves the clock alone.
func Sync(ctx context.Context, server string, step func(time.Duration) error, opts ...Option) (Result, error) {
	res, err := Query(ctx, server, opts...)
	if err != nil || step == nil {
		return res, err
	}
	if err := step(res.Offset); err != nil {
		return res, &StepError{Result: res, Err: err}
	}
	return res, nil
}
