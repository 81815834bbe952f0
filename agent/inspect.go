package agent

import (
	"context"
	"encoding/base64"
	"errors"
	"net/http"
	"time"
)

// callbackRetry is how often and how long the inspection callback is
// retried. IPA (inspector.call_inspector) makes 5 attempts with
// tenacity's wait_exponential(multiplier=1.5, min=5, max=30): waits of
// 5, 5, 6 and 12 s.
type callbackRetry struct {
	attempts int
	wait     func(attempt int) time.Duration // after the attempt-th failure (1-based)
}

var ipaCallbackRetry = callbackRetry{attempts: 5, wait: func(attempt int) time.Duration {
	d := 1.5 * float64(int(1)<<(attempt-1)) * float64(time.Second)
	return min(max(time.Duration(d), 5*time.Second), 30*time.Second)
}}

// callbackRetryable reports whether a failed callback is worth sending
// again, as IPA decides: connection errors, 5xx and 409 (the inspector
// or Ironic is busy with the node) are; other HTTP answers are final.
func callbackRetryable(err error) bool {
	var ie *IronicError
	if errors.As(err, &ie) {
		return ie.Status >= 500 || ie.Status == http.StatusConflict
	}
	return true
}

// inspectionWaiter is a Hardware that has to settle (LLDP heard, NICs
// addressed) before its inspection data is worth sending.
type inspectionWaiter interface {
	WaitForInspection(ctx context.Context)
}

// waitBeforeInspection runs the hardware's bounded waits, if it has any.
func (a *Agent) waitBeforeInspection(ctx context.Context) {
	if w, ok := a.hw.(inspectionWaiter); ok {
		w.WaitForInspection(ctx)
	}
}

// inspect posts the inspection data to ipa-inspection-callback-url and
// returns the node UUID the inspector answered with ("" if none). A
// failure is logged and the agent goes on to lookup, as IPA does.
func (a *Agent) inspect(ctx context.Context) string {
	collectors := a.cfg.InspectionCollectors
	a.waitBeforeInspection(ctx)
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
	uuid, err := a.postInspection(ctx, data)
	if err != nil {
		a.log.Error("inspection data not accepted; going on to lookup", "error", err)
		return ""
	}
	a.log.Info("inspection data accepted", "node", uuid)
	return uuid
}

// postInspection sends data to the callback with IPA's retries. The
// callback carries no microversion header: ironic-inspector has none,
// and Ironic's /v1/continue_inspection answers any version.
func (a *Agent) postInspection(ctx context.Context, data map[string]any) (string, error) {
	var answer struct {
		UUID string `json:"uuid"`
	}
	retry := a.callbackRetry
	var err error
	for attempt := 1; attempt <= retry.attempts; attempt++ {
		err = a.ironic.postJSON(ctx, "inspection callback", a.cfg.InspectionCallbackURL, data, &answer)
		if err == nil {
			return answer.UUID, nil
		}
		if ctx.Err() != nil {
			return "", ctx.Err()
		}
		if !callbackRetryable(err) {
			return "", err // the inspector refused the data: sending it again changes nothing
		}
		if attempt == retry.attempts {
			break
		}
		wait := retry.wait(attempt)
		a.log.Warn("inspection callback failed, retrying", "attempt", attempt, "error", err, "retry_in", wait)
		if err := sleepCtx(ctx, wait); err != nil {
			return "", err
		}
	}
	return "", err
}
