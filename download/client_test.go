package download

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// caFile writes the test server's certificate (its own private CA) as a
// PEM bundle.
func caFile(t *testing.T, srv *httptest.Server) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "ca.pem")
	require.NoError(t, os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o644))
	return p
}

func get(t *testing.T, c *http.Client, u string) (string, error) {
	t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

// TestCA: a server whose certificate comes from a private CA is trusted
// with that CA and only then (or when told not to verify).
func TestCA(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	t.Cleanup(srv.Close)

	c, err := NewClient()
	require.NoError(t, err)
	_, err = get(t, c, srv.URL)
	var unknown x509.UnknownAuthorityError
	require.ErrorAs(t, err, &unknown, "without the CA the certificate is not trusted")

	c, err = NewClient(WithCA(caFile(t, srv)))
	require.NoError(t, err)
	body, err := get(t, c, srv.URL)
	require.NoError(t, err)
	assert.Equal(t, "ok", body)

	c, err = NewClient(WithInsecure(true), WithInsecure(false))
	require.NoError(t, err)
	_, err = get(t, c, srv.URL)
	assert.NoError(t, err, "a later false does not undo insecure")

	for name, content := range map[string]string{"missing": "", "not PEM": "junk"} {
		p := filepath.Join(t.TempDir(), "ca.pem")
		if content != "" {
			require.NoError(t, os.WriteFile(p, []byte(content), 0o644))
		}
		_, err := NewClient(WithCA(p))
		var ce *CAError
		require.ErrorAs(t, err, &ce, name)
		assert.Equal(t, p, ce.File)
	}
}

// TestClientCert: a server that demands a client certificate gets the
// one configured.
func TestClientCert(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "goipa-test-client"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	kb, err := x509.MarshalECPrivateKey(key)
	require.NoError(t, err)
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "c.pem"), filepath.Join(dir, "k.pem")
	require.NoError(t, os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600))
	require.NoError(t, os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600))

	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, r.TLS.PeerCertificates[0].Subject.CommonName)
	}))
	srv.TLS = &tls.Config{ClientAuth: tls.RequireAnyClientCert}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	ca := caFile(t, srv)

	c, err := NewClient(WithCA(ca))
	require.NoError(t, err)
	_, err = get(t, c, srv.URL)
	assert.Error(t, err, "no client certificate")

	c, err = NewClient(WithCA(ca), WithClientCert(certFile, keyFile))
	require.NoError(t, err)
	body, err := get(t, c, srv.URL)
	require.NoError(t, err)
	assert.Equal(t, "goipa-test-client", body)

	_, err = NewClient(WithClientCert(certFile, filepath.Join(dir, "missing.pem")))
	var cce *ClientCertError
	assert.ErrorAs(t, err, &cce)
}

// proxy answers every request it is sent as a forward proxy would,
// naming the URL it was asked for, and counts them.
type asked struct {
	mu   sync.Mutex
	urls []string
}

func (a *asked) list() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.urls...)
}

func proxy(t *testing.T) (*httptest.Server, *asked) {
	seen := &asked{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen.mu.Lock()
		seen.urls = append(seen.urls, r.URL.String())
		seen.mu.Unlock()
		io.WriteString(w, "via proxy")
	}))
	t.Cleanup(srv.Close)
	return srv, seen
}

// TestProxies: HTTP_PROXY from the environment is honoured, Ironic's
// proxies override it, NO_PROXY and image_info's no_proxy are obeyed.
// The target host is never looked up or reached: only the proxy (on
// loopback) is, and the no_proxy case asks the transport which proxy it
// would use without connecting.
func TestProxies(t *testing.T) {
	envProxy, envSeen := proxy(t)
	ironicProxy, ironicSeen := proxy(t)
	t.Setenv("HTTP_PROXY", envProxy.URL)
	t.Setenv("http_proxy", envProxy.URL)
	t.Setenv("NO_PROXY", "")
	t.Setenv("no_proxy", "")
	const target = "http://images.goipa.invalid/configdrive"

	c, err := NewClient()
	require.NoError(t, err)
	body, err := get(t, c, target)
	require.NoError(t, err)
	assert.Equal(t, "via proxy", body)
	assert.Equal(t, []string{target}, envSeen.list(), "the environment's proxy was asked")

	c, err = NewClient(WithProxies(map[string]string{"http": ironicProxy.URL}, ""))
	require.NoError(t, err)
	_, err = get(t, c, target)
	require.NoError(t, err)
	assert.Equal(t, []string{target}, ironicSeen.list(), "image_info's proxy wins")
	assert.Len(t, envSeen.list(), 1)

	proxyFor := func(c *http.Client, u string) *url.URL {
		req, err := http.NewRequest(http.MethodGet, u, nil)
		require.NoError(t, err)
		p, err := c.Transport.(*http.Transport).Proxy(req)
		require.NoError(t, err)
		return p
	}
	c, err = NewClient(WithProxies(map[string]string{"http": ironicProxy.URL}, "goipa.invalid"))
	require.NoError(t, err)
	assert.Nil(t, proxyFor(c, target), "image_info's no_proxy")
	assert.Equal(t, ironicProxy.URL, "http://"+proxyFor(c, "http://other.example/x").Host)

	t.Setenv("NO_PROXY", ".goipa.invalid")
	t.Setenv("no_proxy", ".goipa.invalid")
	c, err = NewClient()
	require.NoError(t, err)
	assert.Nil(t, proxyFor(c, target), "the environment's NO_PROXY")
	assert.Equal(t, envProxy.URL, "http://"+proxyFor(c, "http://other.example/x").Host)
}

// TestStalledServerTimesOut: a server that sends headers and part of a
// body, then nothing, fails the read after the timeout instead of
// hanging; one that never answers fails the same way.
func TestStalledServerTimesOut(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/silent" {
			<-release
			return
		}
		w.Header().Set("Content-Length", "1000")
		io.WriteString(w, "first bytes")
		w.(http.Flusher).Flush()
		<-release
	}))
	t.Cleanup(func() { close(release); srv.Close() })
	c, err := NewClient(WithTimeout(300 * time.Millisecond))
	require.NoError(t, err)

	done := make(chan error, 2)
	go func() { _, err := get(t, c, srv.URL+"/stall"); done <- err }()
	go func() { _, err := get(t, c, srv.URL+"/silent"); done <- err }()
	for range 2 {
		select {
		case err := <-done:
			require.Error(t, err)
			var ne net.Error
			assert.True(t, errors.As(err, &ne) && ne.Timeout(), "a timeout: %v", err)
		case <-time.After(20 * time.Second):
			t.Fatal("a stalled request did not time out")
		}
	}
}

// TestRequestTimeout bounds a whole request that keeps trickling.
func TestRequestTimeout(t *testing.T) {
	stop := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for {
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
				io.WriteString(w, ".")
				w.(http.Flusher).Flush()
			}
		}
	}))
	t.Cleanup(func() { close(stop); srv.Close() })
	c, err := NewClient(WithTimeout(5*time.Second), WithRequestTimeout(400*time.Millisecond))
	require.NoError(t, err)
	_, err = get(t, c, srv.URL)
	var ne net.Error
	require.ErrorAs(t, err, &ne)
	assert.True(t, ne.Timeout())
}
