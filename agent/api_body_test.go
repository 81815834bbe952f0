package agent

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// untouchableBody fails the test if anything reads it.
type untouchableBody struct{ t *testing.T }

func (b untouchableBody) Read([]byte) (int, error) {
	b.t.Error("the body of an oversized request was read")
	return 0, io.ErrUnexpectedEOF
}
func (untouchableBody) Close() error { return nil }

func decodeFault(t *testing.T, rec *httptest.ResponseRecorder) map[string]any {
	t.Helper()
	var out map[string]any
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &out), "body %q", rec.Body.String())
	return out
}

func TestOversizedContentLengthRefusedBeforeReading(t *testing.T) {
	h := newTestAgent(t, "ipa-standalone=1").Handler()
	for _, size := range []int64{MaxRequestBody + 1, 256 << 20, 1 << 40} {
		req := httptest.NewRequest(http.MethodPost, "/v1/commands/", nil)
		req.Body = untouchableBody{t}
		req.ContentLength = size
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		assert.Equal(t, http.StatusRequestEntityTooLarge, rec.Code, "size %d", size)
		fault := decodeFault(t, rec)
		assert.Equal(t, "Client", fault["faultcode"])
		assert.Contains(t, fault["faultstring"], "413 Request Entity Too Large")
	}
}

// A chunked body (no Content-Length) is cut off as soon as it passes the
// limit.
func TestChunkedBodyOverLimit(t *testing.T) {
	c := newAPI(t, newTestAgent(t, "ipa-standalone=1"))
	var read atomic.Int64
	body := io.MultiReader(strings.NewReader(`{"name": "standby.sync", "params": {"x": "`),
		countingReader{r: io.LimitReader(zeroes{}, 2*MaxRequestBody), n: &read})
	req, err := http.NewRequest(http.MethodPost, c.srv.URL+"/v1/commands/", body)
	require.NoError(t, err)
	req.ContentLength = -1
	resp, err := http.DefaultClient.Do(req)
	if err == nil {
		defer resp.Body.Close()
		assert.Equal(t, http.StatusRequestEntityTooLarge, resp.StatusCode)
	} // else the server closed the connection mid-upload after answering: also refused
	assert.Less(t, read.Load(), int64(2*MaxRequestBody), "the client got to send the whole body")
}

type zeroes struct{}

func (zeroes) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = 'A'
	}
	return len(p), nil
}

type countingReader struct {
	r io.Reader
	n *atomic.Int64
}

func (c countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

func TestTrailingDataAfterJSONObject(t *testing.T) {
	c := newAPI(t, newTestAgent(t, "ipa-standalone=1"))
	const obj = `{"name": "standby.sync", "params": {}}`
	for _, tc := range []struct {
		name string
		body string
		code int
	}{
		{"object alone", obj, 200},
		{"trailing white space", obj + " \n\t\r\n", 200},
		{"trailing word", obj + " garbage", 400},
		{"second object", obj + obj, 400},
		{"trailing number", obj + "1", 400},
		{"trailing bracket", obj + "}", 400},
		{"trailing NUL", obj + "\x00", 400},
	} {
		code, body := c.do(http.MethodPost, "/v1/commands/", tc.body)
		assert.Equal(t, tc.code, code, tc.name)
		if tc.code == 400 {
			assert.Equal(t, "Client", body["faultcode"], tc.name)
			assert.IsType(t, "", body["faultstring"], tc.name)
		}
	}
}

// gatedBody hands out the second half of a large JSON body only once the
// test opens its gate.
type gatedBody struct {
	head, tail []byte
	gate       chan struct{}
}

func newGatedBody(size int) *gatedBody {
	pre := `{"name": "standby.sync", "params": {"configdrive": "`
	post := `"}}`
	pad := bytes.Repeat([]byte("A"), size-len(pre)-len(post))
	full := append(append([]byte(pre), pad...), post...)
	return &gatedBody{head: full[:size/2], tail: full[size/2:], gate: make(chan struct{})}
}

func (g *gatedBody) Read(p []byte) (int, error) {
	if len(g.head) > 0 {
		n := copy(p, g.head)
		g.head = g.head[n:]
		return n, nil
	}
	<-g.gate
	if len(g.tail) == 0 {
		return 0, io.EOF
	}
	n := copy(p, g.tail)
	g.tail = g.tail[n:]
	return n, nil
}

func (g *gatedBody) len() int64 { return int64(len(g.head) + len(g.tail)) }

// readProbe tells, on the server's side, when a handler first reads the
// body of the request tagged X-Probe with a given name.
type readProbe struct {
	next  http.Handler
	reads map[string]chan struct{} // made before serving, only read after
}

func newReadProbe(next http.Handler, names ...string) *readProbe {
	p := &readProbe{next: next, reads: map[string]chan struct{}{}}
	for _, n := range names {
		p.reads[n] = make(chan struct{})
	}
	return p
}

func (p *readProbe) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if c, ok := p.reads[r.Header.Get("X-Probe")]; ok {
		r.Body = &probedBody{ReadCloser: r.Body, read: c}
	}
	p.next.ServeHTTP(w, r)
}

