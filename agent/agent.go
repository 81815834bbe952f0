package agent

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/goipa/goipa/backoff"
	"github.com/goipa/goipa/logring"
	"github.com/goipa/goipa/netcfg"
)

// IPAVersion is the agent_version goipa reports: the IPA release whose
// behaviour it matches. Ironic stores it and gates features on it.
const IPAVersion = "9.4.2"

// Version is goipa's own version (set with -ldflags at build time).
var Version = "dev"

// Hardware is what the agent needs to know about the machine.
type Hardware interface {
	// MACs lists the NICs' MAC addresses for lookup, the boot NIC first.
	MACs(ctx context.Context) ([]string, error)
	// Inventory returns the hardware inventory in Ironic's schema.
	Inventory(ctx context.Context) (any, error)
	// InspectionData returns the inspection callback body for the given
	// collectors (spec 6.3), without the agent's logs.
	InspectionData(ctx context.Context, collectors []string) (map[string]any, error)
}

// Option configures an Agent.
type Option func(*Agent)

// WithLogger sets the agent's logger.
func WithLogger(l *slog.Logger) Option { return func(a *Agent) { a.log = l } }

// WithHardware sets the inventory provider.
func WithHardware(h Hardware) Option { return func(a *Agent) { a.hw = h } }

// WithLogBuffer gives log.collect_system_logs the agent's own log.
func WithLogBuffer(b *logring.Buffer) Option { return func(a *Agent) { a.logs = b } }

// WithRealPower makes power commands call reboot(2). Only `goipa init`
// (PID 1 of the ramdisk) and goipa-power=system set it.
func WithRealPower(real bool) Option { return func(a *Agent) { a.realPower = real } }

// WithListener makes the API serve on l instead of listening itself.
func WithListener(l net.Listener) Option { return func(a *Agent) { a.listener = l } }

// Agent is one running goipa agent.
type Agent struct {
	cfg       *Config
	log       *slog.Logger
	hw        Hardware
	logs      *logring.Buffer
	realPower bool
	// stepClock steps the system clock (timesync.Step unless a test sets it).
	stepClock func(time.Duration) error
	listener  net.Listener
	deploy    *deployer
	metrics   *metrics
	cmds      *Manager
	steps     *Steps
	ironic    *ironicClient
	startedAt time.Time

	callbackRetry callbackRetry // the inspection callback's retries (IPA's, tests shorten them)
	findService   serviceFinder // mDNS; nil: discovery.Find
	logLevel      *slog.LevelVar

	force chan struct{} // a forced heartbeat is wanted
	reset chan struct{} // Ironic ended the operation, or a simulated reboot

	mu               sync.Mutex
	phase            string
	apiBase          string
	apiVersion       microversion
	node             map[string]any
	lookupConfig     map[string]any
	token            string
	getLatched       bool // a GET once carried a token: GETs need one from now on
	hbTimeout        time.Duration
	callbackURL      string
	verifyCA         string // PEM of the auto-TLS certificate, sent as agent_verify_ca
	serverStop       context.CancelFunc
	resetAfterAsync  bool
	lockedDown       bool
	onRescued        func(passwordHash string) // the ramdisk's rescue login (WithRescue)
	loggedConfigKeys map[string]bool           // lookup config keys already logged as ignored
}

// New builds an agent and registers the standard extensions. Packages
// that implement steps or commands register them before Run.
func New(cfg *Config, opts ...Option) (*Agent, error) {
	a := &Agent{
		cfg:       cfg,
		log:       slog.Default(),
		metrics:   newMetrics(),
		steps:     NewSteps(),
		startedAt: time.Now(),
		force:     make(chan struct{}, 1),
		reset:     make(chan struct{}, 1),
		phase:     "starting",
		token:     cfg.AgentToken,
		hbTimeout: 300 * time.Second,

		callbackRetry: ipaCallbackRetry,
	}
	for _, o := range opts {
		o(a)
	}
	if a.hw == nil {
		return nil, errors.New("agent: no hardware provider")
	}
	ic, err := newIronicClient(cfg)
	if err != nil {
		return nil, err
	}
	a.ironic = ic
	if m, ok := a.hw.(*machine); ok {
		// IPA skips BMC detection when lookup says so (Ironic sends it
		// for redfish management, where the BMC address is known).
		m.skipBMC = func() bool {
			skip, _ := a.LookupConfig()["agent_skip_bmc_detect"].(bool)
			return skip
		}
	}
	a.cmds = NewManager(a.log, a.metrics, a.asyncDone)
	for _, k := range []StepKind{Clean, Deploy, Service} {
		a.cmds.Register(&stepExtension{kind: k, steps: a.steps, cacheNode: a.cacheNode})
	}
	a.registerStandard()
	a.registerDeploy()
	a.registerBootc()
	a.registerErase()
	a.registerFirmwareSteps()
	a.registerBurnin()
	a.registerRescue()
	a.registerRAID()
	return a, nil
}

