package bootc

import (
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
)

// Args are execute_bootc_install's arguments as Ironic's
// BootcAgentDeploy sends them, and what IPA reads of the node's
// instance_info for the install.
type Args struct {
	ImageSource string // the oci:// container image
	ConfigDrive string // a URL or base64 of a gzipped ISO; "" for none
	// Keychain holds oci_pull_secret's credentials for the image's
	// registry (PullSecretKeychain).
	Keychain authn.Keychain
	// AuthorizedKeys is instance_info's bootc_authorized_keys, which IPA
	// hands to bootc's --root-ssh-authorized-keys.
	AuthorizedKeys string
}

// ParseArgs reads the step's args and the node's instance_info:
// bootc_authorized_keys, and bootc_tpm2_luks, which goipa refuses rather
// than deploy unencrypted a disk the user asked to encrypt. Errors are
// *InvalidError with the message for Ironic.
func ParseArgs(args, node map[string]any) (Args, error) {
	var a Args
	src, ok := args["image_source"].(string)
	if !ok || src == "" {
		return a, invalid("execute_bootc_install needs image_source, an oci:// container image reference")
	}
	if !strings.HasPrefix(src, "oci://") {
		return a, invalid("image_source %q is not an oci:// container image reference: execute_bootc_install deploys container images only", src)
	}
	a.ImageSource = src
	switch v := args["configdrive"].(type) {
	case nil:
	case string:
		a.ConfigDrive = v
	default:
		return a, invalid("configdrive must be a string (a URL or base64 of a gzipped ISO), not %T", v)
	}
	var secret string
	switch v := args["oci_pull_secret"].(type) {
	case nil:
	case string:
		secret = v
	default:
		return a, invalid("oci_pull_secret must be a base64 string or null, not %T", v)
	}
	ii, _ := node["instance_info"].(map[string]any)
	switch v := ii["bootc_authorized_keys"].(type) {
	case nil:
	case string:
		a.AuthorizedKeys = v
	default:
		return a, invalid("instance_info bootc_authorized_keys must be a string, not %T", v)
	}
	if v, ok := ii["bootc_tpm2_luks"]; ok && v != nil && v != false && v != "false" && v != "False" {
		return a, invalid("instance_info bootc_tpm2_luks: goipa does not set up LUKS with a TPM2-bound key; deploy without it or with IPA")
	}
	var err error
	a.Keychain, err = PullSecretKeychain(src, secret)
	return a, err
}
