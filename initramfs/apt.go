package initramfs

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
)

// FetchOption changes how a Debian package is found and fetched.
type FetchOption func(*fetchConfig)

type fetchConfig struct {
	arch            string
	nonFreeFirmware bool
}

// ForArch fetches the package built for arch (a Debian architecture:
// amd64, arm64). A foreign architecture is read from an apt state of its
// own under CacheDir (see AptOptions); the host's dpkg architectures are
// never changed. The package's Architecture field must match.
func ForArch(arch string) FetchOption {
	return func(c *fetchConfig) { c.arch = arch }
}

func fetchConfigOf(opts []FetchOption) fetchConfig {
	var c fetchConfig
	for _, o := range opts {
		o(&c)
	}
	return c
}

// ArchError is a package, kernel or module of another architecture than
// the one asked for.
type ArchError struct {
	What string // "package linux-image-6.1.0-28-amd64", "kernel 6.1.0-28-amd64"
	Want string
	Got  string
}

func (e *ArchError) Error() string {
	return fmt.Sprintf("%s is built for %s, not %s", e.What, e.Got, e.Want)
}

var (
	hostArchOnce sync.Once
	hostArch     string
)

// HostArch is dpkg's architecture of this machine (amd64 when dpkg cannot
// say).
func HostArch() string {
	hostArchOnce.Do(func() {
		hostArch = "amd64"
		if out, err := exec.Command("dpkg", "--print-architecture").Output(); err == nil {
			if a := strings.TrimSpace(string(out)); a != "" {
				hostArch = a
			}
		}
	})
	return hostArch
}

// foreign reports whether arch needs an apt state of its own.
func foreign(arch string) bool { return arch != "" && arch != HostArch() }

// aptStateDir holds a foreign architecture's package lists and cache.
func aptStateDir(arch string) string { return filepath.Join(CacheDir(), "apt-"+arch) }

// AptOptions are the apt-get and apt-cache options that show the packages
// of arch: none for the host's architecture; for another one, a separate
// state (lists, cache and an empty dpkg status under CacheDir()/apt-<arch>)
// read with the host's sources, so the host's apt and dpkg never learn of
// it. The lists are fetched (apt-get update) when there are none, or when
// refresh is set.
func AptOptions(ctx context.Context, arch string, refresh bool) ([]string, error) {
	if !foreign(arch) {
		return nil, nil
	}
	dir := aptStateDir(arch)
	lists, cache := filepath.Join(dir, "lists"), filepath.Join(dir, "cache")
	status := filepath.Join(dir, "status")
	for _, d := range []string{filepath.Join(lists, "partial"), filepath.Join(cache, "archives", "partial")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	if _, err := os.Stat(status); err != nil {
		if err := os.WriteFile(status, nil, 0o644); err != nil {
			return nil, err
		}
	}
	opts := []string{
		"-oAPT::Architecture=" + arch,
		"-oAPT::Architectures::=" + arch,
		"-oDir::State::Lists=" + lists,
		"-oDir::Cache=" + cache,
		"-oDir::State::status=" + status,
	}
	have, _ := filepath.Glob(filepath.Join(lists, "*_Packages*"))
	if len(have) == 0 || refresh {
		args := append(append([]string{}, opts...), "update", "-qq")
		if out, err := exec.CommandContext(ctx, "apt-get", args...).CombinedOutput(); err != nil {
			return nil, fmt.Errorf("apt-get update for %s (lists in %s): %v: %s", arch, lists, err, out)
		}
	}
	return opts, nil
}

// debArch reads a .deb's Architecture field.
func debArch(ctx context.Context, deb string) (string, error) {
	out, err := exec.CommandContext(ctx, "dpkg-deb", "-f", deb, "Architecture").Output()
	if err != nil {
		return "", fmt.Errorf("reading the architecture of %s: %v", deb, err)
	}
	return strings.TrimSpace(string(out)), nil
}
