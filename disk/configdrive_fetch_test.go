package disk

import (
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestFetchConfigDrive(t *testing.T) {
	iso := append(make([]byte, 32<<10), []byte("CD001")...)
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(iso)
	zw.Close()
	ironics := base64.StdEncoding.EncodeToString(gz.Bytes())
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/ironic":
			w.Write([]byte(ironics))
		case "/raw":
			w.Write(iso)
		case "/empty":
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	clients := 0
	newClient := func() (*http.Client, error) { clients++; return srv.Client(), nil }
	for _, tt := range []struct {
		name, s   string
		want      []byte
		wantErr   string
		badDrive  bool // a *ConfigDriveError
		clientUse int
	}{
		{"base64 of gzip, as Ironic stores it", ironics, iso, "", false, 0},
		{"base64 with a newline around it", "\n" + ironics + "\n", iso, "", false, 0},
		{"not base64: the bytes as they are", "plain text drive", []byte("plain text drive"), "", false, 0},
		{"gzip magic, then nothing", "H4sIAAAA", nil, "config drive is not valid gzip", true, 0},
		{"empty", "", nil, "config drive is empty", true, 0},
		{"a URL serving base64 of gzip", srv.URL + "/ironic", iso, "", false, 1},
		{"a URL serving the ISO", srv.URL + "/raw", iso, "", false, 1},
		{"a URL serving nothing", srv.URL + "/empty", nil, "config drive is empty", true, 1},
		{"a URL that is not there", srv.URL + "/gone", nil, "downloading the config drive: HTTP 404", false, 1},
		{"a URL that does not parse", "http://[::1", nil, "config drive URL", true, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			clients = 0
			got, err := FetchConfigDrive(t.Context(), tt.s, newClient)
			if clients != tt.clientUse {
				t.Errorf("%d clients made, want %d", clients, tt.clientUse)
			}
			if tt.wantErr == "" {
				if err != nil || !bytes.Equal(got, tt.want) {
					t.Fatalf("FetchConfigDrive = %d bytes, %v; want %d bytes", len(got), err, len(tt.want))
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("FetchConfigDrive: %v; want %q", err, tt.wantErr)
			}
			if bad := (*ConfigDriveError)(nil); errors.As(err, &bad) != tt.badDrive {
				t.Errorf("%v: ConfigDriveError %v, want %v", err, !tt.badDrive, tt.badDrive)
			}
		})
	}
	_, err := FetchConfigDrive(t.Context(), srv.URL+"/raw", func() (*http.Client, error) { return nil, errors.New("bad CA") })
	if err == nil || !strings.Contains(err.Error(), "bad CA") {
		t.Errorf("a client that cannot be made: %v", err)
	}
}

func TestMBRSignature(t *testing.T) {
	dir := t.TempDir()
	for _, tt := range []struct {
		name string
		head []byte
		want uint32
		bad  bool
	}{
		{"a signature", append(append(make([]byte, 440), 0x78, 0x56, 0x34, 0x12), make([]byte, 68)...), 0x12345678, false},
		{"none", make([]byte, 512), 0, false},
		{"shorter than the MBR", make([]byte, 100), 0, true},
	} {
		dev := filepath.Join(dir, strings.ReplaceAll(tt.name, " ", "-"))
		if err := os.WriteFile(dev, tt.head, 0o644); err != nil {
			t.Fatal(err)
		}
		got, err := MBRSignature(dev)
		if (err != nil) != tt.bad || got != tt.want {
			t.Errorf("%s: MBRSignature = %#x, %v; want %#x", tt.name, got, err, tt.want)
		}
	}
	if _, err := MBRSignature(filepath.Join(dir, "gone")); err == nil {
		t.Error("a missing device has no signature")
	}
}
