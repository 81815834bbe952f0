package injectfiles

import (
	"compress/gzip"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"testing"
	"time"

	"github.com/goipa/goipa/download"
)

// countingWriter counts what reaches the file.
type countingWriter struct{ n int64 }

func (c *countingWriter) Write(p []byte) (int, error) { c.n += int64(len(p)); return len(p), nil }

// TestFetchHostileServers: an inject_files URL whose server stalls
// mid-body fails after the client's timeout; one that sends without end
// (plain or as a gzip bomb) is cut at the limit with *TooLargeError, the
// file getting at most the limit and memory not growing with the body;
// a Content-Length above the limit is refused before reading.
func TestFetchHostileServers(t *testing.T) {
	const limit = 4 << 20
	zeros := make([]byte, 64<<10)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/stall":
			w.Header().Set("Content-Length", "1048576")
			w.Write(zeros[:1000])
			w.(http.Flusher).Flush()
			<-r.Context().Done()
		case "/endless":
			for r.Context().Err() == nil {
				if _, err := w.Write(zeros); err != nil {
					return
				}
			}
		case "/bomb":
			w.Header().Set("Content-Encoding", "gzip")
			zw := gzip.NewWriter(w)
			for r.Context().Err() == nil {
				if _, err := zw.Write(zeros); err != nil {
					return
				}
			}
		case "/declared":
			w.Header().Set("Content-Length", "1073741824")
			w.Write(zeros)
		}
	}))
	defer srv.Close()
	client, err := download.NewClient(download.WithTimeout(500 * time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	t.Run("stall", func(t *testing.T) {
		err := fetch(ctx, client, srv.URL+"/stall", io.Discard, limit)
		if err == nil || ctx.Err() != nil {
			t.Fatalf("a stalled body: %v (test context: %v), want the client's timeout", err, ctx.Err())
		}
	})
	for _, tc := range []struct {
		path  string
		limit int64
	}{
		{"/endless", limit},
		{"/bomb", 64 << 10}, // zeros compress 1000:1: the server's CPU, not ours, is the cost
		{"/declared", limit},
	} {
		path, limit := tc.path, tc.limit
		t.Run(path, func(t *testing.T) {
			var w countingWriter
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			err := fetch(ctx, client, srv.URL+path, &w, limit)
			runtime.ReadMemStats(&after)
			var tl *TooLargeError
			if !errors.As(err, &tl) {
				t.Fatalf("%s: %v, want *TooLargeError", path, err)
			}
			if w.n > limit {
				t.Errorf("%s: %d bytes written, limit %d", path, w.n, limit)
			}
			// The whole process's allocations, server included: far below
			// what holding the body would take.
			if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 2<<20 {
				t.Errorf("%s: %d bytes allocated fetching a body cut at %d", path, alloc, limit)
			}
		})
	}
}
