package httpserve

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// command is the shape the agent decodes its bodies into.
type command struct {
	Name   *string        `json:"name"`
	Params map[string]any `json:"params"`
}

// untouchableBody fails the test if anything reads it.
type untouchableBody struct{ t *testing.T }

func (b untouchableBody) Read([]byte) (int, error) {
	b.t.Error("a body that should have been refused unread was read")
	return 0, io.ErrUnexpectedEOF
}
func (untouchableBody) Close() error { return nil }

func request(body io.Reader, length int64) *http.Request {
	r := httptest.NewRequest(http.MethodPost, "/", body)
	r.ContentLength = length
	return r
}

func TestDecodeJSON(t *testing.T) {
	const obj = `{"name": "standby.sync", "params": {}}`
	for _, tc := range []struct {
		name    string
		body    string
		chunked bool  // no Content-Length
		want    error // nil, one of the package's errors, or errType
	}{
		{"object alone", obj, false, nil},
		{"trailing white space", obj + " \n\t\r\n", false, nil},
		{"leading white space", " \n" + obj, false, nil},
		{"chunked object", obj, true, nil},
		{"trailing word", obj + " garbage", false, ErrTrailingData},
		{"second object", obj + obj, false, ErrTrailingData},
		{"trailing number", obj + "1", false, ErrTrailingData},
		{"trailing bracket", obj + "}", false, ErrTrailingData},
		{"trailing NUL", obj + "\x00", false, ErrTrailingData},
		{"chunked trailing data", obj + "x", true, ErrTrailingData},
		{"wrong types", `{"name": 5, "params": []}`, false, errType},
		{"cut short", `{"name": "a`, false, errSyntax},
		{"over the limit, chunked", `{"name": "` + strings.Repeat("a", 200) + `"}`, true, ErrTooLarge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := NewBodies(100, 50, time.Second)
			length := int64(len(tc.body))
			if tc.chunked {
				length = -1
			}
			var got command
			release, err := b.DecodeJSON(httptest.NewRecorder(), request(strings.NewReader(tc.body), length), &got)
			require.NotNil(t, release)
			release()
			switch tc.want {
			case nil:
				require.NoError(t, err)
				assert.Equal(t, "standby.sync", *got.Name)
				assert.Equal(t, map[string]any{}, got.Params)
			case errType:
				var typeErr *json.UnmarshalTypeError
				assert.ErrorAs(t, err, &typeErr)
			case errSyntax:
				var syntax *json.SyntaxError
				assert.ErrorAs(t, err, &syntax)
				assert.NotErrorIs(t, err, ErrTrailingData)
			default:
				assert.ErrorIs(t, err, tc.want)
			}
		})
	}
}

// Marker values for TestDecodeJSON's table: encoding/json's errors.
var (
	errType   = errors.New("a json.UnmarshalTypeError")
	errSyntax = errors.New("a json.SyntaxError")
)

func TestOversizedContentLengthRefusedBeforeReading(t *testing.T) {
	b := NewBodies(128<<20, 1<<20, time.Second)
	for _, size := range []int64{128<<20 + 1, 256 << 20, 1 << 40} {
		r := request(nil, size)
		r.Body = untouchableBody{t}
		var v any
		_, err := b.DecodeJSON(httptest.NewRecorder(), r, &v)
		assert.ErrorIs(t, err, ErrTooLarge, "size %d", size)
	}
}

// gatedReader hands out its first half at once and the rest only once
// the gate is closed; started is closed at the first read.
type gatedReader struct {
	head, tail []byte
	gate       chan struct{}
	started    chan struct{}
	once       sync.Once
}

func newGatedReader(size int) *gatedReader {
	full := []byte(`"` + strings.Repeat("A", size-2) + `"`)
	return &gatedReader{head: full[:size/2], tail: full[size/2:], gate: make(chan struct{}), started: make(chan struct{})}
}

