package image

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/goipa/goipa/internal/testenv"
)

// rangeServer serves img with real Range support (http.ServeContent)
// and injected faults on range requests.
type rangeServer struct {
	img         []byte
	fail500     atomic.Int32 // every n-th range request answers 500
	truncateNth int32        // the n-th range request sends half and hangs up
	ignoreRange bool
	ranges      atomic.Int32
	inFlight    atomic.Int32
	maxInFlight atomic.Int32
	served      atomic.Int64 // body bytes written, all requests
}

// countingWriter counts the body bytes a handler writes.
type countingWriter struct {
	http.ResponseWriter
	n *atomic.Int64
}

func (w countingWriter) Write(b []byte) (int, error) {
	n, err := w.ResponseWriter.Write(b)
	w.n.Add(int64(n))
	return n, err
}

func (s *rangeServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	cur := s.inFlight.Add(1)
	defer s.inFlight.Add(-1)
	for {
		m := s.maxInFlight.Load()
		if cur <= m || s.maxInFlight.CompareAndSwap(m, cur) {
			break
		}
	}
	if r.Header.Get("Range") != "" && !s.ignoreRange {
		n := s.ranges.Add(1)
		if f := s.fail500.Load(); f > 0 && n%f == 0 {
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		if s.truncateNth > 0 && n == s.truncateNth {
			var from, to int64
			if _, err := fmtSscanRange(r.Header.Get("Range"), &from, &to); err == nil && to > from {
				w.Header().Set("Content-Length", itoa(to-from+1))
				w.Header().Set("Content-Range", "bytes "+itoa(from)+"-"+itoa(to)+"/"+itoa(int64(len(s.img))))
				w.WriteHeader(http.StatusPartialContent)
				n, _ := w.Write(s.img[from : from+(to-from)/2])
				s.served.Add(int64(n))
				hj, _ := w.(http.Hijacker)
				conn, _, _ := hj.Hijack()
				conn.Close()
				return
			}
		}
		time.Sleep(2 * time.Millisecond) // let requests overlap
		http.ServeContent(countingWriter{w, &s.served}, r, "img", time.Time{}, bytes.NewReader(s.img))
		return
	}
	w.Header().Set("Content-Length", itoa(int64(len(s.img))))
	w.Write(s.img)
}

func digestOf(t *testing.T, d download) string {
	t.Helper()
	h := sha256.New()
	_, err := io.Copy(h, d)
	require.NoError(t, err)
	return hex.EncodeToString(h.Sum(nil))
}

func TestParallelRanges(t *testing.T) {
	img := randomImage(t, parallelMin+3*rangeChunk+12345) // not a multiple of the chunk
	want := shaHex(img)
	retry := Retry{Attempts: 5, Interval: 20 * time.Millisecond}
	var logs []string
	logf := func(msg string, args ...any) { logs = append(logs, msg) }
	for _, tc := range []struct {
		name     string
		srv      *rangeServer
		parallel int
		wantPar  bool
	}{
		{"ranges", &rangeServer{}, 4, true},
		{"500s retried", failing(5), 4, true},
		{"dropped range retried", &rangeServer{truncateNth: 3}, 4, true},
		{"server ignores Range", &rangeServer{ignoreRange: true}, 4, false},
		{"parallel 1", &rangeServer{}, 1, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.srv.img = img
			srv := httptest.NewServer(tc.srv)
			defer srv.Close()
			logs = nil
			src := &HTTPSource{URL: srv.URL, Client: srv.Client()}
			var retries atomic.Int32
			d, err := openDownload(context.Background(), src, tc.parallel, retry, func(error) { retries.Add(1) }, logf)
			require.NoError(t, err)
			defer d.Close()
			_, isPar := d.(*parallelReader)
			assert.Equal(t, tc.wantPar, isPar, "logs: %v", logs)
			assert.Equal(t, want, digestOf(t, d), "the bytes arrive in order")
			off, size := d.progress()
			assert.Equal(t, int64(len(img)), off)
			assert.Equal(t, int64(len(img)), size)
			if tc.wantPar {
				assert.GreaterOrEqual(t, tc.srv.maxInFlight.Load(), int32(2), "requests overlapped")
				assert.LessOrEqual(t, tc.srv.maxInFlight.Load(), int32(tc.parallel+1), "at most `parallel` range requests (+ the probe's stream)")
			}
			if tc.srv.fail500.Load() > 0 || tc.srv.truncateNth > 0 {
				assert.Positive(t, retries.Load(), "faults were retried")
			}
			if tc.srv.truncateNth > 0 {
				// The dropped request resumed from the byte it reached:
				// nothing it delivered was fetched again (the probe's byte,
				// and what the server buffered when it hung up, aside).
				assert.LessOrEqual(t, tc.srv.served.Load(), int64(len(img))+64<<10, "bytes fetched twice")
			}
		})
	}
}

