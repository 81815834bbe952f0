package httpserve

import (
	"bytes"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestGuard(t *testing.T) {
	for _, tc := range []struct {
		name     string
		handler  http.HandlerFunc
		idHeader string
		wantCode int
		wantBody string
		wantLogs []string
		notLogs  []string
	}{
		{"a plain answer is logged with its status", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusTeapot) },
			"X-Openstack-Request-Id", http.StatusTeapot, "", []string{`msg="api request"`, "status=418", "request_id=req-7", "path=/x"}, []string{"panicked"}},
		{"no header named, no request_id", func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "ok") },
			"", http.StatusOK, "ok", []string{"status=200"}, []string{"request_id"}},
		{"a panic is answered and logged", func(w http.ResponseWriter, r *http.Request) { panic("boom") },
			"X-Openstack-Request-Id", http.StatusInternalServerError, "sorry: boom", []string{`msg="API handler panicked"`, "panic=boom", "status=500"}, nil},
		{"a runtime panic too", func(w http.ResponseWriter, r *http.Request) { s := []int{}; fmt.Fprint(w, s[len(r.URL.Path)]) },
			"", http.StatusInternalServerError, "sorry: runtime error: index out of range [2] with length 0", []string{"panicked"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var logs bytes.Buffer
			g := Guard{Log: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
				RequestIDHeader: tc.idHeader,
				OnPanic: func(w http.ResponseWriter, p any) {
					w.WriteHeader(http.StatusInternalServerError)
					fmt.Fprintf(w, "sorry: %v", p)
				}}
			req := httptest.NewRequest(http.MethodGet, "/x", nil)
			req.Header.Set("X-Openstack-Request-Id", "req-7")
			rec := httptest.NewRecorder()
			g.Wrap(tc.handler).ServeHTTP(rec, req)
			assert.Equal(t, tc.wantCode, rec.Code)
			assert.Equal(t, tc.wantBody, rec.Body.String())
			for _, s := range tc.wantLogs {
				assert.Contains(t, logs.String(), s)
			}
			for _, s := range tc.notLogs {
				assert.NotContains(t, logs.String(), s)
			}
		})
	}
}
