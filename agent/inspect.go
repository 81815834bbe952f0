package agent

import (
	"context"
	"encoding/base64"
	"time"
)

// inspect posts the inspection data to ipa-inspection-callback-url and
// returns the node UUID the inspector answered with ("" if none). A
// failure is logged and the agent goes on to lookup, as IPA does.
func (a *Agent) inspect(ctx context.Context) string {
	collectors := a.cfg.InspectionCollectors
	data, err := a.hw.InspectionData(ctx, collectors)
	if data == nil {
		data = map[string]any{}
	}
	if err != nil {
		a.log.Error("collecting inspection data", "error", err)
		data["error"] = err.Error()
	}
	if _, ok := data["error"]; !ok {
		data["error"] = nil
	}
	for _, c := range collectors {
		if c == "logs" {
			if b, err := a.systemLogs(ctx); err == nil {
				data["logs"] = base64.StdEncoding.EncodeToString(b)
			}
		}
	}
	var answer struct {
		UUID string `json:"uuid"`
	}
	delay := 5 * time.Second
	for attempt := 1; attempt <= 5; attempt++ {
		err = a.ironic.postJSON(ctx, "inspection callback", a.cfg.InspectionCallbackURL, data, &answer)
		if err == nil {
			a.log.Info("inspection data accepted", "node", answer.UUID)
			return answer.UUID
		}
		a.log.Warn("inspection callback failed", "attempt", attempt, "error", err)
		if ie, ok := err.(*IronicError); ok && ie.Status >= 400 && ie.Status < 500 && ie.Status != 409 {
			break // the inspector refused the data: retrying sends the same
		}
		if sleepCtx(ctx, delay) != nil {
			return ""
		}
		delay = min(delay*2, 30*time.Second)
	}
	a.log.Error("inspection data not accepted; going on to lookup", "error", err)
	return ""
}
