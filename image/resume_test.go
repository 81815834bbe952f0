package image

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// cuttingServer serves img with Range support and hangs up every
// response after cutAfter body bytes, as a proxy that limits each
// response does.
type cuttingServer struct {
	img      []byte
	cutAfter atomic.Int64
	requests atomic.Int32
}

func (s *cuttingServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.requests.Add(1)
	first, last := int64(0), int64(len(s.img))-1
	status := http.StatusOK
	if rg := r.Header.Get("Range"); rg != "" {
		a, b, _ := strings.Cut(strings.TrimPrefix(rg, "bytes="), "-")
		first, _ = strconv.ParseInt(a, 10, 64)
		if b != "" {
			last, _ = strconv.ParseInt(b, 10, 64)
		}
		status = http.StatusPartialContent
		w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", first, last, len(s.img)))
	}
	w.Header().Set("Content-Length", strconv.FormatInt(last-first+1, 10))
	w.WriteHeader(status)
	// Fewer bytes than Content-Length promises: the server closes the
	// connection and the client reads an unexpected EOF.
	w.Write(s.img[first : first+min(last-first+1, s.cutAfter.Load())])
}

// TestResumeAfterProgressDoesNotBackOff: through a real loopback server
// that cuts every response after 6 MiB, an image arrives whole with no
// back-off at all (every attempt brought bytes), in one stream and in
// parallel ranges; a server that sends nothing exhausts the retries, each
// after a back-off.
func TestResumeAfterProgressDoesNotBackOff(t *testing.T) {
	img := randomImage(t, parallelMin+32<<20)
	for _, parallel := range []int{1, 4} {
		t.Run(fmt.Sprintf("parallel-%d", parallel), func(t *testing.T) {
			s := &cuttingServer{img: img}
			s.cutAfter.Store(6 << 20)
			srv := httptest.NewServer(s)
			defer srv.Close()
			var sleeps, retries atomic.Int32
			retry := Retry{Attempts: 2, Interval: time.Hour, sleep: func(ctx context.Context, d time.Duration) error {
				sleeps.Add(1)
				return nil
			}}
			d, err := openDownload(context.Background(), &HTTPSource{URL: srv.URL, Client: srv.Client()}, parallel, retry,
				func(error) { retries.Add(1) }, func(string, ...any) {})
			require.NoError(t, err)
			defer d.Close()
			assert.Equal(t, shaHex(img), digestOf(t, d))
			// Far more cuts than the two retries allowed in a row: every
			// response, or each 16 MiB range request, was cut every 6 MiB.
			cuts := len(img)/(6<<20) - 1
			if parallel > 1 {
				cuts = len(img) / rangeRequest * 2
			}
			assert.GreaterOrEqual(t, retries.Load(), int32(cuts), "responses were cut and resumed")
			assert.Zero(t, sleeps.Load(), "no back-off after an attempt that made progress")
		})
	}
	t.Run("no-progress", func(t *testing.T) {
		for _, parallel := range []int{1, 4} {
			s := &cuttingServer{img: img}
			s.cutAfter.Store(6 << 20)
			srv := httptest.NewServer(s)
			defer srv.Close()
			var sleeps atomic.Int32
			retry := Retry{Attempts: 3, Interval: time.Hour, sleep: func(ctx context.Context, d time.Duration) error {
				assert.InDelta(t, float64(time.Hour)*3/4, float64(d), float64(time.Hour)/4, "waits about the interval")
				sleeps.Add(1)
				return nil
			}}
			d, err := openDownload(context.Background(), &HTTPSource{URL: srv.URL, Client: srv.Client()}, parallel, retry, nil, func(string, ...any) {})
			require.NoError(t, err)
			// From now on the server sends headers and no byte.
			s.cutAfter.Store(0)
			_, err = io.Copy(io.Discard, d)
			d.Close()
			require.Error(t, err)
			assert.Contains(t, err.Error(), "giving up after 3 retries without progress")
			if parallel == 1 {
				assert.Equal(t, int32(3), sleeps.Load(), "a back-off before each retry without progress")
			} else {
				// Each request in flight backs off on its own.
				assert.GreaterOrEqual(t, sleeps.Load(), int32(3))
			}
		}
	})
}
