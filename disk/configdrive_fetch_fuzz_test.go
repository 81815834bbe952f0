package disk

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"errors"
	"testing"
)

// FuzzFetchConfigDrive: Ironic's config drive string (base64 of a
// gzipped ISO, or the bytes as they are) is decoded without a panic into
// at most ConfigDriveSize bytes, never empty; a gzip bomb stops at the
// limit.
func FuzzFetchConfigDrive(f *testing.F) {
	gz := func(b []byte) []byte {
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		zw.Write(b)
		zw.Close()
		return buf.Bytes()
	}
	iso := append(make([]byte, 32768), []byte("\x01CD001\x01")...)
	f.Add(base64.StdEncoding.EncodeToString(gz(iso)))
	f.Add(base64.StdEncoding.EncodeToString(iso))
	f.Add(string(gz(iso)))
	f.Add("not base64 at all")
	f.Add(" H4sI ")
	f.Add("\x1f\x8b")
	f.Add(base64.StdEncoding.EncodeToString(gz(make([]byte, 1<<20))))
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		if len(s) >= 7 && (s[:7] == "http://" || len(s) >= 8 && s[:8] == "https://") {
			return // a URL is fetched, not decoded
		}
		out, err := FetchConfigDrive(context.Background(), s, nil)
		if err != nil {
			if bad := (*ConfigDriveError)(nil); !errors.As(err, &bad) {
				t.Fatalf("refusal is not a ConfigDriveError: %v", err)
			}
			return
		}
		if len(out) == 0 || len(out) > ConfigDriveSize {
			t.Fatalf("config drive of %d bytes accepted", len(out))
		}
	})
}