// Config returns the agent's configuration.
func (a *Agent) Config() *Config { return a.cfg }

// Steps is the registry clean, deploy and service steps are added to.
func (a *Agent) Steps() *Steps { return a.steps }

// Register adds an extension's commands.
func (a *Agent) Register(e Extension) { a.cmds.Register(e) }

// Metrics is where other packages add their collectors.
func (a *Agent) Metrics() prometheus.Registerer { return a.metrics.Registry() }

// Node returns the node dict last seen (lookup or a step command).
func (a *Agent) Node() map[string]any {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.node
}

// LookupConfig returns the `config` object of the last lookup: the
// image-format, md5 and TLS overrides Ironic sends.
func (a *Agent) LookupConfig() map[string]any {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.lookupConfig
}

func (a *Agent) cacheNode(n map[string]any) {
	a.mu.Lock()
	a.node = n
	a.mu.Unlock()
}

func (a *Agent) setPhase(p string) {
	a.mu.Lock()
	changed := a.phase != p
	a.phase = p
	a.mu.Unlock()
	if changed {
		a.log.Info("agent phase", "phase", p)
	}
}

// Handler returns the agent's HTTP API, for tests and embedding.
func (a *Agent) Handler() http.Handler {
	return newAPIServer(a.log, a.cmds, a, a.status, a.metrics)
}

// checkToken implements the token rules: POST always needs the agent's
// token once it has one; GETs are open until one arrives with a token
// (Ironic 21.4 sends none on GET; newer Ironic always does), then need it.
func (a *Agent) checkToken(token string, present bool, isGet bool) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if isGet {
		if !present && !a.getLatched {
			return true
		}
		if a.token != "" && tokenEqual(token, a.token) {
			a.getLatched = true
			return true
		}
		return false
	}
	if a.token == "" {
		if a.cfg.TokenRequired || a.lookupConfig["agent_token_required"] == true {
			// As IPA with agent_token_required: no command until Ironic
			// has handed a token over.
			return false
		}
		return token == "" // nothing handed out yet: only a token-less call matches
	}
	return tokenEqual(token, a.token)
}

func (a *Agent) status() map[string]any {
	a.mu.Lock()
	phase := a.phase
	a.mu.Unlock()
	st := map[string]any{
		"started_at":    float64(a.startedAt.UnixNano()) / 1e9,
		"version":       IPAVersion,
		"goipa_version": Version,
		"phase":         phase,
		"command":       nil,
	}
	if r := a.cmds.Running(); r != nil {
		st["command"] = map[string]any{"id": r.ID, "name": r.Command, "running_for": time.Since(r.Started).Seconds(), "result": r}
	}
	return st
}

// asyncDone runs after each async command: force a heartbeat so Ironic
// looks at the result now, or start over after a simulated reboot.
func (a *Agent) asyncDone(*Result) {
	a.mu.Lock()
	resetNow := a.resetAfterAsync
	a.resetAfterAsync = false
	a.mu.Unlock()
	if resetNow {
		select {
		case a.reset <- struct{}{}:
		default:
		}
		return
	}
	select {
	case a.force <- struct{}{}:
	default:
	}
}

