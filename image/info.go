package image

import (
	"fmt"
	"strings"
)

// Info is the image_info Ironic sends with write_image and prepare_image
// (IPA's _validate_image_info). Unknown keys are ignored: Ironic adds
// keys over releases.
type Info struct {
	ID                   string
	URLs                 []string
	DiskFormat           string
	ContainerFormat      string
	StreamRawImages      bool
	Checksum             string
	OSHashAlgo           string
	OSHashValue          string
	AuthStrategy         string // image_server_auth_strategy: "http_basic" or ""
	User, Password       string // image_server_user / image_server_password
	RequestAuthorization string // image_request_authorization: base64 of an Authorization value
	Proxies              map[string]string
	NoProxy              string
	NodeUUID             string
	ImageType            string // "partition" or whole disk
	RootMB, SwapMB       int
	EphemeralMB          int
	EphemeralFormat      string
	PreserveEphemeral    bool
	DiskLabel            string
	DeployBootMode       string
	Configdrive          string
	Raw                  map[string]any
}

// IsPartition reports whether this is a partition image.
func (ii *Info) IsPartition() bool { return ii.ImageType == "partition" }

// InvalidInfoError: image_info cannot be used; Details is IPA's wording,
// every problem found in one sentence each.
type InvalidInfoError struct{ Details string }

func (e *InvalidInfoError) Error() string { return e.Details }

// ParseInfo validates image_info as IPA does and returns it typed.
// md5Allowed is the lookup's agent_md5_checksum_enable (default true).
// Errors are *InvalidInfoError.
func ParseInfo(raw map[string]any, md5Allowed bool) (*Info, error) {
	if raw == nil {
		return nil, &InvalidInfoError{Details: "image_info is missing"}
	}
	ii := &Info{Raw: raw, StreamRawImages: true}
	var errs []string
	str := func(key string) string {
		v, ok := raw[key]
		if !ok || v == nil {
			return ""
		}
		s, ok := v.(string)
		if !ok {
			errs = append(errs, fmt.Sprintf("Image '%s' must be a string", key))
		}
		return s
	}
	num := func(key string) int {
		switch v := raw[key].(type) {
		case nil:
			return 0
		case float64:
			return int(v)
		case string:
			var n int
			if _, err := fmt.Sscan(v, &n); err != nil {
				errs = append(errs, fmt.Sprintf("Image '%s' must be a number", key))
			}
			return n
		default:
			errs = append(errs, fmt.Sprintf("Image '%s' must be a number", key))
			return 0
		}
	}
	boolean := func(key string, def bool) bool {
		switch v := raw[key].(type) {
		case bool:
			return v
		case string:
			b, ok := parseBool(v)
			if !ok {
				errs = append(errs, fmt.Sprintf("Image '%s' must be a boolean", key))
			}
			return b
		case nil:
			return def
		default:
			errs = append(errs, fmt.Sprintf("Image '%s' must be a boolean", key))
			return def
		}
	}
	ii.ID = str("id")
	if ii.ID == "" {
		errs = append(errs, "Image is missing the 'id' field.")
	}
	if u, ok := raw["urls"].([]any); ok {
		for _, x := range u {
			if s, ok := x.(string); ok && s != "" {
				ii.URLs = append(ii.URLs, s)
			}
		}
	}
	if len(ii.URLs) == 0 {
		errs = append(errs, "Image 'urls' must be a list with at least one element.")
	}
	ii.DiskFormat = str("disk_format")
	ii.ContainerFormat = str("container_format")
	ii.StreamRawImages = boolean("stream_raw_images", true)
	if _, present := raw["checksum"]; present && raw["checksum"] != nil {
		ii.Checksum = str("checksum")
		if ii.Checksum == "" {
			errs = append(errs, "Image 'checksum' must be a non-empty string.")
		}
	}
	ii.OSHashAlgo, ii.OSHashValue = str("os_hash_algo"), str("os_hash_value")
	if (ii.OSHashAlgo == "") != (ii.OSHashValue == "") {
		errs = append(errs, "Image 'os_hash_algo' and 'os_hash_value' must both be non-empty strings.")
	}
	usable := ii.OSHashAlgo != "" && ii.OSHashValue != "" ||
		strings.HasPrefix(ii.Checksum, "http://") || strings.HasPrefix(ii.Checksum, "https://") ||
		len(ii.Checksum) > 32 || (len(ii.Checksum) == 32 && md5Allowed)
	if !usable {
		if len(ii.Checksum) == 32 {
			errs = append(errs, "Image checksum is MD5, which is not allowed (agent_md5_checksum_enable is false).")
		} else {
			errs = append(errs, "Image is missing a usable checksum ('os_hash_algo' and 'os_hash_value', or 'checksum').")
		}
	}
	ii.AuthStrategy = str("image_server_auth_strategy")
	ii.User, ii.Password = str("image_server_user"), str("image_server_password")
	ii.RequestAuthorization = str("image_request_authorization")
	if p, ok := raw["proxies"].(map[string]any); ok {
		ii.Proxies = map[string]string{}
		for k, v := range p {
			if s, ok := v.(string); ok && s != "" {
				ii.Proxies[k] = s
			}
		}
	}
	ii.NoProxy = str("no_proxy")
	ii.NodeUUID = str("node_uuid")
	ii.ImageType = str("image_type")
	ii.DiskLabel = str("disk_label")
	ii.DeployBootMode = str("deploy_boot_mode")
	ii.Configdrive = str("configdrive")
	if ii.IsPartition() {
		for _, key := range []string{"root_mb", "swap_mb", "ephemeral_mb", "ephemeral_format", "preserve_ephemeral"} {
			if _, ok := raw[key]; !ok {
				errs = append(errs, fmt.Sprintf("Image is missing the '%s' field (needed for a partition image).", key))
			}
		}
		ii.RootMB, ii.SwapMB, ii.EphemeralMB = num("root_mb"), num("swap_mb"), num("ephemeral_mb")
		ii.EphemeralFormat = str("ephemeral_format")
		ii.PreserveEphemeral = boolean("preserve_ephemeral", false)
		if ii.RootMB <= 0 && len(errs) == 0 {
			errs = append(errs, "Image 'root_mb' must be a positive number of MiB.")
		}
	}
	if len(errs) > 0 {
		return nil, &InvalidInfoError{Details: strings.Join(errs, " ")}
	}
	return ii, nil
}

// parseBool reads a boolean as oslo's bool_from_string does for
// image_info's string booleans ("yes", "off", ...).
func parseBool(v string) (bool, bool) {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "1", "true", "yes", "on", "y", "t":
		return true, true
	case "0", "false", "no", "off", "n", "f", "":
		return false, true
	}
	return false, false
}
