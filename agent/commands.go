package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/goipa/goipa/jobs"
	"github.com/google/uuid"
)

// Command statuses, exactly as IPA spells them.
const (
	StatusRunning         = "RUNNING"
	StatusSucceeded       = "SUCCEEDED"
	StatusFailed          = "FAILED"
	StatusVersionMismatch = "CLEAN_VERSION_MISMATCH"
)

// Command is one `<extension>.<name>` the agent runs for Ironic.
type Command struct {
	// Async commands answer RUNNING at once and finish in the background;
	// sync ones run inside the request.
	Async bool
	Run   func(ctx context.Context, call *Call) (any, error)
	// Validate, when set, checks the parameters inside the request, as
	// IPA's command validators do: an invalid-content error it returns
	// answers the POST with 400 and records no result.
	Validate func(params map[string]any) error
}

// invalidContent reports whether err is one of IPA's InvalidContentError
// family, which IPA raises to the caller (HTTP 400) instead of recording
// a failed command. Ironic branches on that status: a 400 to a hashed
// finalize_rescue makes it retry with the plaintext password.
func invalidContent(err error) (*Error, bool) {
	var ae *Error
	if !errors.As(err, &ae) {
		return nil, false
	}
	switch ae.Type {
	case "InvalidContentError", "InvalidCommandError", "InvalidCommandParamsError":
		return ae, true
	}
	return nil, false
}

// Extension groups commands under a name, as IPA's extensions do.
type Extension interface {
	Name() string
	Commands() map[string]Command
}

// Call is what a running command sees of its invocation.
type Call struct {
	Params map[string]any
	Log    *slog.Logger
	result *Result
}

// SetProgress publishes v (any JSON value) as the running command's
// `progress`, read by GET /v1/commands, /v1/status and the log.
func (c *Call) SetProgress(v any) {
	if c.result == nil {
		return
	}
	c.result.mu.Lock()
	c.result.progress = v
	c.result.mu.Unlock()
}

// Result is one executed command, serialized as IPA's command result.
type Result struct {
	ID      string
	Name    string // short name, or the dotted one for a sync command that failed
	Command string // always <extension>.<name>, for logs and metrics
	Started time.Time

	mu       sync.Mutex
	status   string
	err      *Error
	value    any
	progress any
	ended    time.Time
	done     chan struct{}
}

// Ended reports whether the command has ended (jobs.Record).
func (r *Result) Ended() bool { return r.Status() != StatusRunning }

// Status returns the current command status.
func (r *Result) Status() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.status
}

