package image

import (
	"context"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
)

func TestOpenChecked(t *testing.T) {
	path := filepath.Join(t.TempDir(), "fw.bin")
	data := []byte("firmware image bytes")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	sum := sha512.Sum512(data)
	good := Checksum{Algo: "sha512", Value: hex.EncodeToString(sum[:])}
	for _, tc := range []struct {
		name string
		sum  Checksum
		ok   bool
	}{
		{"match", good, true},
		{"mismatch", Checksum{Algo: "sha512", Value: hex.EncodeToString(make([]byte, 64))}, false},
	} {
		rc, err := OpenChecked(context.Background(), &FileSource{Path: path}, Retry{}, tc.sum, nil)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(rc)
		rc.Close()
		var mm *ChecksumMismatchError
		if tc.ok && (err != nil || string(got) != string(data)) {
			t.Errorf("%s: %v, %q", tc.name, err, got)
		}
		if !tc.ok && !errors.As(err, &mm) {
			t.Errorf("%s: %v, want a ChecksumMismatchError in place of EOF", tc.name, err)
		}
	}
	if _, err := OpenChecked(context.Background(), &FileSource{Path: path}, Retry{}, Checksum{Algo: "crc32"}, nil); err == nil {
		t.Error("an unknown algorithm was accepted")
	}
}
