package agent

import (
	"encoding/base64"
	"errors"
	"strings"
	"testing"

	"github.com/goipa/goipa/bootc"
)

func TestParseBootcArgs(t *testing.T) {
	good := map[string]any{"image_source": "oci://quay.io/fedora/fedora-bootc:42", "configdrive": nil, "oci_pull_secret": nil}
	b, err := parseBootcArgs(good)
	if err != nil || b.imageSource != "oci://quay.io/fedora/fedora-bootc:42" || b.configdrive != "" || b.pullSecret != "" {
		t.Fatalf("parseBootcArgs(%v) = %+v, %v", good, b, err)
	}
	for _, bad := range []map[string]any{
		{},
		{"image_source": ""},
		{"image_source": "http://example.com/disk.qcow2"},
		{"image_source": "quay.io/fedora/fedora-bootc:42"},
		{"image_source": "oci://r/i", "configdrive": map[string]any{"meta_data": map[string]any{}}},
		{"image_source": "oci://r/i", "oci_pull_secret": 42},
	} {
		_, err := parseBootcArgs(bad)
		var ae *Error
		if !errors.As(err, &ae) || ae.Type != "InvalidCommandParamsError" {
			t.Errorf("parseBootcArgs(%v) = %v; want InvalidCommandParamsError", bad, err)
		}
	}
}

func TestBootcInstanceInfo(t *testing.T) {
	var b bootcArgs
	if err := b.bootcInstanceInfo(map[string]any{"instance_info": map[string]any{"bootc_authorized_keys": "ssh-ed25519 AAAA user@host", "bootc_tpm2_luks": false}}); err != nil || b.authorizedKeys != "ssh-ed25519 AAAA user@host" {
		t.Fatalf("instance_info: %+v, %v", b, err)
	}
	if err := b.bootcInstanceInfo(map[string]any{"instance_info": map[string]any{"bootc_tpm2_luks": true}}); err == nil {
		t.Error("bootc_tpm2_luks accepted: the disk would not be encrypted")
	}
	if err := b.bootcInstanceInfo(map[string]any{}); err != nil {
		t.Error(err)
	}
	conf := bootc.RootSSHTmpfiles("ssh-ed25519 AAAA user@host")
	want := "f~ /root/.ssh/authorized_keys 0600 root root - " + base64.StdEncoding.EncodeToString([]byte("ssh-ed25519 AAAA user@host\n")) + "\n"
	if !strings.Contains(conf, want) || !strings.Contains(conf, "d /root/.ssh 0700 root root -\n") {
		t.Errorf("tmpfiles:\n%s\nwant the line %q", conf, want)
	}
}

// TestBootcErrorClasses: package bootc's errors reach Ironic as IPA's
// classes.
func TestBootcErrorClasses(t *testing.T) {
	_, err := bootc.PullSecretKeychain("oci://quay.io/org/img:1", "%%%not base64")
	for _, tc := range []struct {
		err  error
		want string
	}{
		{err, "InvalidCommandParamsError"},
		{&bootc.InvalidImageError{Details: "no kernel"}, "InvalidImage"},
		{&bootc.DownloadError{Source: "oci://x/y:1", Err: errors.New("404")}, "ImageDownloadError"},
		{&bootc.ConfigDriveError{Err: errors.New("no space")}, "InstanceDeployFailure"},
		{errors.New("layer 1 of 2: EIO"), "ImageWriteError"},
		{ErrInvalidParams("kept"), "InvalidCommandParamsError"},
	} {
		var ae *Error
		if !errors.As(bootcError(tc.err), &ae) || ae.Type != tc.want {
			t.Errorf("bootcError(%v) = %v, want %s", tc.err, bootcError(tc.err), tc.want)
		}
	}
	var ae *Error
	errors.As(bootcError(&bootc.DownloadError{Source: "oci://x/y:1", Err: errors.New("404")}), &ae)
	if ae.Details != "Download of image oci://x/y:1 failed: 404" {
		t.Errorf("details %q", ae.Details)
	}
}
