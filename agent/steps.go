package agent

import (
	"context"
	"fmt"
	"reflect"
	"sort"
	"sync"
)

// StepKind is the kind of step Ironic runs: clean, deploy or service.
type StepKind string

// The step kinds, as Ironic names them in commands and results.
const (
	Clean   StepKind = "clean"
	Deploy  StepKind = "deploy"
	Service StepKind = "service"
)

// HardwareManager is the name steps are grouped under. Ironic regroups
// steps by interface and does not care about the manager's class, but it
// stores and echoes the version dict below; keeping IPA's names keeps
// Ironic's logs and caches familiar to operators.
const (
	HardwareManager        = "GenericHardwareManager"
	hardwareManagerName    = "generic_hardware_manager"
	hardwareManagerVersion = "1.1"
)

// hardwareVersions is what get_*_steps reports and Ironic echoes back as
// clean_version / deploy_version / service_version.
func hardwareVersions() map[string]any {
	return map[string]any{hardwareManagerName: hardwareManagerVersion}
}

// ArgInfo documents one step argument (IPA's argsinfo).
type ArgInfo struct {
	Description string `json:"description"`
	Required    bool   `json:"required"`
}

// StepCall is what a running step sees.
type StepCall struct {
	Kind  StepKind
	Step  map[string]any // the step as Ironic sent it
	Args  map[string]any // step["args"], never nil
	Node  map[string]any // the node dict from the command, never nil
	Ports []any
	*Call
}

// StepFunc runs one step. Its value becomes `<kind>_result`.
type StepFunc func(ctx context.Context, sc *StepCall) (any, error)

// Step is one step the agent offers for one kind.
type Step struct {
	Name            string
	Interface       string // deploy, raid, bios, ...
	Priority        int
	RebootRequested bool
	Abortable       bool // reported as IPA does: clean steps, abortable service steps
	ArgsInfo        map[string]ArgInfo
	Run             StepFunc
}

// Steps is the registry the clean, deploy and service extensions
// dispatch through. Packages that implement steps register them here.
type Steps struct {
	mu    sync.RWMutex
	steps map[StepKind]map[string]Step
}

// NewSteps returns an empty registry.
func NewSteps() *Steps {
	return &Steps{steps: map[StepKind]map[string]Step{}}
}

// Register offers s as a step of kind k. A step registered twice for the
// same kind panics: a programming error any test finds.
func (r *Steps) Register(k StepKind, s Step) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.steps[k] == nil {
		r.steps[k] = map[string]Step{}
	}
	if _, dup := r.steps[k][s.Name]; dup {
		panic(fmt.Sprintf("agent: %s step %s registered twice", k, s.Name))
	}
	r.steps[k][s.Name] = s
}

func (r *Steps) lookup(k StepKind, name string) (Step, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	s, ok := r.steps[k][name]
	return s, ok
}

// list renders the steps of kind k in IPA's shape, sorted by name so the
// answer is stable.
func (r *Steps) list(k StepKind) []map[string]any {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := []map[string]any{}
	for _, s := range r.steps[k] {
		m := map[string]any{
			"step":             s.Name,
			"priority":         s.Priority,
			"interface":        s.Interface,
			"reboot_requested": s.RebootRequested,
		}
		// IPA's clean steps all say whether they can be aborted; of its
		// service steps only the abortable ones do, and deploy steps never.
		if k == Clean || (k == Service && s.Abortable) {
			m["abortable"] = s.Abortable
		}
		if len(s.ArgsInfo) > 0 {
			m["argsinfo"] = s.ArgsInfo
		}
		out = append(out, m)
	}
	sort.Slice(out, func(i, j int) bool { return out[i]["step"].(string) < out[j]["step"].(string) })
	return out
}

// stepExtension is IPA's clean, deploy or service extension.
type stepExtension struct {
	kind  StepKind
	steps *Steps
	// cacheNode keeps the node dict Ironic sent, as IPA's hardware
	// managers cache it for later commands.
	cacheNode func(map[string]any)
}

func (e *stepExtension) Name() string { return string(e.kind) }

func (e *stepExtension) Commands() map[string]Command {
	return map[string]Command{
		"get_" + string(e.kind) + "_steps":    {Run: e.getSteps},
		"execute_" + string(e.kind) + "_step": {Async: true, Run: e.executeStep},
	}
}

func (e *stepExtension) getSteps(ctx context.Context, call *Call) (any, error) {
	if node, ok := call.Params["node"].(map[string]any); ok && e.cacheNode != nil {
		e.cacheNode(node)
	}
	return map[string]any{
		string(e.kind) + "_steps":  map[string]any{HardwareManager: e.steps.list(e.kind)},
		"hardware_manager_version": hardwareVersions(),
	}, nil
}

func (e *stepExtension) executeStep(ctx context.Context, call *Call) (any, error) {
	step, ok := call.Params["step"].(map[string]any)
	if !ok {
		return nil, ErrInvalidParams("%s_step: \"step\" must be an object", e.kind)
	}
	node, _ := call.Params["node"].(map[string]any)
	if node == nil {
		node = map[string]any{}
	} else if e.cacheNode != nil {
		e.cacheNode(node)
	}
	ports, _ := call.Params["ports"].([]any)
	// A version dict that differs from ours means Ironic planned these
	// steps against another agent: it refreshes them on this answer.
	if v, present := call.Params[string(e.kind)+"_version"]; present && v != nil {
		if !sameVersions(v, hardwareVersions()) {
			return nil, errVersionMismatch(hardwareVersions(), v)
		}
	}
	name, _ := step["step"].(string)
	if name == "" {
		return nil, ErrInvalidParams("Malformed %s_step, no \"step\" key: %s", e.kind, jsonText(step))
	}
	s, ok := e.steps.lookup(e.kind, name)
	if !ok {
		return nil, errMethodNotFound(name)
	}
	args, _ := step["args"].(map[string]any)
	if args == nil {
		args = map[string]any{}
	}
	call.Log.Info("running step", "kind", e.kind, "step", name, "interface", step["interface"])
	value, err := s.Run(ctx, &StepCall{Kind: e.kind, Step: step, Args: args, Node: node, Ports: ports, Call: call})
	if err != nil {
		return nil, stepError(e.kind, err)
	}
	return map[string]any{
		string(e.kind) + "_result": value,
		string(e.kind) + "_step":   step,
	}, nil
}

// sameVersions compares Ironic's echoed version dict with ours by value.
func sameVersions(got any, want map[string]any) bool {
	m, ok := got.(map[string]any)
	if !ok {
		return false
	}
	return reflect.DeepEqual(m, want)
}
