package agent

import (
	"context"
	"errors"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/goipa/goipa/backoff"
)

// heartbeatLoop heartbeats until ctx ends (nil), the server fails, or
// Ironic ends the operation (errStartOver).
func (a *Agent) heartbeatLoop(ctx context.Context, serverErr <-chan error) error {
	next := time.Now() // the first beat follows the lookup at once
	var last time.Time
	forced := false
	for {
		now := time.Now()
		due := next
		if forced {
			// A forced beat still waits 5 s after the previous one, as IPA
			// does, so a burst of commands is not a burst of heartbeats.
			due = minTime(due, last.Add(5*time.Second))
		}
		if !now.Before(due) {
			forced = false
			last = time.Now()
			err := a.beat(ctx)
			switch {
			case err == nil:
				next = time.Now().Add(time.Duration(float64(a.heartbeatTimeout()) * (0.3 + 0.3*rand.Float64())))
			case errors.Is(err, errStartOver):
				return err
			default:
				next = time.Now().Add(time.Duration(float64(5*time.Second) * (1 + rand.Float64())))
			}
			continue
		}
		wait := min(time.Until(due), 5*time.Second)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case err := <-serverErr:
			t.Stop()
			if err != nil {
				return err
			}
			if a.isLockedDown() {
				a.setPhase("locked down")
				<-ctx.Done()
			}
			return nil
		case <-a.reset:
			t.Stop()
			return errStartOver
		case <-a.force:
			forced = true
		case <-t.C:
		}
	}
}

func (a *Agent) heartbeatTimeout() time.Duration {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.hbTimeout
}

func (a *Agent) isLockedDown() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.lockedDown
}

// beat sends one heartbeat.
func (a *Agent) beat(ctx context.Context) error {
	a.mu.Lock()
	base, v, node, cb, tok, ca := a.apiBase, a.apiVersion, a.node, a.callbackURL, a.token, a.verifyCA
	a.mu.Unlock()
	uuid, _ := node["uuid"].(string)
	err := a.ironic.heartbeat(ctx, base, v, uuid, heartbeatBody(v, cb, tok, IPAVersion, ca))
	if err == nil {
		a.metrics.heartbeats.WithLabelValues("ok").Inc()
		a.log.Debug("heartbeat sent", "node", uuid)
		return nil
	}
	var ie *IronicError
	if errors.As(err, &ie) {
		a.metrics.heartbeats.WithLabelValues(strconv.Itoa(ie.Status)).Inc()
		if tokenWiped(ie) {
			a.log.Info("Ironic refused the token: the operation has ended", "node", uuid, "error", err)
			return errStartOver
		}
	} else {
		a.metrics.heartbeats.WithLabelValues("error").Inc()
	}
	a.log.Warn("heartbeat failed, retrying", "node", uuid, "error", err)
	return err
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// sleepCtx waits d unless ctx ends first.
var sleepCtx = backoff.Sleep
