package bootc

import (
	"encoding/base64"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
)

func TestParseArgs(t *testing.T) {
	src := "oci://quay.io/fedora/fedora-bootc:42"
	for _, tt := range []struct {
		name       string
		args, node map[string]any
		want       Args // Keychain not compared
		bad        bool
	}{
		{"as Ironic sends it", map[string]any{"image_source": src, "configdrive": nil, "oci_pull_secret": nil}, nil, Args{ImageSource: src}, false},
		{"config drive and keys", map[string]any{"image_source": src, "configdrive": "H4sI"},
			map[string]any{"instance_info": map[string]any{"bootc_authorized_keys": "ssh-ed25519 AAAA user@host", "bootc_tpm2_luks": false}},
			Args{ImageSource: src, ConfigDrive: "H4sI", AuthorizedKeys: "ssh-ed25519 AAAA user@host"}, false},
		{"tpm2_luks \"False\" is off", map[string]any{"image_source": src}, map[string]any{"instance_info": map[string]any{"bootc_tpm2_luks": "False"}}, Args{ImageSource: src}, false},
		{"no image_source", map[string]any{}, nil, Args{}, true},
		{"empty image_source", map[string]any{"image_source": ""}, nil, Args{}, true},
		{"an HTTP image", map[string]any{"image_source": "http://example.com/disk.qcow2"}, nil, Args{}, true},
		{"no oci:// scheme", map[string]any{"image_source": "quay.io/fedora/fedora-bootc:42"}, nil, Args{}, true},
		{"config drive as a dict", map[string]any{"image_source": "oci://r/i", "configdrive": map[string]any{"meta_data": map[string]any{}}}, nil, Args{}, true},
		{"pull secret not a string", map[string]any{"image_source": "oci://r/i", "oci_pull_secret": 42}, nil, Args{}, true},
		{"pull secret not base64", map[string]any{"image_source": "oci://r/i", "oci_pull_secret": "%%%not base64"}, nil, Args{}, true},
		{"authorized keys not a string", map[string]any{"image_source": src}, map[string]any{"instance_info": map[string]any{"bootc_authorized_keys": []any{"k"}}}, Args{}, true},
		{"tpm2_luks refused: the disk would not be encrypted", map[string]any{"image_source": src}, map[string]any{"instance_info": map[string]any{"bootc_tpm2_luks": true}}, Args{}, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseArgs(tt.args, tt.node)
			if tt.bad {
				var inv *InvalidError
				if !errors.As(err, &inv) {
					t.Fatalf("ParseArgs = %+v, %v; want an InvalidError", got, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.Keychain == nil {
				t.Error("no keychain")
			}
			got.Keychain = nil
			if got != tt.want {
				t.Errorf("ParseArgs = %+v, want %+v", got, tt.want)
			}
		})
	}
	a, err := ParseArgs(map[string]any{"image_source": src}, nil)
	if err != nil || a.Keychain != authn.DefaultKeychain {
		t.Errorf("without a pull secret: %v, %v; want the default keychain", a.Keychain, err)
	}
}

// TestRootSSHTmpfiles: bootc_authorized_keys become a tmpfiles entry
// that makes root's authorized_keys at boot.
func TestRootSSHTmpfiles(t *testing.T) {
	conf := RootSSHTmpfiles("ssh-ed25519 AAAA user@host")
	want := "f~ /root/.ssh/authorized_keys 0600 root root - " + base64.StdEncoding.EncodeToString([]byte("ssh-ed25519 AAAA user@host\n")) + "\n"
	if !strings.Contains(conf, want) || !strings.Contains(conf, "d /root/.ssh 0700 root root -\n") {
		t.Errorf("tmpfiles:\n%s\nwant the line %q", conf, want)
	}
}
