// Package jobs runs jobs one at a time and keeps a record of every one,
// oldest first, as an agent does with the commands it is sent: a second
// job is refused while one runs (ErrBusy), a job runs in the request that
// starts it or in its own goroutine, and Reset ends the running job's
// context and forgets the history, as a reboot would. What a record holds
// and how it is shown is the caller's: a Runner only asks a record
// whether its job has ended.
package jobs

import (
	"context"
	"errors"
	"sync"
)

// ErrBusy is Start's answer while a job runs.
var ErrBusy = errors.New("a job is running")

// Record is the caller's record of one job.
type Record interface {
	// Ended reports whether the job has ended.
	Ended() bool
}

// Runner runs one job at a time and keeps the records of its jobs.
type Runner[R Record] struct {
	startMu sync.Mutex // held across Start; a job run in the request keeps it while it works

	mu      sync.Mutex
	records []R
	ctx     context.Context // cancelled by Reset and Close: ends the running job
	cancel  context.CancelFunc
}

// New returns a Runner with no jobs.
func New[R Record]() *Runner[R] {
	ctx, cancel := context.WithCancel(context.Background())
	return &Runner[R]{ctx: ctx, cancel: cancel}
}

// Job is a job to start: its record and its work.
type Job[R Record] struct {
	Record R
	// Async jobs are kept at once and work in their own goroutine; the
	// others work before Start returns.
	Async bool
	// Work does the job with a context that Reset and Close cancel. A job
	// that is not async is kept only when Work returns true.
	Work func(ctx context.Context) (keep bool)
}

// Start starts one job, never two at once. While a job runs it returns
// ErrBusy and that job's record. Otherwise prepare runs, with other starts
// held off, and returns the job to start, or an error Start returns as it
// is (nothing is kept or run then).
func (r *Runner[R]) Start(prepare func() (Job[R], error)) (R, error) {
	r.startMu.Lock()
	defer r.startMu.Unlock()
	if running, ok := r.Running(); ok {
		return running, ErrBusy
	}
	job, err := prepare()
	if err != nil {
		var none R
		return none, err
	}
	r.mu.Lock()
	ctx := r.ctx
	if job.Async {
		r.records = append(r.records, job.Record)
	}
	r.mu.Unlock()
	if job.Async {
		go job.Work(ctx)
	} else if job.Work(ctx) {
		r.mu.Lock()
		r.records = append(r.records, job.Record)
		r.mu.Unlock()
	}
	return job.Record, nil
}

// Records returns the records kept, oldest first.
func (r *Runner[R]) Records() []R {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]R(nil), r.records...)
}

// Find returns the oldest record match accepts.
func (r *Runner[R]) Find(match func(R) bool) (R, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, rec := range r.records {
		if match(rec) {
			return rec, true
		}
	}
	var none R
	return none, false
}

// Running returns the record of the job that runs, if one does (only the
// newest can: jobs run one at a time).
func (r *Runner[R]) Running() (R, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if n := len(r.records); n > 0 && !r.records[n-1].Ended() {
		return r.records[n-1], true
	}
	var none R
	return none, false
}

// Reset cancels the running job's context and forgets every record: the
// Runner is as new. It waits for a job working inside Start to return.
func (r *Runner[R]) Reset() {
	r.startMu.Lock()
	defer r.startMu.Unlock()
	r.mu.Lock()
	defer r.mu.Unlock()
	r.cancel()
	r.ctx, r.cancel = context.WithCancel(context.Background())
	r.records = nil
}

// Close cancels the running job's context for good.
func (r *Runner[R]) Close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.cancel()
}
