package httpserve

import (
	"log/slog"
	"net/http"
	"time"
)

// Guard wraps an API's handler so that a bug in it never takes the server
// down (a panic is logged and answered by OnPanic) and every request is
// logged at debug level with its status and duration.
type Guard struct {
	Log *slog.Logger
	// RequestIDHeader, when set, names the header logged as request_id
	// (X-Openstack-Request-Id ties a request to the caller's logs).
	RequestIDHeader string
	// OnPanic answers a request whose handler panicked with p.
	OnPanic func(w http.ResponseWriter, p any)
}

// Wrap returns h guarded.
func (g Guard) Wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		defer func() {
			if p := recover(); p != nil {
				g.Log.Error("API handler panicked", "panic", p, "path", r.URL.Path)
				g.OnPanic(rec, p)
			}
			attrs := []any{"method", r.Method, "path", r.URL.Path, "status", rec.status, "duration", time.Since(start).Round(time.Microsecond), "remote", r.RemoteAddr}
			if id := r.Header.Get(g.RequestIDHeader); g.RequestIDHeader != "" && id != "" {
				attrs = append(attrs, "request_id", id)
			}
			g.Log.Debug("api request", attrs...)
		}()
		h.ServeHTTP(rec, r)
	})
}

// statusRecorder remembers the status a handler answered, for the log.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	r.status = code
	r.ResponseWriter.WriteHeader(code)
}