// Run runs the agent until ctx ends: (inspection,) lookup, the API and
// heartbeats, starting over whenever Ironic ends the operation.
func (a *Agent) Run(ctx context.Context) error {
	defer a.cmds.Close()
	a.syncClock(ctx)
	a.logIgnoredParams()
	if d := a.cfg.HardwareInitDelay; d > 0 {
		a.log.Info("waiting before looking at the hardware", "delay", d)
		if err := sleepCtx(ctx, d); err != nil {
			return nil
		}
	}
	if a.cfg.Standalone {
		a.setPhase("standalone")
		a.log.Warn("standalone: no lookup, no heartbeat")
		return a.serve(ctx, nil)
	}

	if err := a.resolveMDNS(ctx); err != nil {
		return nil // ctx ended
	}
	nodeUUID := ""
	if a.cfg.InspectionCallbackURL != "" {
		a.setPhase("inspecting")
		nodeUUID = a.inspect(ctx)
	}
	if len(a.cfg.APIURLs) == 0 {
		a.setPhase("idle")
		a.log.Warn("no ipa-api-url: inspection done, serving the API without lookup")
		return a.serve(ctx, nil)
	}
	if err := a.discover(ctx); err != nil {
		return nil // ctx ended
	}

	serverErr := make(chan error, 1)
	started := false
	tokenless := backoff.New(5*time.Second, 60*time.Second)
	for ctx.Err() == nil {
		a.setPhase("lookup")
		if err := a.lookupLoop(ctx, nodeUUID); err != nil {
			return nil
		}
		nodeUUID = ""
		if !started {
			tlsCfg, err := a.prepareCallback(ctx)
			if err != nil {
				return nil
			}
			go func() { serverErr <- a.serve(ctx, tlsCfg) }()
			started = true
		}
		a.setPhase("ready")
		err := a.heartbeatLoop(ctx, serverErr)
		if errors.Is(err, errStartOver) {
			a.mu.Lock()
			hadToken := a.token != ""
			a.mu.Unlock()
			a.startOver()
			if hadToken {
				tokenless.Reset()
				continue
			}
			// Looked up without a token (Ironic handed it out already, to a
			// previous life of this agent): heartbeats are refused until the
			// operation restarts. Without a wait this would be a hot loop.
			wait := tokenless.Next()
			a.log.Warn("no agent token: waiting before looking the node up again", "wait", wait.Round(time.Millisecond))
			if sleepCtx(ctx, wait) != nil {
				return nil
			}
			continue
		}
		return err
	}
	return nil
}

var errStartOver = errors.New("start over")

// startOver makes the agent what it is after a reboot: no node, no token
// (but the kernel's ipa-agent-token), no command history.
func (a *Agent) startOver() {
	a.log.Info("starting over as after a reboot: forgetting node, token and commands")
	a.cmds.Reset()
	a.mu.Lock()
	a.node, a.lookupConfig, a.token, a.getLatched = nil, nil, a.cfg.AgentToken, false
	a.mu.Unlock()
	select { // a stale force belongs to the old operation
	case <-a.force:
	default:
	}
}

// discover finds Ironic's API version, trying each URL until one answers.
func (a *Agent) discover(ctx context.Context) error {
	if a.cfg.IronicAPIVersion != "" {
		v, _ := parseMicroversion(a.cfg.IronicAPIVersion)
		a.mu.Lock()
		a.apiBase, a.apiVersion = a.cfg.APIURLs[0], v
		a.mu.Unlock()
		return nil
	}
	bo := backoff.New(a.cfg.LookupInterval, 60*time.Second)
	for attempt := 1; ; attempt++ {
		for _, base := range a.cfg.APIURLs {
			v, err := a.ironic.discoverVersion(ctx, base)
			if err == nil {
				a.log.Info("Ironic API found", "url", base, "max_version", v.String())
				a.mu.Lock()
				a.apiBase, a.apiVersion = base, v
				a.mu.Unlock()
				return nil
			}
			a.log.Warn("Ironic API version discovery failed", "url", base, "attempt", attempt, "error", err)
		}
		if err := sleepCtx(ctx, bo.Next()); err != nil {
			return err
		}
	}
}

