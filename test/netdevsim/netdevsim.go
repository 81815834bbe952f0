// Package netdevsim builds the kernel's netdevsim driver for the tests'
// ramdisk. Debian's kernels do not build it (CONFIG_NETDEVSIM is off),
// yet it is the one device whose devlink flash update (with status
// notifications) and info a test can drive without a real NIC. So it is
// built out of tree from Debian's linux-source package against the
// linux-headers package of the ramdisk's kernel, with the host's gcc,
// and cached per kernel release like the kernel packages.
package netdevsim

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/goipa/goipa/initramfs"
)

// SrcDir is where Debian's linux-source and linux-headers packages
// install.
const SrcDir = "/usr/src"

// CachePath is where the module for a kernel release is kept.
func CachePath(cacheDir, release string) string {
	return filepath.Join(cacheDir, "netdevsim", release, "netdevsim.ko")
}

var release = regexp.MustCompile(`^([0-9]+\.[0-9]+)\.[0-9]+-`)

// Module returns netdevsim.ko for kernel k: the cached one when it is
// netdevsim with k's vermagic, else one built now (and cached). It needs the
// packages linux-source-<major.minor> and linux-headers-<release> of the
// same Debian version, gcc and make (test/install-deps.sh installs
// them).
func Module(ctx context.Context, cacheDir string, k *initramfs.Kernel) (string, error) {
	want, err := initramfs.KernelVermagic(k)
	if err != nil {
		return "", err
	}
	cached := CachePath(cacheDir, k.Version)
	if m, err := initramfs.ModuleInfo(cached); err == nil && m.Name == "netdevsim" && m.Vermagic == want {
		return cached, nil
	}
	m := release.FindStringSubmatch(k.Version)
	if m == nil {
		return "", fmt.Errorf("kernel release %q: not a Debian release (6.1.0-28-cloud-amd64)", k.Version)
	}
	source := "linux-source-" + m[1]
	headers := "linux-headers-" + k.Version
	tarball := filepath.Join(SrcDir, source+".tar.xz")
	hdrDir := filepath.Join(SrcDir, headers)
	for _, p := range []string{tarball, filepath.Join(hdrDir, "Module.symvers")} {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("building netdevsim for %s needs %s and %s (test/install-deps.sh): %w", k.Version, source, headers, err)
		}
	}
	// The driver's source must be the headers' kernel: Debian ships both
	// from one source package version.
	sv, err := packageVersion(ctx, source)
	if err != nil {
		return "", err
	}
	hv, err := packageVersion(ctx, headers)
	if err != nil {
		return "", err
	}
	if sv != hv {
		return "", fmt.Errorf("%s is version %s but %s is %s: netdevsim's source must be the kernel's (install both from the same Debian release)", source, sv, headers, hv)
	}

	tmp, err := os.MkdirTemp("", "goipa-netdevsim-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	rel := source + "/drivers/net/netdevsim"
	if out, err := exec.CommandContext(ctx, "tar", "-xJf", tarball, "-C", tmp, rel).CombinedOutput(); err != nil {
		return "", fmt.Errorf("unpacking %s from %s: %v: %s", rel, tarball, err, out)
	}
	dir := filepath.Join(tmp, rel)
	mk := exec.CommandContext(ctx, "make", "-C", hdrDir, "M="+dir, "CONFIG_NETDEVSIM=m", "-j2", "modules")
	if out, err := mk.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building netdevsim against %s: %v: %s", headers, err, tail(string(out), 40))
	}
	built := filepath.Join(dir, "netdevsim.ko")
	// Debian strips its modules' debug information (INSTALL_MOD_STRIP):
	// 5 MiB less in the ramdisk.
	if out, err := exec.CommandContext(ctx, "strip", "--strip-debug", built).CombinedOutput(); err != nil {
		return "", fmt.Errorf("strip --strip-debug netdevsim.ko: %v: %s", err, out)
	}
	if _, err := initramfs.CheckModule(k, built); err != nil {
		return "", fmt.Errorf("the netdevsim just built: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(cached), 0o755); err != nil {
		return "", err
	}
	b, err := os.ReadFile(built)
	if err != nil {
		return "", err
	}
	part := cached + ".tmp"
	if err := os.WriteFile(part, b, 0o644); err != nil {
		return "", err
	}
	if err := os.Rename(part, cached); err != nil {
		os.Remove(part)
		return "", err
	}
	return cached, nil
}

func packageVersion(ctx context.Context, pkg string) (string, error) {
	out, err := exec.CommandContext(ctx, "dpkg-query", "-W", "-f=${Version}", pkg).Output()
	if err != nil || len(out) == 0 {
		return "", fmt.Errorf("package %s is not installed (test/install-deps.sh installs it): %v", pkg, err)
	}
	return strings.TrimSpace(string(out)), nil
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
