package image

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

type fakeWriter struct {
	devices []string
	err     error
}

func (f *fakeWriter) WriteImage(ctx context.Context, ii *Info, device string, progress func(any)) error {
	f.devices = append(f.devices, device)
	return f.err
}

// TestDeployWholeDisk covers Deploy's whole-disk path and the refusals
// that come before a disk is touched; the partition image path is
// proven on loop devices (disk.WritePartitionImage) and in the end-to-end
// partition image test.
func TestDeployWholeDisk(t *testing.T) {
	whole := &Info{ID: "img"}
	for _, tt := range []struct {
		name        string
		ii          *Info
		iso         []byte
		writeErr    error
		cdErr       error
		want        any // nil, or a pointer to the error type
		wantText    string
		wantWrites  int
		wantCDWrite bool
	}{
		{"whole disk", whole, nil, nil, nil, nil, "", 1, false},
		{"whole disk and its config drive", whole, []byte("ISO"), nil, nil, nil, "", 1, true},
		{"the image fails", whole, []byte("ISO"), errors.New("checksum mismatch"), nil, new(*WriteError), "checksum mismatch", 1, false},
		{"the config drive fails", whole, []byte("ISO"), nil, errors.New("no space"), new(*ConfigDriveError), "config drive: no space", 1, true},
		{"preserve_ephemeral is refused before the disk is touched", &Info{ID: "p", ImageType: "partition", RootMB: 10, PreserveEphemeral: true}, nil, nil, nil,
			new(*WriteError), "preserve_ephemeral is not supported", 0, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			w := &fakeWriter{err: tt.writeErr}
			cdWritten := false
			cd := ConfigDriveFunc(func(ctx context.Context, device string, iso []byte) (string, error) {
				cdWritten = true
				return device + "p2", tt.cdErr
			})
			res, err := Deploy(t.Context(), w, cd, tt.ii, Target{Device: "/dev/loop7", ConfigDrive: tt.iso, BootMode: "bios", DiskLabel: "msdos"}, func(any) {}, nil)
			if len(w.devices) != tt.wantWrites || cdWritten != tt.wantCDWrite {
				t.Errorf("image written %d times, config drive %v; want %d, %v", len(w.devices), cdWritten, tt.wantWrites, tt.wantCDWrite)
			}
			if tt.want == nil {
				if err != nil || res.Device != "/dev/loop7" || res.Partitions != nil || res.RootUUID != "" {
					t.Fatalf("Deploy = %+v, %v", res, err)
				}
				return
			}
			if !errors.As(err, tt.want) || !strings.Contains(err.Error(), tt.wantText) {
				t.Fatalf("Deploy: %T %v; want %T with %q", err, err, tt.want, tt.wantText)
			}
		})
	}
}

// TestEngineRequest: image_info's proxies and server credentials and the
// lookup's checksum and format policy reach the write request beside the
// agent's settings.
func TestEngineRequest(t *testing.T) {
	lookup := map[string]any{}
	e := NewEngine(EngineConfig{HTTP: HTTPOptions{CAFile: "/ca.pem", Timeout: time.Minute, Parallel: 3}, Retry: Retry{Attempts: 2},
		MaxDuration: time.Hour, Lookup: func() map[string]any { return lookup }})
	ii := &Info{URLs: []string{"http://x/img"}, OSHashAlgo: "sha256", OSHashValue: "ab", Proxies: map[string]string{"http": "http://p"}, NoProxy: "10.0.0.1",
		AuthStrategy: "http_basic", User: "u", Password: "pw", RequestAuthorization: "QmVhcmVyIHQ="}
	req := e.Request(ii, "/dev/loop7")
	want := HTTPOptions{CAFile: "/ca.pem", Timeout: time.Minute, Parallel: 3, Proxies: ii.Proxies, NoProxy: "10.0.0.1",
		BasicUser: "u", BasicPassword: "pw", Authorization: "Bearer t"}
	if req.HTTP.CAFile != want.CAFile || req.HTTP.Timeout != want.Timeout || req.HTTP.Parallel != want.Parallel || req.HTTP.Proxies["http"] != "http://p" ||
		req.HTTP.NoProxy != want.NoProxy || req.HTTP.BasicUser != "u" || req.HTTP.BasicPassword != "pw" || req.HTTP.Authorization != want.Authorization {
		t.Errorf("HTTP options %+v, want %+v", req.HTTP, want)
	}
	if req.Device != "/dev/loop7" || req.Retry.Attempts != 2 || req.MaxDuration != time.Hour || req.Progress == nil {
		t.Errorf("request %+v", req)
	}
	if !req.Checksum.MD5Allowed || strings.Join(req.PermittedFormats, ",") != "raw,qcow2,iso" {
		t.Errorf("defaults: md5 %v, formats %v", req.Checksum.MD5Allowed, req.PermittedFormats)
	}
	lookup["agent_md5_checksum_enable"] = false
	lookup["permitted_image_formats"] = []any{"raw", 5}
	ii.AuthStrategy, ii.RequestAuthorization = "", "%%%"
	req = e.Request(ii, "/dev/loop7")
	if req.Checksum.MD5Allowed || strings.Join(req.PermittedFormats, ",") != "raw" {
		t.Errorf("lookup: md5 %v, formats %v", req.Checksum.MD5Allowed, req.PermittedFormats)
	}
	if req.HTTP.BasicUser != "" || req.HTTP.Authorization != "" {
		t.Errorf("credentials without their strategy, or undecodable: %+v", req.HTTP)
	}
	if len(e.Collectors()) != 5 {
		t.Errorf("%d collectors", len(e.Collectors()))
	}
}