// lookupLoop looks the node up until Ironic answers, with capped
// exponential backoff; it never gives up (decisions: a dead agent helps
// nobody), but logs louder after ipa-lookup-timeout.
func (a *Agent) lookupLoop(ctx context.Context, nodeUUID string) error {
	bo := backoff.New(a.cfg.LookupInterval, 60*time.Second)
	start := time.Now()
	conflicts := 0
	for attempt := 1; ; attempt++ {
		macs, err := a.hw.MACs(ctx)
		if err == nil && len(macs) == 0 && nodeUUID == "" {
			err = errors.New("no network interface with a MAC address")
		}
		var res *LookupResult
		if err == nil {
			a.mu.Lock()
			base, v := a.apiBase, a.apiVersion
			a.mu.Unlock()
			res, err = a.ironic.lookup(ctx, base, v, macs, nodeUUID)
			if err != nil {
				// Try the other URLs; keep the first that works (spec 2.2, [M]).
				for _, other := range a.cfg.APIURLs {
					if other == base {
						continue
					}
					if r2, err2 := a.ironic.lookup(ctx, other, v, macs, nodeUUID); err2 == nil {
						res, err = r2, nil
						a.mu.Lock()
						a.apiBase = other
						a.mu.Unlock()
						break
					}
				}
			}
		}
		if err == nil {
			a.metrics.lookups.WithLabelValues("ok").Inc()
			a.applyLookup(res)
			return nil
		}
		a.metrics.lookups.WithLabelValues("error").Inc()
		if ctx.Err() != nil {
			return ctx.Err()
		}
		var wait time.Duration
		var ie *IronicError
		if errors.As(err, &ie) && ie.Status == http.StatusConflict && conflicts < lockedRetries {
			// Ironic still holds the node's lock (right after inspection it
			// is finishing the inspection): the lock goes within a second
			// or two, so ask again soon rather than back off as for an
			// Ironic that is down. IPA's own first waits are ~1 s too.
			conflicts++
			wait = lockedRetryWait()
		} else {
			wait = bo.Next()
		}
		level := slog.LevelInfo
		if time.Since(start) > a.cfg.LookupTimeout {
			level = slog.LevelError
		}
		a.log.Log(ctx, level, "lookup failed, retrying", "attempt", attempt, "macs", macs, "error", err, "retry_in", wait.Round(time.Millisecond))
		if err := sleepCtx(ctx, wait); err != nil {
			return err
		}
	}
}

// maxHeartbeatTimeout bounds the heartbeat_timeout a lookup may set (a
// week; Ironic's default is 300 s).
const maxHeartbeatTimeout = 7 * 24 * time.Hour

// lockedRetries is how many lookups answered 409 (node locked) are
// retried after lockedRetryWait before the usual backoff takes over: a
// lock held longer than that is not the short one after inspection.
const lockedRetries = 10

// lockedRetryWait is about a second, jittered so a rack of agents
// inspected together does not ask in step.
var lockedRetryWait = func() time.Duration {
	return 750*time.Millisecond + time.Duration(rand.Int64N(int64(500*time.Millisecond)))
}

// applyLookup adopts what Ironic said (spec 2.3).
func (a *Agent) applyLookup(res *LookupResult) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.node = res.Node
	a.lookupConfig = res.Config
	a.applyLookupConfig(res.Config)
	if t, ok := res.Config["heartbeat_timeout"].(float64); ok && t > 0 {
		// Out of range, the interval would overflow to a negative one
		// or round to nothing: either is a heartbeat storm.
		if t >= 1 && t <= maxHeartbeatTimeout.Seconds() {
			a.hbTimeout = time.Duration(t * float64(time.Second))
		} else {
			a.log.Warn("lookup: heartbeat_timeout out of range, keeping the current one", "heartbeat_timeout", t, "current", a.hbTimeout)
		}
	}
	switch tok, _ := res.Config["agent_token"].(string); {
	case len(tok) >= 32:
		a.token = tok
	case tok == "******":
		// Already handed out: keep the one we have (ipa-agent-token).
		if a.token == "" {
			a.log.Error("Ironic handed the agent token out already and this agent has none: heartbeats will be refused until the operation is restarted")
		}
	default:
		if req, _ := res.Config["agent_token_required"].(bool); req && a.token == "" {
			a.log.Error("Ironic requires an agent token but sent none")
		}
	}
	a.log.Info("lookup succeeded", "node", res.NodeUUID(), "heartbeat_timeout", a.hbTimeout, "has_token", a.token != "")
}

// advertiseHost finds the address Ironic calls back: the parameter, the
// named NIC's address, or the source of the route to Ironic.
func (a *Agent) advertiseHost(ctx context.Context) (string, error) {
	if a.cfg.AdvertiseHost != "" {
		return a.cfg.AdvertiseHost, nil
	}
	return netcfg.AdvertiseAddr(ctx, netcfg.Advertise{Interface: a.cfg.NetworkInterface, URLs: a.cfg.APIURLs,
		Attempts: a.cfg.IPLookupAttempts, Interval: a.cfg.IPLookupTimeout, Log: a.log})
}
