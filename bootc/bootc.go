// Package bootc installs a bootable container image (bootc) onto a disk
// the way Ironic's execute_bootc_install deploy step expects, without
// podman or bootc: the image's layers are streamed from the registry
// into an ext4 root that goipa makes on the disk, and the image's UEFI
// loaders, kernel and initramfs go onto an ESP with a grub.cfg and a BLS
// entry. Memory does not grow with the image.
package bootc

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
)

// IPA runs `bootc install to-disk` from the image under podman, which
// pulls the whole image into the ramdisk's RAM first; goipa streams the
// layers into a filesystem it makes on the disk instead.

// InvalidError: a parameter (the pull secret, the image reference)
// cannot be used; Details is the message for Ironic.
type InvalidError struct{ Details string }

func (e *InvalidError) Error() string { return e.Details }

func invalid(format string, a ...any) *InvalidError {
	return &InvalidError{Details: fmt.Sprintf(format, a...)}
}

// InvalidImageError: the container image is not a bootable bootc image.
type InvalidImageError struct{ Details string }

func (e *InvalidImageError) Error() string { return e.Details }

// bootcESPMiB is the EFI system partition a bootc deploy makes: bootc
// leans towards 512 MiB (IPA's comment on its root-size arithmetic).
const bootcESPMiB = 512

// bootcMinRootMiB is the least root filesystem worth making beyond the
// image's compressed size (ext4's journal and metadata, and room to
// boot).
const bootcMinRootMiB = 64

// RootSSHTmpfiles is what bootc install writes for
// --root-ssh-authorized-keys: a systemd-tmpfiles entry that makes
// /root/.ssh/authorized_keys at boot (/root is a symlink into /var on
// bootc systems, which the image does not carry), its content base64 as
// tmpfiles' ~ modifier reads it.
func RootSSHTmpfiles(keys string) string {
	if !strings.HasSuffix(keys, "\n") {
		keys += "\n"
	}
	return "# written by goipa's execute_bootc_install (bootc_authorized_keys)\n" +
		"d /root/.ssh 0700 root root -\n" +
		"f~ /root/.ssh/authorized_keys 0600 root root - " + base64.StdEncoding.EncodeToString([]byte(keys)) + "\n"
}

// PullSecretKeychain turns Ironic's oci_pull_secret into credentials for
// the image's registry. Ironic sends base64 of the docker config's
// "auth" value for the registry (itself base64 of user:password), or of
// the node's pull secret password; IPA writes the decoded value as
// {"auths": {registry: {"auth": value}}} for podman. goipa also takes a
// whole docker config JSON, and a value that is not base64 of
// user:password as a registry bearer token. Other registries get the
// docker config's credentials, anonymous otherwise.
func PullSecretKeychain(imageSource, secret string) (authn.Keychain, error) {
	if secret == "" {
		return authn.DefaultKeychain, nil
	}
	raw, err := decodeBase64(secret)
	if err != nil {
		return nil, invalid("oci_pull_secret is not base64: %v", err)
	}
	ref, err := name.ParseReference(strings.TrimPrefix(imageSource, "oci://"))
	if err != nil {
		return nil, invalid("image_source %q: %v", imageSource, err)
	}
	registry := ref.Context().RegistryStr()
	value := strings.TrimSpace(string(raw))
	var cfg authn.AuthConfig
	if strings.HasPrefix(value, "{") {
		var doc struct {
			Auths map[string]authn.AuthConfig `json:"auths"`
		}
		if err := json.Unmarshal([]byte(value), &doc); err != nil {
			return nil, invalid("oci_pull_secret holds JSON that is not a docker config: %v", err)
		}
		found := false
		for host, c := range doc.Auths {
			h := strings.TrimSuffix(strings.TrimPrefix(strings.TrimPrefix(host, "https://"), "http://"), "/")
			if h == registry || strings.HasPrefix(h, registry+"/") {
				cfg, found = c, true
				break
			}
		}
		if !found {
			return nil, invalid("oci_pull_secret's docker config has no credentials for %s", registry)
		}
	} else if up, err := decodeBase64(value); err == nil && strings.Contains(string(up), ":") {
		cfg.Auth = value
	} else {
		cfg.RegistryToken = value
	}
	return authn.NewMultiKeychain(secretKeychain{registry: registry, auth: authn.FromConfig(cfg)}, authn.DefaultKeychain), nil
}

func decodeBase64(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	if b, err := base64.StdEncoding.DecodeString(s); err == nil {
		return b, nil
	}
	return base64.RawStdEncoding.DecodeString(strings.TrimRight(s, "="))
}

