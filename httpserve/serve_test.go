package httpserve

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/goipa/goipa/servertls"
)

func TestListen(t *testing.T) {
	// No host names: resolving one would ask a DNS server.
	for _, tc := range []struct {
		host string
		port int
		ok   bool
	}{
		{"127.0.0.1", 0, true},
		{"::", 0, true},         // IPv6, or 0.0.0.0 without it
		{"192.0.2.1", 0, false}, // not this machine's
		{"127.0.0.1", 70000, false},
	} {
		ln, err := Listen(tc.host, tc.port)
		if !tc.ok {
			assert.ErrorContains(t, err, "listen on", tc.host)
			continue
		}
		require.NoError(t, err, tc.host)
		ln.Close()
	}
}

func get(client *http.Client, url string) (string, error) {
	resp, err := client.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

func TestServe(t *testing.T) {
	cert, _, err := servertls.SelfSigned("127.0.0.1", "p256", time.Now())
	require.NoError(t, err)
	for _, tc := range []struct {
		name   string
		tls    *tls.Config
		scheme string
		client *http.Client
	}{
		{"plain", nil, "http", &http.Client{Timeout: 5 * time.Second}},
		{"TLS", &tls.Config{Certificates: []tls.Certificate{cert}}, "https", &http.Client{Timeout: 5 * time.Second,
			Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ln, err := Listen("127.0.0.1", 0)
			require.NoError(t, err)
			srv := &http.Server{TLSConfig: tc.tls, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				io.WriteString(w, "served")
			})}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- Serve(ctx, srv, ln) }()
			url := tc.scheme + "://" + ln.Addr().String() + "/"
			body, err := get(tc.client, url)
			require.NoError(t, err)
			assert.Equal(t, "served", body)

			cancel()
			select {
			case err := <-done:
				assert.NoError(t, err, "a context that ends is a clean stop")
			case <-time.After(ShutdownWait + 5*time.Second):
				t.Fatal("Serve did not return after its context ended")
			}
			_, err = net.DialTimeout("tcp", ln.Addr().String(), time.Second)
			assert.Error(t, err, "the listener is closed")
		})
	}
}

func TestServeReportsAFailedListener(t *testing.T) {
	ln, err := Listen("127.0.0.1", 0)
	require.NoError(t, err)
	ln.Close()
	err = Serve(context.Background(), &http.Server{}, ln)
	assert.Error(t, err)
}
