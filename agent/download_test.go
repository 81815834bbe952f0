package agent

import (
	"bytes"
	"compress/gzip"
	"encoding/pem"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/goipa/goipa/injectfiles"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The config drive and inject_files downloads use the image's client
// (package download): ipa-cafile, proxies and timeouts. Before, they
// used Go's default client, which knew none of them.

func gzipped(t *testing.T, b []byte) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	_, err := zw.Write(b)
	require.NoError(t, err)
	require.NoError(t, zw.Close())
	return buf.Bytes()
}

// TestConfigDriveFetchUsesTheCA: a config drive served with a
// certificate from a private CA is fetched only when ipa-cafile names
// that CA.
func TestConfigDriveFetchUsesTheCA(t *testing.T) {
	iso := append([]byte("CD001 config drive"), make([]byte, 4096)...)
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(gzipped(t, iso)) }))
	t.Cleanup(srv.Close)
	ca := filepath.Join(t.TempDir(), "ca.pem")
	require.NoError(t, os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o644))

	without := newTestAgent(t, "ipa-standalone=1")
	_, err := (&deployer{a: without}).fetchConfigDrive(t.Context(), srv.URL+"/cd", nil)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "certificate", "the private CA is unknown without ipa-cafile")

	with := newTestAgent(t, "ipa-standalone=1 ipa-cafile="+ca)
	got, err := (&deployer{a: with}).fetchConfigDrive(t.Context(), srv.URL+"/cd", nil)
	require.NoError(t, err)
	assert.Equal(t, iso, got)
}

// TestConfigDriveFetchHonoursProxies: the environment's proxy, then
// image_info's, carry the config drive download.
func TestConfigDriveFetchHonoursProxies(t *testing.T) {
	iso := []byte("config drive via a proxy")
	var envHits, iiHits atomic.Int32
	proxy := func(hits *atomic.Int32) *httptest.Server {
		s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Host != "configdrive.goipa.invalid" {
				http.Error(w, "unexpected "+r.URL.String(), http.StatusBadGateway)
				return
			}
			hits.Add(1)
			w.Write(gzipped(t, iso))
		}))
		t.Cleanup(s.Close)
		return s
	}
	envProxy, iiProxy := proxy(&envHits), proxy(&iiHits)
	for _, k := range []string{"HTTP_PROXY", "http_proxy"} {
		t.Setenv(k, envProxy.URL)
	}
	for _, k := range []string{"NO_PROXY", "no_proxy"} {
		t.Setenv(k, "")
	}
	a := newTestAgent(t, "ipa-standalone=1")
	got, err := (&deployer{a: a}).fetchConfigDrive(t.Context(), "http://configdrive.goipa.invalid/cd", nil)
	require.NoError(t, err)
	assert.Equal(t, iso, got)
	assert.Equal(t, int32(1), envHits.Load())

	got, err = (&deployer{a: a}).fetchConfigDrive(t.Context(), "http://configdrive.goipa.invalid/cd", &ImageInfo{Proxies: map[string]string{"http": iiProxy.URL}})
	require.NoError(t, err)
	assert.Equal(t, iso, got)
	assert.Equal(t, int32(1), iiHits.Load(), "image_info's proxy wins")
	assert.Equal(t, int32(1), envHits.Load())
}

// TestConfigDriveFetchTimesOut: a server that stalls mid-body fails the
// download after ipa-image-download-connection-timeout instead of
// hanging the deploy.
func TestConfigDriveFetchTimesOut(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "100000")
		w.Write([]byte{0x1f, 0x8b})
		w.(http.Flusher).Flush()
		<-release
	}))
	t.Cleanup(func() { close(release); srv.Close() })
	a := newTestAgent(t, "ipa-standalone=1 ipa-image-download-connection-timeout=1")
	done := make(chan error, 1)
	go func() { _, err := (&deployer{a: a}).fetchConfigDrive(t.Context(), srv.URL, nil); done <- err }()
	select {
	case err := <-done:
		require.Error(t, err)
		assert.Contains(t, err.Error(), "timeout")
	case <-time.After(30 * time.Second):
		t.Fatal("the stalled config drive download did not time out")
	}
}

// TestInjectFilesDownloadClient: inject_files fetches with ipa-cafile,
// and verify_ca=false turns verification off.
func TestInjectFilesDownloadClient(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "injected") }))
	t.Cleanup(srv.Close)
	ca := filepath.Join(t.TempDir(), "ca.pem")
	require.NoError(t, os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o644))
	fetch := func(a *Agent, insecure bool) (string, error) {
		c, err := a.injectFilesClient(map[string]any{"verify_ca": !insecure})
		if err != nil {
			return "", err
		}
		resp, err := c.Get(srv.URL)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return string(b), err
	}
	_, err := fetch(newTestAgent(t, "ipa-standalone=1"), false)
	require.Error(t, err)
	assert.True(t, strings.Contains(err.Error(), "certificate"), "%v", err)
	body, err := fetch(newTestAgent(t, "ipa-standalone=1 ipa-cafile="+ca), false)
	require.NoError(t, err)
	assert.Equal(t, "injected", body)
	body, err = fetch(newTestAgent(t, "ipa-standalone=1"), true)
	require.NoError(t, err, "verify_ca=false")
	assert.Equal(t, "injected", body)
}

// TestInjectErrorClasses: package injectfiles' errors reach Ironic as
// IPA's classes with injectfiles' wording.
func TestInjectErrorClasses(t *testing.T) {
	_, err := injectfiles.Parse(nil, []any{map[string]any{"content": "aGk="}})
	var ae *Error
	require.ErrorAs(t, injectError(err), &ae)
	assert.Equal(t, "InvalidCommandParamsError", ae.Type)
	assert.Contains(t, ae.Details, "expected a path")

	require.ErrorAs(t, injectError(&injectfiles.NoPartitionError{Dir: "etc", Scanned: []string{"/dev/loop7p1"}}), &ae)
	assert.Equal(t, "DeviceNotFound", ae.Type)
	assert.Equal(t, "No partition found with path /etc, scanned: /dev/loop7p1", ae.Details)

	other := io.ErrUnexpectedEOF
	assert.Equal(t, other, injectError(other))
}

// TestConfigDriveDecodeErrors: disk's config drive errors reach Ironic
// as InvalidCommandParamsError.
func TestConfigDriveDecodeErrors(t *testing.T) {
	a := newTestAgent(t, "ipa-standalone=1")
	_, err := (&deployer{a: a}).fetchConfigDrive(t.Context(), "H4sIAAAA", nil) // gzip magic, then nothing
	var ae *Error
	require.ErrorAs(t, err, &ae)
	assert.Equal(t, "InvalidCommandParamsError", ae.Type)
	assert.Contains(t, ae.Details, "config drive is not valid gzip")
}
