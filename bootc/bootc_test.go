package bootc

import (
	"encoding/base64"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
)

func resolve(t *testing.T, kc authn.Keychain, ref string) *authn.AuthConfig {
	t.Helper()
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	a, err := kc.Resolve(r.Context().Registry)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := a.Authorization()
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func TestPullSecretKeychain(t *testing.T) {
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	// Ironic: base64 of the docker config's "auth" value, itself base64
	// of user:password.
	kc, err := PullSecretKeychain("oci://registry.example:5000/os/bootc:1", b64(b64("user:s3cret")))
	if err != nil {
		t.Fatal(err)
	}
	if cfg := resolve(t, kc, "registry.example:5000/os/bootc:1"); cfg.Auth != b64("user:s3cret") && cfg.Username != "user" {
		t.Errorf("auth value: got %+v", cfg)
	}
	if cfg := resolve(t, kc, "other.example/x:1"); cfg.Auth != "" || cfg.Username != "" {
		t.Errorf("another registry got the secret: %+v", cfg)
	}
	// A whole docker config.
	kc, err = PullSecretKeychain("oci://quay.io/org/img:1", b64(`{"auths":{"https://quay.io":{"auth":"`+b64("robot:tok")+`"}}}`))
	if err != nil {
		t.Fatal(err)
	}
	if cfg := resolve(t, kc, "quay.io/org/img:1"); cfg.Auth != b64("robot:tok") && cfg.Username != "robot" {
		t.Errorf("docker config: got %+v", cfg)
	}
	// A bare token (Ironic's pull secret password).
	kc, err = PullSecretKeychain("oci://quay.io/org/img:1", b64("opaque-token"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg := resolve(t, kc, "quay.io/org/img:1"); cfg.RegistryToken != "opaque-token" {
		t.Errorf("token: got %+v", cfg)
	}
	for _, bad := range []string{"%%%not base64", b64(`{"auths":{"elsewhere.io":{"auth":"x"}}}`), b64(`{not json`)} {
		if _, err := PullSecretKeychain("oci://quay.io/org/img:1", bad); err == nil {
			t.Errorf("pull secret %q accepted", bad)
		}
	}
}

func TestTomlKargs(t *testing.T) {
	for _, tc := range []struct {
		text, want string
	}{
		{`kargs = ["console=ttyS0,115200", "quiet"]`, "console=ttyS0,115200 quiet"},
		{"# comment\nkargs = [\n  \"a=1\",\n  \"b\\\"q\",\n]\n", `a=1 b"q`},
		{"kargs = [\"x86\"]\nmatch-architectures = [\"x86_64\"]\n", "x86"},
		{"kargs = [\"arm\"]\nmatch-architectures = [\"aarch64\"]\n", ""},
		{"other = 1", ""},
	} {
		if got := strings.Join(tomlKargs(tc.text, "x86_64"), " "); got != tc.want {
			t.Errorf("tomlKargs(%q) = %q, want %q", tc.text, got, tc.want)
		}
	}
}

func TestNewestKernel(t *testing.T) {
	if got := newestKernel([]string{"6.9.0-1.fc42.x86_64", "6.10.2-1.fc42.x86_64", "6.10.10-1.fc42.x86_64"}); got != "6.10.10-1.fc42.x86_64" {
		t.Errorf("newest = %s", got)
	}
	if newestKernel(nil) != "" {
		t.Error("a kernel from nothing")
	}
}

func TestBootEntryConfigs(t *testing.T) {
	e := bootEntry{title: "Fedora Linux 42 (6.14.0)", kernelVer: "6.14.0", initramfs: true, rootUUID: "1234", kargs: []string{"console=ttyS0"}}
	g := e.grubConfig("ABCD-EF01")
	for _, want := range []string{"search --no-floppy --fs-uuid --set=root ABCD-EF01", "linux /vmlinuz-6.14.0 root=UUID=1234 rw console=ttyS0", "initrd /initramfs-6.14.0.img"} {
		if !strings.Contains(g, want) {
			t.Errorf("grub.cfg lacks %q:\n%s", want, g)
		}
	}
	b := e.blsEntry()
	for _, want := range []string{"linux /vmlinuz-6.14.0\n", "initrd /initramfs-6.14.0.img\n", "options root=UUID=1234 rw console=ttyS0\n"} {
		if !strings.Contains(b, want) {
			t.Errorf("BLS entry lacks %q:\n%s", want, b)
		}
	}
}
