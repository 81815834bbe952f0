package ironicapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseVersion(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Version
		err  bool
	}{
		{"1.68", Version{1, 68}, false},
		{" 1.115 ", Version{1, 115}, false},
		{"2.0", Version{2, 0}, false},
		{"1", Version{}, true},
		{"one.two", Version{}, true},
		{"1.-1", Version{}, true},
		{"1.2.3", Version{}, true},
		{"", Version{}, true},
	} {
		got, err := ParseVersion(tc.in)
		if tc.err {
			assert.Error(t, err, "%q", tc.in)
			continue
		}
		require.NoError(t, err, "%q", tc.in)
		assert.Equal(t, tc.want, got, "%q", tc.in)
		assert.Equal(t, strings.TrimSpace(tc.in), got.String())
	}
}

func TestVersionCompareAndCap(t *testing.T) {
	for _, tc := range []struct {
		server, wanted string
		atLeast        bool
		capped         string
	}{
		{"1.115", "1.62", true, "1.62"},
		{"1.62", "1.62", true, "1.62"},
		{"1.50", "1.68", false, "1.50"},
		{"1.9", "1.10", false, "1.9"}, // compared as numbers, not text
		{"2.1", "1.68", true, "1.68"},
	} {
		v, err := ParseVersion(tc.server)
		require.NoError(t, err)
		assert.Equal(t, tc.atLeast, v.AtLeast(tc.wanted), "%s >= %s", tc.server, tc.wanted)
		assert.Equal(t, tc.capped, v.Capped(tc.wanted), "%s capped at %s", tc.server, tc.wanted)
	}
}

func TestFaultStringUnpacksIronicErrors(t *testing.T) {
	for _, tc := range []struct{ body, want string }{
		{`{"error_message": "{\"faultcode\": \"Client\", \"faultstring\": \"Invalid or missing agent token received.\", \"debuginfo\": null}"}`,
			"Invalid or missing agent token received."},
		{`{"faultstring": "plain"}`, "plain"},
		{`{"error_message": {"faultstring": "an object"}}`, "an object"},
		{`{"error_message": "just text"}`, "just text"},
		{"not json\n", "not json"},
		{`{"other": 1}`, `{"other": 1}`},
	} {
		assert.Equal(t, tc.want, FaultString([]byte(tc.body)), tc.body)
	}
}

func TestDo(t *testing.T) {
	var got *http.Request
	var gotBody []byte
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r
		gotBody, _ = io.ReadAll(r.Body)
		switch r.URL.Path {
		case "/ok":
			w.WriteHeader(http.StatusAccepted)
			fmt.Fprint(w, `{"answer": 42}`)
		case "/empty":
			w.WriteHeader(http.StatusNoContent)
		case "/garbled":
			fmt.Fprint(w, `{"answer":`)
		default:
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprint(w, `{"error_message": "{\"faultcode\": \"Client\", \"faultstring\": \"no\", \"debuginfo\": null}"}`)
		}
	}))
	defer srv.Close()
	c := &Client{HTTP: srv.Client(), RequestID: "req-1"}
	ctx := context.Background()

	var out struct{ Answer int }
	require.NoError(t, c.Do(ctx, "heartbeat", http.MethodPost, srv.URL+"/ok", "1.68", map[string]any{"a": 1}, &out, http.StatusOK, http.StatusAccepted))
	assert.Equal(t, 42, out.Answer)
	assert.Equal(t, "1.68", got.Header.Get(VersionHeader))
	assert.Equal(t, "req-1", got.Header.Get(RequestIDHeader))
	assert.Equal(t, "application/json", got.Header.Get("Content-Type"))
	assert.Equal(t, "application/json", got.Header.Get("Accept"))
	assert.JSONEq(t, `{"a": 1}`, string(gotBody))

	require.NoError(t, c.Do(ctx, "callback", http.MethodGet, srv.URL+"/empty", "", nil, nil, http.StatusNoContent))
	assert.Empty(t, got.Header.Get(VersionHeader), "no version asked, no header")
	assert.Empty(t, got.Header.Get("Content-Type"), "no body, no type")

	err := c.Do(ctx, "lookup", http.MethodGet, srv.URL+"/refused", "1.62", nil, &out, http.StatusOK)
	var ie *Error
	require.True(t, errors.As(err, &ie), "%v", err)
	assert.Equal(t, &Error{Op: "lookup", Status: 400, FaultString: "no"}, ie)
	assert.Equal(t, "lookup: HTTP 400: no", err.Error())

	err = c.Do(ctx, "lookup", http.MethodGet, srv.URL+"/garbled", "", nil, &out, http.StatusOK)
	assert.ErrorContains(t, err, "lookup: malformed answer")

	err = c.Do(ctx, "lookup", http.MethodGet, "http://%zz", "", nil, nil, http.StatusOK)
	assert.ErrorContains(t, err, "lookup: ")
}

// FuzzFaultString: any body gives a string without panicking, and a
// faultstring wrapped as Ironic wraps it comes back as it was.
func FuzzFaultString(f *testing.F) {
	f.Add([]byte(`{"error_message": "{\"faultstring\": \"x\"}"}`), "x")
	f.Add([]byte(`not json`), "a b")
	f.Add([]byte(`{"error_message": {"faultstring": 5}}`), "")
	f.Fuzz(func(t *testing.T, body []byte, fault string) {
		FaultString(body)
		if fault == "" {
			return
		}
		inner, _ := json.Marshal(map[string]any{"faultcode": "Client", "faultstring": fault, "debuginfo": nil})
		outer, _ := json.Marshal(map[string]any{"error_message": string(inner)})
		var want string
		json.Unmarshal(inner, &struct{ FaultString *string }{&want}) // as JSON carries it (invalid UTF-8 replaced)
		if got := FaultString(outer); got != want {
			t.Fatalf("faultstring %q came back as %q", want, got)
		}
	})
}

// FuzzParseVersion: whatever the text, ParseVersion never panics and what
// it accepts prints back as it reads.
func FuzzParseVersion(f *testing.F) {
	for _, s := range []string{"1.68", " 1.1 ", "1", "a.b", "-1.2", "1.99999999999999999999"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, err := ParseVersion(s)
		if err != nil {
			return
		}
		again, err := ParseVersion(v.String())
		if err != nil || again != v {
			t.Fatalf("%q read as %v, which reads back as %v (%v)", s, v, again, err)
		}
	})
}
