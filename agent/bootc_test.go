package agent

import (
	"errors"
	"testing"

	"github.com/goipa/goipa/bootc"
)

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