type probedBody struct {
	io.ReadCloser
	read chan struct{}
	once sync.Once
}

func (b *probedBody) Read(p []byte) (int, error) {
	b.once.Do(func() { close(b.read) })
	return b.ReadCloser.Read(p)
}

func postBody(url, probe string, body io.Reader, size int64) (int, error) {
	req, err := http.NewRequest(http.MethodPost, url+"/v1/commands/", body)
	if err != nil {
		return 0, err
	}
	req.Header.Set("X-Probe", probe)
	req.ContentLength = size
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, nil
}

func TestOneLargeBodyAtATime(t *testing.T) {
	api := newTestAgent(t, "ipa-standalone=1").Handler().(*apiServer)
	probe := newReadProbe(api, "first", "second")
	srv := httptest.NewServer(probe)
	t.Cleanup(srv.Close)

	first := newGatedBody(3 << 20)
	var openFirst sync.Once
	release := func() { openFirst.Do(func() { close(first.gate) }) }
	t.Cleanup(release) // srv.Close waits for the first handler
	firstDone := make(chan int, 1)
	go func() {
		code, err := postBody(srv.URL, "first", first, first.len())
		if err != nil {
			t.Error(err)
		}
		firstDone <- code
	}()
	// The first body is being read: it holds the turn.
	select {
	case <-probe.reads["first"]:
	case <-time.After(10 * time.Second):
		t.Fatal("the first large body was never read")
	}

	second := newGatedBody(2 << 20)
	close(second.gate)
	secondDone := make(chan int, 1)
	go func() {
		code, err := postBody(srv.URL, "second", second, second.len())
		if err != nil {
			t.Error(err)
		}
		secondDone <- code
	}()

	// Small bodies do not wait for the large one.
	small := `{"name": "standby.sync", "params": {}}`
	code, err := postBody(srv.URL, "small", strings.NewReader(small), int64(len(small)))
	require.NoError(t, err)
	assert.Equal(t, 200, code)

	// The second large body is not read while the first is.
	select {
	case <-probe.reads["second"]:
		t.Fatal("a second large body was read while the first one was")
	case <-time.After(300 * time.Millisecond):
	}
	release()
	assert.Equal(t, 200, waitCode(t, firstDone))
	assert.Equal(t, 200, waitCode(t, secondDone))
}

func TestLargeBodyWaitIsBounded(t *testing.T) {
	api := newTestAgent(t, "ipa-standalone=1").Handler().(*apiServer)
	api.bodies.LargeWait = 200 * time.Millisecond
	probe := newReadProbe(api, "first", "second")
	srv := httptest.NewServer(probe)
	t.Cleanup(srv.Close)

	first := newGatedBody(2 << 20)
	var openFirst sync.Once
	release := func() { openFirst.Do(func() { close(first.gate) }) }
	t.Cleanup(release)
	firstDone := make(chan int, 1)
	go func() {
		code, _ := postBody(srv.URL, "first", first, first.len())
		firstDone <- code
	}()
	select {
	case <-probe.reads["first"]:
	case <-time.After(10 * time.Second):
		t.Fatal("the first large body was never read")
	}

	// A body with no length counts as large: it waits, then gets 503
	// without having been read.
	second := newGatedBody(2 << 20)
	close(second.gate)
	code, err := postBody(srv.URL, "second", second, -1)
	require.NoError(t, err)
	assert.Equal(t, http.StatusServiceUnavailable, code)
	select {
	case <-probe.reads["second"]:
		t.Error("the refused body was read")
	default:
	}

	release()
	assert.Equal(t, 200, waitCode(t, firstDone))
	// The turn was given back: a large body goes through again.
	third := newGatedBody(2 << 20)
	close(third.gate)
	code, err = postBody(srv.URL, "third", third, third.len())
	require.NoError(t, err)
	assert.Equal(t, 200, code)
}

func waitCode(t *testing.T, c chan int) int {
	t.Helper()
	select {
	case code := <-c:
		return code
	case <-time.After(20 * time.Second):
		t.Fatal("request did not finish")
		return 0
	}
}

// BenchmarkLargeBody decodes a config-drive-sized body; -benchmem shows
// the bytes allocated per body next to its size.
func BenchmarkLargeBody(b *testing.B) {
	cfg, err := ParseConfig("ipa-standalone=1", nil)
	require.NoError(b, err)
	a, err := New(cfg, WithLogger(quietLogger()), WithHardware(fakeHardware{}))
	require.NoError(b, err)
	h := a.Handler()
	size := 32 << 20
	body := []byte(fmt.Sprintf(`{"name": "standby.nope", "params": {"configdrive": "%s"}}`, strings.Repeat("A", size)))
	b.SetBytes(int64(len(body)))
	b.ResetTimer()
	for b.Loop() {
		req := httptest.NewRequest(http.MethodPost, "/v1/commands/", bytes.NewReader(body))
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != 400 {
			b.Fatalf("status %d", rec.Code)
		}
	}
}