func TestParallelRangesGiveUp(t *testing.T) {
	img := randomImage(t, parallelMin+rangeChunk)
	s1 := failing(1)
	s1.img = img
	srv := httptest.NewServer(s1)
	defer srv.Close()
	src := &HTTPSource{URL: srv.URL, Client: srv.Client()}
	// The probe itself gets a 500: one stream it is.
	d, err := openDownload(context.Background(), src, 4, Retry{Attempts: 2, Interval: 10 * time.Millisecond}, nil, func(string, ...any) {})
	require.NoError(t, err)
	_, isPar := d.(*parallelReader)
	assert.False(t, isPar)
	d.Close()

	// Every range after the probe fails: the download fails, naming the bytes.
	s := &rangeServer{img: img}
	srv2 := httptest.NewServer(s)
	defer srv2.Close()
	d, err = openDownload(context.Background(), &HTTPSource{URL: srv2.URL, Client: srv2.Client()}, 4, Retry{Attempts: 1, Interval: 10 * time.Millisecond}, nil, func(string, ...any) {})
	require.NoError(t, err)
	s.fail500.Store(1)
	_, err = io.Copy(io.Discard, d)
	require.Error(t, err)
	assert.True(t, strings.Contains(err.Error(), "bytes ") && strings.Contains(err.Error(), "giving up"), "%v", err)
	d.Close()
}

// TestWriteWithParallelRanges: the whole engine on a loop device.
func TestWriteWithParallelRanges(t *testing.T) {
	testenv.NeedRoot(t)
	testenv.NeedCommands(t, "losetup")
	img := randomImage(t, parallelMin+2*rangeChunk)
	s := &rangeServer{img: img, truncateNth: 4}
	srv := httptest.NewServer(s)
	defer srv.Close()
	dev := loopDev(t, int64(len(img))+1<<20)
	_, err := Write(context.Background(), req(dev, srv.URL+"/img", shaHex(img)))
	require.NoError(t, err)
	assert.Greater(t, s.ranges.Load(), int32(len(img)/rangeRequest), "fetched in ranges")
	assert.Equal(t, shaHex(img), shaHex(readBack(t, dev, 0, int64(len(img)))))
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func fmtSscanRange(h string, from, to *int64) (int, error) {
	return fmt.Sscanf(h, "bytes=%d-%d", from, to)
}

func failing(n int32) *rangeServer {
	s := &rangeServer{}
	s.fail500.Store(n)
	return s
}

func TestParseContentRange(t *testing.T) {
	for _, tc := range []struct {
		v                     string
		first, last, complete int64
		ok                    bool
	}{
		{"bytes 0-499/1234", 0, 499, 1234, true},
		{"bytes 734-1233/1234", 734, 1233, 1234, true},
		{"bytes 42-1233/*", 42, 1233, -1, true},
		{"bytes 0-0/1", 0, 0, 1, true},
		{"bytes 5-4/10", 0, 0, 0, false},      // last before first
		{"bytes 0-10/10", 0, 0, 0, false},     // past the complete length
		{"bytes -1-5/10", 0, 0, 0, false},     // signs are not digits
		{"bytes +1-5/10", 0, 0, 0, false},     // nor is a plus
		{"bytes 1-5", 0, 0, 0, false},         // no complete length
		{"bytes */10", 0, 0, 0, false},        // the 416 form is no range
		{"items 0-5/10", 0, 0, 0, false},      // another unit
		{"bytes 0-5/10 junk", 0, 0, 0, false}, // trailing bytes
		{"bytes 0-99999999999999999999/*", 0, 0, 0, false},
		{"", 0, 0, 0, false},
	} {
		first, last, complete, err := parseContentRange(tc.v)
		if !tc.ok {
			assert.Error(t, err, tc.v)
			continue
		}
		require.NoError(t, err, tc.v)
		assert.Equal(t, []int64{tc.first, tc.last, tc.complete}, []int64{first, last, complete}, tc.v)
	}
}

var leadingZeros = regexp.MustCompile(`([ /-])0+([0-9])`)

func FuzzContentRange(f *testing.F) {
	for _, s := range []string{"bytes 0-499/1234", "bytes 42-1233/*", "bytes 5-4/10", "bytes 0-10/10",
		"bytes -1-5/10", "bytes */10", "bytes 0-5/10 junk", "bytes 0-9223372036854775806/9223372036854775807", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		first, last, complete, err := parseContentRange(v)
		if err != nil {
			return
		}
		if first < 0 || last < first || (complete != -1 && (complete <= last || complete < 0)) {
			t.Fatalf("%q gave first %d last %d complete %d", v, first, last, complete)
		}
		// What it accepts is exactly the canonical form of what it read
		// (leading zeros aside): no trailing or unread bytes.
		want := fmt.Sprintf("bytes %d-%d/%d", first, last, complete)
		if complete == -1 {
			want = fmt.Sprintf("bytes %d-%d/*", first, last)
		}
		if got := leadingZeros.ReplaceAllString(v, "$1$2"); got != want {
			t.Fatalf("%q accepted as %q", v, want)
		}
	})
}
