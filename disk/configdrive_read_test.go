package disk

import (
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"errors"
	"io"
	"strings"
	"testing"
)

func gzipped(t testing.TB, b []byte) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(b)
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// endless repeats b for ever.
type endless struct {
	b   []byte
	off int
}

func (e *endless) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		c := copy(p[n:], e.b[e.off:])
		n += c
		e.off = (e.off + c) % len(e.b)
	}
	return n, nil
}

// gzipBomb is an endless gzip stream of zeros (its writer ends when the
// test does).
func gzipBomb(t testing.TB) io.Reader {
	pr, pw := io.Pipe()
	t.Cleanup(func() { pr.Close() })
	go func() {
		zw, _ := gzip.NewWriterLevel(pw, gzip.BestCompression)
		zeros := make([]byte, 1<<20)
		for {
			if _, err := zw.Write(zeros); err != nil {
				return
			}
		}
	}()
	return pr
}

func TestReadConfigDrive(t *testing.T) {
	iso := append(make([]byte, 32<<10), []byte("CD001 config-2")...)
	b64 := base64.StdEncoding.EncodeToString
	wrapped := func(s string) string { // base64 with line breaks, as files carry it
		var out strings.Builder
		for len(s) > 76 {
			out.WriteString(s[:76] + "\n")
			s = s[76:]
		}
		return out.String() + s + "\n"
	}
	for _, tc := range []struct {
		name string
		in   io.Reader
		want []byte
		err  string
	}{
		{"raw ISO", bytes.NewReader(iso), iso, ""},
		{"gzipped ISO", bytes.NewReader(gzipped(t, iso)), iso, ""},
		{"base64 of gzip (Ironic's)", strings.NewReader(b64(gzipped(t, iso))), iso, ""},
		{"base64 with line breaks and spaces", strings.NewReader(" " + wrapped(b64(gzipped(t, iso)))), iso, ""},
		{"base64 of the raw ISO", strings.NewReader(b64(iso)), iso, ""},
		{"empty", strings.NewReader(""), nil, "config drive is empty"},
		{"bad gzip", bytes.NewReader([]byte{0x1f, 0x8b, 0, 0}), nil, "not valid gzip"},
		{"raw, one byte over", io.LimitReader(&endless{b: []byte{0}}, ConfigDriveSize+1), nil, "config drive is larger than 64 MiB"},
		{"raw, endless", &endless{b: []byte{0}}, nil, "config drive is larger than 64 MiB"},
		{"gzip bomb", gzipBomb(t), nil, "config drive is larger than 64 MiB"},
		{"base64, endless", &endless{b: []byte("AAAA")}, nil, "config drive is larger than 64 MiB"},
		{"base64 of a gzip bomb", base64Pipe(t, gzipBomb(t)), nil, "config drive is larger than 64 MiB"},
		{"endless line breaks", io.MultiReader(strings.NewReader("QUFB"), &endless{b: []byte("\n")}), nil, "config drive download is larger than 93 MiB"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ReadConfigDrive(tc.in)
			if tc.err == "" {
				if err != nil || !bytes.Equal(got, tc.want) {
					t.Fatalf("ReadConfigDrive = %d bytes, %v; want %d bytes", len(got), err, len(tc.want))
				}
				return
			}
			var ce *ConfigDriveError
			if !errors.As(err, &ce) || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("ReadConfigDrive error %v, want a *ConfigDriveError saying %q", err, tc.err)
			}
		})
	}
}

func base64Pipe(t testing.TB, r io.Reader) io.Reader {
	pr, pw := io.Pipe()
	t.Cleanup(func() { pr.Close() })
	go func() {
		enc := base64.NewEncoder(base64.StdEncoding, pw)
		_, err := io.Copy(enc, r)
		pw.CloseWithError(err)
	}()
	return pr
}

// FuzzReadConfigDrive: whatever a server sends, ReadConfigDrive returns
// at most ConfigDriveSize bytes or a *ConfigDriveError, and never panics.
func FuzzReadConfigDrive(f *testing.F) {
	f.Add([]byte("H4sIAAAAAAAA/0tMTAQAAP//AwBTq0pBBAAAAA=="))
	f.Add(gzipped(f, []byte("iso")))
	f.Add([]byte{0, 0, 0})
	f.Add([]byte("  \n\t"))
	f.Add([]byte("QUFB=QUFB"))
	f.Fuzz(func(t *testing.T, in []byte) {
		iso, err := ReadConfigDrive(bytes.NewReader(in))
		if err != nil {
			var ce *ConfigDriveError
			if !errors.As(err, &ce) {
				t.Fatalf("error %v is not a *ConfigDriveError", err)
			}
			return
		}
		if len(iso) == 0 || len(iso) > ConfigDriveSize {
			t.Fatalf("%d bytes", len(iso))
		}
	})
}