// Wait blocks until the command has finished or ctx ends.
func (r *Result) Wait(ctx context.Context) error {
	select {
	case <-r.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

type resultJSON struct {
	ID       string `json:"id"`
	Name     string `json:"command_name"`
	Status   string `json:"command_status"`
	Error    *Error `json:"command_error"`
	Result   any    `json:"command_result"`
	Progress any    `json:"progress,omitempty"`
}

// MarshalJSON renders IPA's result object; `progress` is goipa's addition
// (Ironic ignores unknown keys).
func (r *Result) MarshalJSON() ([]byte, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return json.Marshal(resultJSON{ID: r.ID, Name: r.Name, Status: r.status, Error: r.err, Result: r.value, Progress: r.progress})
}

func (r *Result) finish(status string, value any, err *Error) {
	r.mu.Lock()
	r.status, r.value, r.err, r.ended = status, value, err, time.Now()
	r.mu.Unlock()
	close(r.done)
}

// Manager runs commands one at a time and keeps every result, oldest
// first, as IPA does: Ironic reads the last entry to know where a step is.
type Manager struct {
	log     *slog.Logger
	metrics *metrics
	// onAsyncDone is called after each async command ends (the agent
	// forces a heartbeat then: Ironic only looks on heartbeats).
	onAsyncDone func(*Result)

	jobs *jobs.Runner[*Result] // one at a time; Reset (a "reboot") ends what runs

	mu   sync.Mutex
	exts map[string]map[string]Command
}

// NewManager returns a Manager with no extensions.
func NewManager(log *slog.Logger, m *metrics, onAsyncDone func(*Result)) *Manager {
	return &Manager{log: log, metrics: m, onAsyncDone: onAsyncDone, jobs: jobs.New[*Result](), exts: map[string]map[string]Command{}}
}

// Register adds an extension's commands. Several packages may add
// commands to one extension (standby holds power and image commands);
// registering one command twice panics: a programming error any test finds.
func (m *Manager) Register(e Extension) {
	m.mu.Lock()
	defer m.mu.Unlock()
	cmds := m.exts[e.Name()]
	if cmds == nil {
		cmds = map[string]Command{}
		m.exts[e.Name()] = cmds
	}
	for name, c := range e.Commands() {
		if _, dup := cmds[name]; dup {
			panic("agent: command registered twice: " + e.Name() + "." + name)
		}
		cmds[name] = c
	}
}

// Commands is an Extension made of a name and a command table.
type Commands struct {
	Ext  string
	Cmds map[string]Command
}

// Name implements Extension.
func (c Commands) Name() string { return c.Ext }

// Commands implements Extension.
func (c Commands) Commands() map[string]Command { return c.Cmds }

// Results returns a snapshot of all results, oldest first.
func (m *Manager) Results() []*Result { return m.jobs.Records() }

// Get returns one result by id.
func (m *Manager) Get(id string) (*Result, error) {
	if r, ok := m.jobs.Find(func(r *Result) bool { return r.ID == id }); ok {
		return r, nil
	}
	return nil, errNotFound(fmt.Sprintf("Command Result with id %s not found.", id))
}

// Running returns the running command, if any.
func (m *Manager) Running() *Result {
	r, _ := m.jobs.Running()
	return r
}

// Reset forgets every result and cancels what runs: what the agent does
// when a simulated reboot makes it a fresh agent.
func (m *Manager) Reset() { m.jobs.Reset() }

// Close cancels running commands for good.
func (m *Manager) Close() { m.jobs.Close() }

// Execute runs `<ext>.<cmd>` with params. It returns the result (RUNNING for
// an async command) or an *Error for a request IPA would refuse (busy,
// unknown extension or command, parameters a validator or a sync command
// finds invalid). A command that fails otherwise returns a FAILED result,
// not an error.
func (m *Manager) Execute(name string, params map[string]any) (*Result, error) {
	extName, cmdName, ok := strings.Cut(name, ".")
	if !ok || extName == "" || cmdName == "" {
		return nil, errInvalidCommand("Command name must be of the form <extension>.<name>")
	}
	if params == nil {
		params = map[string]any{}
	}
	var refused *Error // a sync command's invalid parameters: answered, not kept
	r, err := m.jobs.Start(func() (jobs.Job[*Result], error) {
		m.mu.Lock()
		cmds, ok := m.exts[extName]
		m.mu.Unlock()
		if !ok {
			return jobs.Job[*Result]{}, errNotFound(fmt.Sprintf("Extension with id %s not found.", extName))
		}
		cmd, ok := cmds[cmdName]
		if !ok {
			return jobs.Job[*Result]{}, errInvalidCommand("Unknown command: " + name)
		}
		if cmd.Validate != nil {
			if err := cmd.Validate(params); err != nil {
				if ae, ok := invalidContent(err); ok {
					m.log.Warn("command refused", "command", name, "error", ae.Error())
					return jobs.Job[*Result]{}, ae
				}
				return jobs.Job[*Result]{}, asAgentError(err)
			}
		}
		r := &Result{ID: uuid.NewString(), Name: cmdName, Command: name, Started: time.Now(), status: StatusRunning, done: make(chan struct{})}
		call := &Call{Params: params, Log: m.log.With("command", name, "command_id", r.ID), result: r}
		m.metrics.commandStarted(name)
		if cmd.Async {
			call.Log.Info("command started")
		}
		return jobs.Job[*Result]{Record: r, Async: cmd.Async, Work: func(ctx context.Context) bool {
			ae := m.run(ctx, cmd, call, r, cmd.Async)
			if cmd.Async {
				if m.onAsyncDone != nil {
					m.onAsyncDone(r)
				}
				return true
			}
			if ae != nil {
				refused, _ = invalidContent(ae)
			}
			return refused == nil
		}}, nil
	})
	switch {
	case errors.Is(err, jobs.ErrBusy):
		return nil, errBusy(r.Name)
	case err != nil:
		return nil, err
	case refused != nil:
		return nil, refused
	}
	return r, nil
}

// run executes one command, turning its value, error or panic into the
// result IPA would report.
func (m *Manager) run(ctx context.Context, cmd Command, call *Call, r *Result, async bool) *Error {
	var (
		value any
		err   error
	)
	func() {
		defer func() {
			if p := recover(); p != nil {
				call.Log.Error("command panicked", "panic", p, "stack", string(debug.Stack()))
				err = errExecution(fmt.Sprintf("command %s panicked: %v", r.Command, p))
			}
		}()
		value, err = cmd.Run(ctx, call)
	}()
	status := StatusSucceeded
	var aerr *Error
	if err != nil {
		aerr = asAgentError(err)
		status = StatusFailed
		if aerr.Type == "VersionMismatch" {
			status = StatusVersionMismatch
		}
		if !async {
			r.Name = r.Command // IPA keeps the dotted name only here
		}
		value = nil
		call.Log.Error("command failed", "status", status, "error", aerr.Error(), "duration", time.Since(r.Started).Round(time.Millisecond))
	} else {
		value = wrapValue(value, r.Name, async)
		call.Log.Info("command finished", "status", status, "duration", time.Since(r.Started).Round(time.Millisecond))
	}
	r.finish(status, value, aerr)
	m.metrics.commandEnded(r.Command, status, time.Since(r.Started))
	return aerr
}

// wrapValue applies IPA's rule for plain-string results.
func wrapValue(v any, name string, async bool) any {
	s, ok := v.(string)
	if !ok {
		return v
	}
	if async {
		return map[string]any{"result": name + ": " + s}
	}
	return map[string]any{"result": s}
}

func jsonText(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}
