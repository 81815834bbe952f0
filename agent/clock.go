package agent

import (
	"context"
	"errors"
	"time"

	"github.com/goipa/goipa/timesync"
)

// syncClock sets the clock from ipa-ntp-server before anything makes a
// certificate or sends a timestamp, as IPA does at start. Only the
// ramdisk's agent (real power) steps the clock; an agent on a host reads
// the offset and logs it, since the host's clock is not its to set. A
// server that does not answer is logged and the agent goes on, as IPA
// ignores clock sync errors at start.
func (a *Agent) syncClock(ctx context.Context) {
	if a.cfg.NTPServer == "" {
		return
	}
	var step func(time.Duration) error
	if a.realPower {
		step = a.stepClock
		if step == nil {
			step = timesync.Step
		}
	}
	res, err := timesync.Sync(ctx, a.cfg.NTPServer, step)
	var failed *timesync.StepError
	switch {
	case errors.As(err, &failed):
		a.log.Error("ipa-ntp-server: could not set the clock", "server", res.Server, "offset", res.Offset, "error", failed.Err)
	case err != nil:
		a.log.Warn("ipa-ntp-server: could not read the time, the clock is left as it is", "server", a.cfg.NTPServer, "error", err)
	case step == nil:
		a.log.Info("ipa-ntp-server: agent on a host, the host's clock is not set", "server", res.Server, "offset", res.Offset.Round(time.Millisecond), "stratum", res.Stratum)
	default:
		a.log.Info("clock set from ipa-ntp-server", "server", res.Server, "offset", res.Offset.Round(time.Millisecond), "stratum", res.Stratum)
	}
}

// logIgnoredParams says once which given parameters goipa does not act on.
func (a *Agent) logIgnoredParams() {
	for name, v := range a.cfg.Ignored {
		a.log.Warn("parameter ignored", "param", name, "value", v, "why", ignoredParams[name])
	}
}
