package agent

import (
	"context"
	"errors"
	"os"
	"time"

	"github.com/goipa/goipa/rescue"
)

// Where IPA keeps the rescue state (IPA extensions/rescue.py): the hash
// that the ramdisk's account setup reads (DIB's ironic-agent element makes
// the `rescue` user from this file), and master's marker that a restarted
// agent must not serve its API again. Variables so unit tests can point
// them into a temporary directory.
var (
	rescuePasswordFile = "/etc/ipa-rescue-config/ipa-rescue-password"
	rescuedMarker      = "/etc/.rescued"
)

// WithRescue gives the agent what to do once a node is rescued and the
// API has stopped: goipa init starts the console login and the SSH server
// for the `rescue` user with the stored hash. Without it (a host agent)
// the account is only logged.
func WithRescue(start func(passwordHash string)) Option {
	return func(a *Agent) { a.onRescued = start }
}

// registerRescue adds rescue.finalize_rescue (spec 4.2).
func (a *Agent) registerRescue() {
	a.cmds.Register(Commands{Ext: "rescue", Cmds: map[string]Command{
		"finalize_rescue": {Run: a.cmdFinalizeRescue},
	}})
}

// cmdFinalizeRescue stores the rescue password's hash, answers SUCCEEDED
// (Ironic requires it), then stops the API and the heartbeats for good as
// IPA does, so the agent is not exposed on the tenant's network. Unlike a
// lockdown the links stay up: the tenant logs in over them.
//
// Ironic sends {"rescue_password": <crypt hash>, "hashed": true}; if the
// agent refuses that with an HTTP error, 21.4 (unless
// [conductor]require_rescue_password_hashed) retries with the plaintext
// password alone, which the agent hashes with SHA-256 crypt as IPA does.
// IPA stores whatever it gets; goipa checks the hash first, so a string
// no login could ever match is an error and not a locked-out tenant.
func (a *Agent) cmdFinalizeRescue(ctx context.Context, c *Call) (any, error) {
	password, ok := c.Params["rescue_password"].(string)
	if !ok || password == "" {
		return nil, ErrInvalidParams("rescue_password must be a non-empty string")
	}
	hashed := false
	if v, present := c.Params["hashed"]; present && v != nil {
		b, ok := v.(bool)
		if !ok {
			return nil, ErrInvalidParams("hashed must be a boolean, not %s", jsonText(v))
		}
		hashed = b
	}
	hash, err := rescue.LoginHash(password, hashed)
	var invalid *rescue.InvalidPasswordError
	if errors.As(err, &invalid) {
		return nil, ErrInvalidParams("%v", invalid)
	} else if err != nil {
		return nil, err
	}
	scheme := hash[:3]
	c.Log.Info("rescue password received", "hashed", hashed, "scheme", scheme)

	real := a.realPower || a.cfg.Power == "system"
	if real {
		if err := rescue.StorePassword(rescuePasswordFile, hash); err != nil {
			return nil, err
		}
		// IPA only warns when the marker cannot be made: the password is
		// what matters to the tenant.
		if err := os.WriteFile(rescuedMarker, nil, 0o644); err != nil {
			c.Log.Warn("failed to create the rescue state marker", "path", rescuedMarker, "error", err)
		}
	} else {
		c.Log.Warn("simulated rescue: no rescue account made on this host", "user", "rescue", "scheme", scheme)
	}

	syncFilesystems()
	a.mu.Lock()
	a.lockedDown = true // heartbeats end with the API, as after a lockdown
	stop := a.serverStop
	start := a.onRescued
	a.mu.Unlock()
	go func() {
		// Let the answer reach Ironic before the listener goes.
		time.Sleep(500 * time.Millisecond)
		if stop != nil {
			stop()
		}
		a.log.Info("rescued: the API is stopped and heartbeats have ended")
		if start != nil && real {
			start(hash)
		}
	}()
	return nil, nil
}
