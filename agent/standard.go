package agent

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"time"

	"github.com/goipa/goipa/logbundle"
)

// registerStandard adds the commands that need no disk or image.
func (a *Agent) registerStandard() {
	a.cmds.Register(Commands{Ext: "standby", Cmds: map[string]Command{
		"sync":      {Run: a.cmdSync},
		"power_off": {Async: true, Run: func(ctx context.Context, c *Call) (any, error) { return a.power(ctx, c, powerOff) }},
		"run_image": {Async: true, Run: func(ctx context.Context, c *Call) (any, error) { return a.power(ctx, c, powerReboot) }},
	}})
	a.cmds.Register(Commands{Ext: "log", Cmds: map[string]Command{
		"collect_system_logs": {Run: a.cmdCollectLogs},
	}})
	a.cmds.Register(Commands{Ext: "system", Cmds: map[string]Command{
		"lockdown": {Run: a.cmdLockdown},
	}})
	a.cmds.Register(Commands{Ext: "poll", Cmds: map[string]Command{
		"get_hardware_info": {Run: func(ctx context.Context, c *Call) (any, error) { return a.hw.Inventory(ctx) }},
		"set_node_info":     {Run: a.cmdSetNodeInfo},
	}})
}

func (a *Agent) cmdSync(ctx context.Context, c *Call) (any, error) {
	syncFilesystems()
	return nil, nil
}

type powerAction int

const (
	powerOff powerAction = iota
	powerReboot
)

func (p powerAction) String() string {
	if p == powerOff {
		return "power off"
	}
	return "reboot"
}

// power flushes the disks and powers off or reboots. Only the ramdisk's
// init (or goipa-power=system) touches the machine; otherwise the agent
// logs it and behaves as after a reboot: it forgets node, token and
// commands and looks the node up again.
func (a *Agent) power(ctx context.Context, c *Call, act powerAction) (any, error) {
	syncFilesystems()
	if a.realPower || a.cfg.Power == "system" {
		c.Log.Warn("going down", "action", act.String())
		// Give the API a moment to answer RUNNING before the host goes.
		time.Sleep(time.Second)
		if err := systemPower(act); err != nil {
			return nil, fmt.Errorf("%s failed: %w", act, err)
		}
		return nil, nil
	}
	c.Log.Warn("simulated: not touching this host; starting over as if it had rebooted", "action", act.String())
	a.mu.Lock()
	a.resetAfterAsync = true
	a.mu.Unlock()
	return nil, nil
}

// cmdLockdown answers, then stops the API for good (spec 12.15): Ironic
// then polls until the agent is unreachable. In the ramdisk the links go
// down too; on a host they stay up.
func (a *Agent) cmdLockdown(ctx context.Context, c *Call) (any, error) {
	syncFilesystems()
	a.mu.Lock()
	a.lockedDown = true
	stop := a.serverStop
	a.mu.Unlock()
	real := a.realPower || a.cfg.Power == "system"
	go func() {
		time.Sleep(500 * time.Millisecond)
		if stop != nil {
			stop()
		}
		if real {
			linksDown(a.log)
		} else {
			a.log.Warn("simulated lockdown: API stopped, links left up")
		}
	}()
	return nil, nil
}

// cmdSetNodeInfo feeds lookup-shaped data to a standalone agent.
func (a *Agent) cmdSetNodeInfo(ctx context.Context, c *Call) (any, error) {
	if !a.cfg.Standalone {
		return nil, errInvalidCommand("Node lookup data can only be set when the Ironic Python Agent is running in standalone mode.")
	}
	info, ok := c.Params["node_info"].(map[string]any)
	if !ok {
		return nil, ErrInvalidParams("node_info must be an object")
	}
	node, _ := info["node"].(map[string]any)
	cfg, _ := info["config"].(map[string]any)
	if node == nil {
		return nil, ErrInvalidParams("node_info.node must be an object")
	}
	if cfg == nil {
		cfg = map[string]any{}
	}
	a.applyLookup(&LookupResult{Node: node, Config: cfg})
	return nil, nil
}

// cmdCollectLogs is IPA's log.collect_system_logs: the bundle,
// base64-encoded.
func (a *Agent) cmdCollectLogs(ctx context.Context, c *Call) (any, error) {
	b, err := a.systemLogs(ctx)
	if err != nil {
		return nil, err
	}
	return map[string]any{"system_logs": base64.StdEncoding.EncodeToString(b)}, nil
}

// systemLogs is logbundle's bundle with the agent's own log as IPA's
// "journal" (where operators read the agent's lines) and goipa's
// inventory and status beside it; the inspection's "logs" collector
// sends it too.
func (a *Agent) systemLogs(ctx context.Context) ([]byte, error) {
	opts := []logbundle.Option{
		logbundle.WithMember("journal", func(context.Context) ([]byte, error) {
			if a.logs == nil {
				return []byte("(the agent's log is not kept in memory in this mode)\n"), nil
			}
			return a.logs.Bytes(), nil
		}),
		logbundle.WithMember("inventory.json", func(ctx context.Context) ([]byte, error) {
			inv, err := a.hw.Inventory(ctx)
			if err != nil {
				return nil, err
			}
			return json.MarshalIndent(inv, "", "  ")
		}),
		logbundle.WithMember("status.json", func(context.Context) ([]byte, error) { return json.MarshalIndent(a.status(), "", "  ") }),
	}
	if vars, real := a.efiVars(); real {
		opts = append(opts, logbundle.WithEFIVars(vars.Dir))
	}
	return logbundle.New(opts...).Collect(ctx)
}