func (g *gatedReader) Read(p []byte) (int, error) {
	if len(g.head) > 0 {
		g.once.Do(func() { close(g.started) })
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

type decoded struct {
	release func()
	err     error
}

func decodeAsync(b *Bodies, body io.Reader, length int64) chan decoded {
	done := make(chan decoded, 1)
	go func() {
		var v string
		release, err := b.DecodeJSON(httptest.NewRecorder(), request(body, length), &v)
		done <- decoded{release, err}
	}()
	return done
}

func wait(t *testing.T, c chan decoded) decoded {
	t.Helper()
	select {
	case d := <-c:
		return d
	case <-time.After(10 * time.Second):
		t.Fatal("DecodeJSON did not return")
		return decoded{}
	}
}

func TestOneLargeBodyAtATime(t *testing.T) {
	b := NewBodies(1<<20, 1000, time.Minute)
	first := newGatedReader(4000)
	firstDone := decodeAsync(b, first, 4000)
	<-first.started

	// Small bodies do not wait for the large one.
	var v string
	release, err := b.DecodeJSON(httptest.NewRecorder(), request(strings.NewReader(`"small"`), 7), &v)
	require.NoError(t, err)
	release()

	// A second large body (or one of unknown length) waits for the turn.
	second := newGatedReader(3000)
	close(second.gate)
	secondDone := decodeAsync(b, second, -1)
	select {
	case <-second.started:
		t.Fatal("a second large body was read while the first one was")
	case <-time.After(300 * time.Millisecond):
	}

	// Decoding is not the end of the turn: the caller releases it once the
	// value is handed on.
	close(first.gate)
	d := wait(t, firstDone)
	require.NoError(t, d.err)
	select {
	case <-second.started:
		t.Fatal("the turn passed on before the first body was released")
	case <-time.After(100 * time.Millisecond):
	}
	d.release()
	d.release() // twice is harmless
	d = wait(t, secondDone)
	require.NoError(t, d.err)
	d.release()
}

func TestLargeBodyWaitIsBounded(t *testing.T) {
	b := NewBodies(1<<20, 1000, 200*time.Millisecond)
	first := newGatedReader(2000)
	firstDone := decodeAsync(b, first, 2000)
	<-first.started

	second := newGatedReader(2000)
	close(second.gate)
	d := wait(t, decodeAsync(b, second, 2000))
	assert.ErrorIs(t, d.err, ErrBusy)
	assert.ErrorIs(t, d.err, context.DeadlineExceeded)
	require.NotNil(t, d.release, "release is never nil")
	select {
	case <-second.started:
		t.Error("the refused body was read")
	default:
	}

	close(first.gate)
	d = wait(t, firstDone)
	require.NoError(t, d.err)
	d.release()
	// The turn was given back: a large body goes through again.
	third := newGatedReader(2000)
	close(third.gate)
	d = wait(t, decodeAsync(b, third, 2000))
	require.NoError(t, d.err)
	d.release()
}

// A body that fails to decode gives the turn back by itself.
func TestFailedLargeBodyGivesTheTurnBack(t *testing.T) {
	b := NewBodies(1<<20, 10, 100*time.Millisecond)
	for i := 0; i < 3; i++ {
		var v map[string]any
		_, err := b.DecodeJSON(httptest.NewRecorder(), request(strings.NewReader(`{"a": "long enough"} x`), -1), &v)
		assert.ErrorIs(t, err, ErrTrailingData, "attempt %d", i)
	}
}

// FuzzDecode: whatever the bytes, decoding a body never panics, accepts
// only one whole JSON value (white space around it), and calls data
// "trailing" only when a whole JSON value comes before it.
func FuzzDecode(f *testing.F) {
	for _, s := range []string{
		`{"name": "standby.sync", "params": {}}`,
		`{"name": "standby.prepare_image", "params": {"image_info": {"id": "x", "urls": ["http://a"]}, "configdrive": "H4sI"}}`,
		`{"name": "x", "params": {}} garbage`,
		`{"name": "x", "params": {}}{"name": "y", "params": {}}`,
		`{"name": 5, "params": []}`,
		`{"name": "x", "params": null}`,
		`[1, 2]`, `"just a string"`, `{`, `{"a": "\ud800"}`, " \n{\"name\":\"a.b\",\"params\":{}}\n ",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var req command
		err := decode(body{data: data}, &req)
		var typeErr *json.UnmarshalTypeError
		switch {
		case err == nil:
			if !json.Valid(data) {
				t.Fatalf("accepted %q, which is not one JSON value", data)
			}
		case errors.Is(err, ErrTrailingData):
			if json.Valid(data) {
				t.Fatalf("valid JSON %q called trailing data", data)
			}
		case errors.As(err, &typeErr):
			if !json.Valid(data) {
				t.Fatalf("type error for invalid JSON %q", data)
			}
		default:
			if json.Valid(data) && bytes.HasPrefix(bytes.TrimSpace(data), []byte("{")) {
				t.Fatalf("valid JSON object %q refused: %v", data, err)
			}
		}
	})
}
