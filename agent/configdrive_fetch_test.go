package agent

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"errors"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/goipa/goipa/disk"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestConfigDriveServerCannotHangOrExhaust: a config drive URL whose
// server stalls mid-body fails after ipa-image-download-connection-timeout;
// one that sends more than the 64 MiB drive (raw, as base64 text, or as
// an endless gzip bomb) is refused at the limit with the allocations of
// the whole fetch bounded near the drive's own size, not the body's;
// Ironic's base64-of-gzip behind a URL decodes.
func TestConfigDriveServerCannotHangOrExhaust(t *testing.T) {
	iso := append(make([]byte, 32<<10), []byte("CD001")...)
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(iso)
	zw.Close()
	ironics := base64.StdEncoding.EncodeToString(gz.Bytes())
	zeros := make([]byte, 64<<10)
	aaaa := bytes.Repeat([]byte("AAAA"), 16<<10)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		endless := func(w interface{ Write([]byte) (int, error) }, b []byte) {
			for r.Context().Err() == nil {
				if _, err := w.Write(b); err != nil {
					return
				}
			}
		}
		switch r.URL.Path {
		case "/ironic":
			w.Write([]byte(ironics))
		case "/stall":
			w.Header().Set("Content-Length", "1048576")
			w.Write([]byte(ironics[:100]))
			w.(http.Flusher).Flush()
			<-r.Context().Done()
		case "/endless":
			endless(w, zeros)
		case "/endless-base64":
			endless(w, aaaa)
		case "/bomb":
			zw, _ := gzip.NewWriterLevel(w, gzip.BestSpeed)
			endless(zw, zeros)
		}
	}))
	defer srv.Close()
	fd := &fakeDeploy{}
	a := newTestAgent(t, "ipa-standalone=1 ipa-image-download-connection-timeout=1", WithDeploy(fd, fd, fd))
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()

	got, err := a.deploy.fetchConfigDrive(ctx, srv.URL+"/ironic", nil)
	require.NoError(t, err)
	assert.Equal(t, iso, got, "base64 of gzip behind a URL, as Ironic stores it")

	_, err = a.deploy.fetchConfigDrive(ctx, srv.URL+"/stall", nil)
	require.Error(t, err)
	require.NoError(t, ctx.Err(), "the fetch ended by the test's deadline, not the agent's timeout")

	for _, path := range []string{"/endless", "/endless-base64", "/bomb"} {
		t.Run(path, func(t *testing.T) {
			runtime.GC()
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			_, err := a.deploy.fetchConfigDrive(ctx, srv.URL+path, nil)
			runtime.ReadMemStats(&after)
			var ae *Error
			require.True(t, errors.As(err, &ae), "%v", err)
			assert.Equal(t, "InvalidCommandParamsError", ae.Type)
			assert.True(t, strings.Contains(ae.Details, "larger than 64 MiB"), ae.Details)
			// io.ReadAll doubles its buffer up to the 64 MiB drive: about
			// twice the drive in all, whatever the server sends.
			alloc := after.TotalAlloc - before.TotalAlloc
			t.Logf("%s: %d MiB allocated", path, alloc>>20)
			if !raceDetector { // the detector's own allocations double the figure
				assert.Less(t, alloc, uint64(3*disk.ConfigDriveSize), "allocations grow with the body")
			}
		})
	}
}