// secretKeychain answers for one registry; the next keychain for others.
type secretKeychain struct {
	registry string
	auth     authn.Authenticator
}

func (k secretKeychain) Resolve(r authn.Resource) (authn.Authenticator, error) {
	if r.RegistryStr() == k.registry {
		return k.auth, nil
	}
	return authn.Anonymous, nil
}

// bootEntry is what the boot loaders get told: the kernel and initramfs
// (copied to the ESP's root, which every loader reads) and the command
// line.
type bootEntry struct {
	title     string
	kernelVer string
	initramfs bool
	rootUUID  string
	kargs     []string
}

func (e bootEntry) options() string {
	return strings.Join(append([]string{"root=UUID=" + e.rootUUID, "rw"}, e.kargs...), " ")
}

// grubConfig is the grub.cfg put beside each grub*.efi on the ESP: the
// EFI grub reads it from its own directory, and finds the kernel on the
// partition it was loaded from.
func (e bootEntry) grubConfig(espUUID string) string {
	var b strings.Builder
	b.WriteString("# written by goipa's execute_bootc_install\nset timeout=3\n")
	if espUUID != "" {
		fmt.Fprintf(&b, "search --no-floppy --fs-uuid --set=root %s\n", espUUID)
	}
	fmt.Fprintf(&b, "menuentry '%s' {\n\tlinux /vmlinuz-%s %s\n", strings.ReplaceAll(e.title, "'", ""), e.kernelVer, e.options())
	if e.initramfs {
		fmt.Fprintf(&b, "\tinitrd /initramfs-%s.img\n", e.kernelVer)
	}
	b.WriteString("}\n")
	return b.String()
}

// blsEntry is the Boot Loader Specification entry systemd-boot reads.
func (e bootEntry) blsEntry() string {
	var b strings.Builder
	fmt.Fprintf(&b, "title %s\nversion %s\nlinux /vmlinuz-%s\n", e.title, e.kernelVer, e.kernelVer)
	if e.initramfs {
		fmt.Fprintf(&b, "initrd /initramfs-%s.img\n", e.kernelVer)
	}
	fmt.Fprintf(&b, "options %s\n", e.options())
	return b.String()
}

// tomlKargs reads the kargs of a bootc kargs.d file
// (/usr/lib/bootc/kargs.d/*.toml: `kargs = ["a", "b"]`, optionally
// limited by `match-architectures`). Only this one key is read: a TOML
// parser is not worth its place for it.
var (
	kargsLine = regexp.MustCompile(`(?s)(?:^|\n)\s*kargs\s*=\s*\[(.*?)\]`)
	archLine  = regexp.MustCompile(`(?s)(?:^|\n)\s*match-architectures\s*=\s*\[(.*?)\]`)
	tomlStr   = regexp.MustCompile(`"((?:[^"\\]|\\.)*)"`)
)

func tomlKargs(text, arch string) []string {
	if m := archLine.FindStringSubmatch(text); m != nil {
		ok := false
		for _, s := range tomlStr.FindAllStringSubmatch(m[1], -1) {
			if s[1] == arch {
				ok = true
			}
		}
		if !ok {
			return nil
		}
	}
	m := kargsLine.FindStringSubmatch(text)
	if m == nil {
		return nil
	}
	var out []string
	for _, s := range tomlStr.FindAllStringSubmatch(m[1], -1) {
		if v, err := strconv.Unquote(`"` + s[1] + `"`); err == nil {
			out = append(out, v)
		}
	}
	return out
}

// newestKernel picks the highest of the versions found under
// /usr/lib/modules (bootc images carry one).
func newestKernel(versions []string) string {
	if len(versions) == 0 {
		return ""
	}
	sort.Slice(versions, func(i, j int) bool { return versionLess(versions[i], versions[j]) })
	return versions[len(versions)-1]
}

// versionLess compares digit runs as numbers and the rest as text.
func versionLess(a, b string) bool {
	for a != "" && b != "" {
		da, ra := splitRun(a)
		db, rb := splitRun(b)
		if da != db {
			na, ea := strconv.Atoi(da)
			nb, eb := strconv.Atoi(db)
			if ea == nil && eb == nil {
				return na < nb
			}
			return da < db
		}
		a, b = ra, rb
	}
	return len(a) < len(b)
}

func splitRun(s string) (run, rest string) {
	digit := s[0] >= '0' && s[0] <= '9'
	i := 1
	for i < len(s) && (s[i] >= '0' && s[i] <= '9') == digit {
		i++
	}
	return s[:i], s[i:]
}
