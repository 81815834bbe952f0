package jobs

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// rec is a test record: ended is set when its job's work returns.
type rec struct {
	name  string
	ended atomic.Bool
}

func (r *rec) Ended() bool { return r.ended.Load() }

// job makes a job whose work waits for release (nil: returns at once),
// reports its context on ctxs, and keeps itself when keep says so.
func job(name string, async, keep bool, release chan struct{}, ctxs chan context.Context) func() (Job[*rec], error) {
	return func() (Job[*rec], error) {
		r := &rec{name: name}
		return Job[*rec]{Record: r, Async: async, Work: func(ctx context.Context) bool {
			defer r.ended.Store(true)
			if ctxs != nil {
				ctxs <- ctx
			}
			if release != nil {
				<-release
			}
			return keep
		}}, nil
	}
}

func names(rs []*rec) []string {
	var out []string
	for _, r := range rs {
		out = append(out, r.name)
	}
	return out
}

func TestStart(t *testing.T) {
	for _, tc := range []struct {
		name  string
		async bool
		keep  bool
		kept  bool
	}{
		{"async job kept at once", true, false, true},
		{"sync job kept", false, true, true},
		{"sync job not kept", false, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := New[*rec]()
			got, err := r.Start(job("a", tc.async, tc.keep, nil, nil))
			require.NoError(t, err)
			assert.Equal(t, "a", got.name)
			if tc.kept {
				assert.Eventually(t, func() bool { return len(r.Records()) == 1 }, 5*time.Second, time.Millisecond)
			} else {
				assert.Empty(t, r.Records())
			}
		})
	}
}

func TestPrepareErrorStartsNothing(t *testing.T) {
	r := New[*rec]()
	bad := errors.New("unknown command")
	_, err := r.Start(func() (Job[*rec], error) { return Job[*rec]{}, bad })
	assert.ErrorIs(t, err, bad)
	assert.Empty(t, r.Records())
}

func TestOneJobAtATime(t *testing.T) {
	r := New[*rec]()
	release := make(chan struct{})
	first, err := r.Start(job("first", true, true, release, nil))
	require.NoError(t, err)
	running, ok := r.Running()
	require.True(t, ok)
	assert.Same(t, first, running)

	prepared := false
	got, err := r.Start(func() (Job[*rec], error) { prepared = true; return job("second", true, true, nil, nil)() })
	assert.ErrorIs(t, err, ErrBusy)
	assert.Same(t, first, got, "ErrBusy comes with the running job's record")
	assert.False(t, prepared, "a busy runner prepares nothing")

	close(release)
	require.Eventually(t, func() bool { _, ok := r.Running(); return !ok }, 5*time.Second, time.Millisecond)
	_, err = r.Start(job("third", false, true, nil, nil))
	require.NoError(t, err)
	assert.Equal(t, []string{"first", "third"}, names(r.Records()), "oldest first")
	found, ok := r.Find(func(x *rec) bool { return x.name == "third" })
	assert.True(t, ok)
	assert.Equal(t, "third", found.name)
	_, ok = r.Find(func(x *rec) bool { return x.name == "second" })
	assert.False(t, ok)
}

// A job that works inside Start holds off the next Start until it ends.
func TestSyncJobHoldsOffOtherStarts(t *testing.T) {
	r := New[*rec]()
	release := make(chan struct{})
	ctxs := make(chan context.Context, 1)
	go r.Start(job("sync", false, true, release, ctxs))
	<-ctxs
	second := make(chan error, 1)
	go func() { _, err := r.Start(job("next", false, true, nil, nil)); second <- err }()
	select {
	case <-second:
		t.Fatal("a second job started while a job worked inside Start")
	case <-time.After(200 * time.Millisecond):
	}
	close(release)
	select {
	case err := <-second:
		assert.NoError(t, err)
	case <-time.After(5 * time.Second):
		t.Fatal("the second job never started")
	}
	assert.Equal(t, []string{"sync", "next"}, names(r.Records()))
}

func TestResetCancelsAndForgets(t *testing.T) {
	r := New[*rec]()
	ctxs := make(chan context.Context, 1)
	release := make(chan struct{})
	defer close(release)
	_, err := r.Start(job("long", true, true, release, ctxs))
	require.NoError(t, err)
	ctx := <-ctxs
	r.Reset()
	assert.ErrorIs(t, ctx.Err(), context.Canceled, "the running job's context ends")
	assert.Empty(t, r.Records())
	_, ok := r.Running()
	assert.False(t, ok)

	// A fresh life: new jobs run with a live context.
	_, err = r.Start(job("after", false, true, nil, ctxs))
	require.NoError(t, err)
	assert.NoError(t, (<-ctxs).Err())
}

func TestCloseCancelsForGood(t *testing.T) {
	r := New[*rec]()
	r.Close()
	ctxs := make(chan context.Context, 1)
	_, err := r.Start(job("late", false, true, nil, ctxs))
	require.NoError(t, err)
	assert.ErrorIs(t, (<-ctxs).Err(), context.Canceled)
}
