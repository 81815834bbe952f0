package disk

import (
	"bytes"
	"compress/gzip"
	"errors"
	"testing"
)

func gz(t testing.TB, b []byte) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestDecodeConfigDrive(t *testing.T) {
	iso := bytes.Repeat([]byte("CD001"), 1000)
	for _, tc := range []struct {
		name string
		in   []byte
		want []byte
		err  string
	}{
		{"gzipped", gz(t, iso), iso, ""},
		{"plain", iso, iso, ""},
		{"empty", nil, nil, "config drive is empty"},
		{"gzip of nothing", gz(t, nil), nil, "config drive is empty"},
		{"broken gzip", []byte{0x1f, 0x8b, 8, 0, 0}, nil, "config drive is not valid gzip"},
		{"too large", gz(t, make([]byte, ConfigDriveSize+1)), nil, "config drive is larger than 64 MiB"},
		{"too large plain", make([]byte, ConfigDriveSize+1), nil, "config drive is larger than 64 MiB"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := DecodeConfigDrive(tc.in)
			if tc.err == "" {
				if err != nil || !bytes.Equal(got, tc.want) {
					t.Fatalf("DecodeConfigDrive = %d bytes, %v; want %d bytes", len(got), err, len(tc.want))
				}
				return
			}
			var ce *ConfigDriveError
			if !errors.As(err, &ce) || !bytes.Contains([]byte(ce.Details), []byte(tc.err)) {
				t.Fatalf("DecodeConfigDrive error %v, want a *ConfigDriveError saying %q", err, tc.err)
			}
		})
	}
}

func FuzzDecodeConfigDrive(f *testing.F) {
	f.Add(gz(f, []byte("CD001 config-2")))
	f.Add([]byte("CD001"))
	f.Add([]byte{0x1f, 0x8b})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, in []byte) {
		iso, err := DecodeConfigDrive(in)
		if err != nil {
			var ce *ConfigDriveError
			if !errors.As(err, &ce) {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		if len(iso) == 0 || len(iso) > ConfigDriveSize {
			t.Fatalf("accepted %d bytes", len(iso))
		}
	})
}
