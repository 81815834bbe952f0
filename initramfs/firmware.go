package initramfs

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"sort"
	"strings"
)

// FirmwarePackages are Debian's non-free-firmware packages holding the
// blobs the server drivers declare (modinfo's firmware=): bnx2x's in
// firmware-bnx2x; qed's and qla2xxx's in firmware-qlogic; ice's DDP
// package, cxgb4's and tg3's in firmware-misc-nonfree; r8169's in
// firmware-realtek; nfp's in firmware-netronome. Only the files the
// ramdisk's modules declare are taken from them.
var FirmwarePackages = []string{"firmware-bnx2x", "firmware-qlogic", "firmware-misc-nonfree", "firmware-realtek", "firmware-netronome"}

// firmwareComponent is the archive component that holds FirmwarePackages.
const firmwareComponent = "non-free-firmware"

// FirmwareFile is one firmware blob for the ramdisk.
type FirmwareFile struct {
	Name string // as the module declares it and the kernel asks for it, under lib/firmware
	Src  string // the regular file it resolves to, symlinks followed
}

// maxLinks bounds a symlink chain (as the kernel's MAXSYMLINKS does).
const maxLinks = 40

// resolveIn follows name's symlinks inside root, as the ramdisk's
// /lib/firmware will see them: an absolute target is taken relative to
// the firmware directory, never the build machine's. It returns the
// regular file's path.
func resolveIn(root, name string) (string, error) {
	rel := path.Clean(name)
	for range maxLinks {
		if rel == ".." || strings.HasPrefix(rel, "../") || path.IsAbs(rel) {
			return "", fmt.Errorf("%s leaves the firmware directory", name)
		}
		p := filepath.Join(root, filepath.FromSlash(rel))
		fi, err := os.Lstat(p)
		if err != nil {
			return "", err
		}
		if fi.Mode()&fs.ModeSymlink == 0 {
			if !fi.Mode().IsRegular() {
				return "", fmt.Errorf("%s is not a regular file", name)
			}
			return p, nil
		}
		target, err := os.Readlink(p)
		if err != nil {
			return "", err
		}
		if path.IsAbs(target) {
			t := path.Clean(target)
			for _, pre := range []string{"/usr/lib/firmware/", "/lib/firmware/"} {
				if strings.HasPrefix(t, pre) {
					t = strings.TrimPrefix(t, pre)
					break
				}
			}
			rel = t
		} else {
			rel = path.Join(path.Dir(rel), target)
		}
	}
	return "", fmt.Errorf("%s: too many levels of symbolic links", name)
}

// compressedSuffixes are the forms the kernel's firmware loader also
// tries (Debian's kernel has FW_LOADER_COMPRESS with xz and zstd).
var compressedSuffixes = []string{"", ".xz", ".zst"}

// SelectFirmware finds the firmware files the modules declare in the
// firmware directories (lib/firmware of unpacked packages, searched in
// order), following symlinks. A declared file found nowhere is returned
// in missing: drivers declare every variant they might load, and no
// package ships all of them, so it is never an error.
func SelectFirmware(mods []*Module, dirs []string) (files []FirmwareFile, missing []string) {
	seen := map[string]bool{}
	for _, m := range mods {
		for _, name := range m.Firmware {
			if seen[name] {
				continue
			}
			seen[name] = true
			found := false
			for _, d := range dirs {
				for _, suf := range compressedSuffixes {
					src, err := resolveIn(d, name+suf)
					if err == nil {
						files = append(files, FirmwareFile{Name: path.Clean(name) + suf, Src: src})
						found = true
						break
					}
				}
				if found {
					break
				}
			}
			if !found {
				missing = append(missing, m.Name+": "+name)
			}
		}
	}
	sort.Slice(files, func(i, j int) bool { return files[i].Name < files[j].Name })
	sort.Strings(missing)
	return files, missing
}

// firmwareDir is an unpacked firmware package's firmware directory.
func firmwareDir(pkgDir string) string {
	for _, d := range []string{"lib/firmware", "usr/lib/firmware"} {
		if fi, err := os.Stat(filepath.Join(pkgDir, d)); err == nil && fi.IsDir() {
			return filepath.Join(pkgDir, d)
		}
	}
	return filepath.Join(pkgDir, "lib/firmware")
}

// FetchFirmware downloads and unpacks FirmwarePackages (once, into
// cacheDir) from the non-free-firmware component and returns their
// firmware directories.
func FetchFirmware(ctx context.Context, cacheDir string) ([]string, error) {
	var dirs []string
	for _, p := range FirmwarePackages {
		d, err := FetchDebianPackage(ctx, cacheDir, p, fromNonFreeFirmware())
		if err != nil {
			return nil, err
		}
		dirs = append(dirs, firmwareDir(d))
	}
	return dirs, nil
}

// fromNonFreeFirmware fetches from the firmware apt state
// (firmwareAptOptions) instead of the host's.
func fromNonFreeFirmware() FetchOption { return func(c *fetchConfig) { c.nonFreeFirmware = true } }

// aptSource is one source of the host's apt configuration.
type aptSource struct {
	Types, URIs, Suites, Components []string
	SignedBy                        string
}

// parseDeb822Sources reads deb822 .sources stanzas (Types, URIs, Suites,
// Components, Signed-By; Enabled: no skips one).
func parseDeb822Sources(data []byte) []aptSource {
	var out []aptSource
	cur := map[string]string{}
	last := ""
	flush := func() {
		if len(cur) > 0 && !strings.EqualFold(cur["enabled"], "no") && cur["uris"] != "" {
			out = append(out, aptSource{
				Types: strings.Fields(cur["types"]), URIs: strings.Fields(cur["uris"]),
				Suites: strings.Fields(cur["suites"]), Components: strings.Fields(cur["components"]),
				SignedBy: strings.TrimSpace(cur["signed-by"]),
			})
		}
		cur, last = map[string]string{}, ""
	}
	sc := bufio.NewScanner(strings.NewReader(string(data)))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		l := sc.Text()
		switch {
		case strings.TrimSpace(l) == "":
			flush()
		case strings.HasPrefix(l, "#"):
		case l[0] == ' ' || l[0] == '\t':
			if last != "" { // a continuation line (Signed-By may hold a whole key)
				cur[last] += "\n" + strings.TrimSpace(l)
			}
		default:
			k, v, ok := strings.Cut(l, ":")
			if !ok {
				continue
			}
			last = strings.ToLower(strings.TrimSpace(k))
			cur[last] = strings.TrimSpace(v)
		}
	}
	flush()
	return out
}

// parseOneLineSources reads sources.list lines: deb [options] uri suite
// component...
func parseOneLineSources(data []byte) []aptSource {
	var out []aptSource
	for _, l := range strings.Split(string(data), "\n") {
		if i := strings.IndexByte(l, '#'); i >= 0 {
			l = l[:i]
		}
		f := strings.Fields(l)
		if len(f) < 3 || (f[0] != "deb" && f[0] != "deb-src") {
			continue
		}
		s := aptSource{Types: []string{f[0]}}
		rest := f[1:]
		if strings.HasPrefix(rest[0], "[") {
			for len(rest) > 0 {
				o := rest[0]
				rest = rest[1:]
				if v, ok := strings.CutPrefix(strings.Trim(o, "[]"), "signed-by="); ok {
					s.SignedBy = v
				}
				if strings.HasSuffix(o, "]") {
					break
				}
			}
		}
		if len(rest) < 2 {
			continue
		}
		s.URIs, s.Suites, s.Components = rest[:1], rest[1:2], rest[2:]
		out = append(out, s)
	}
	return out
}

// firmwareSources turns the host's Debian sources into the same archives'
// non-free-firmware component: every binary source with main in it.
func firmwareSources(srcs []aptSource) string {
	var b strings.Builder
	for _, s := range srcs {
		if !contains(s.Types, "deb") || !contains(s.Components, "main") {
			continue
		}
		if b.Len() > 0 {
			b.WriteString("\n")
		}
		fmt.Fprintf(&b, "Types: deb\nURIs: %s\nSuites: %s\nComponents: %s\n", strings.Join(s.URIs, " "), strings.Join(s.Suites, " "), firmwareComponent)
		if s.SignedBy != "" {
			fmt.Fprintf(&b, "Signed-By: %s\n", strings.ReplaceAll(s.SignedBy, "\n", "\n "))
		}
	}
	return b.String()
}

func contains(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}

// hostSources reads the host's enabled apt sources.
func hostSources() []aptSource {
	var out []aptSource
	if b, err := os.ReadFile("/etc/apt/sources.list"); err == nil {
		out = append(out, parseOneLineSources(b)...)
	}
	parts, _ := filepath.Glob("/etc/apt/sources.list.d/*.list")
	for _, p := range parts {
		if b, err := os.ReadFile(p); err == nil {
			out = append(out, parseOneLineSources(b)...)
		}
	}
	parts, _ = filepath.Glob("/etc/apt/sources.list.d/*.sources")
	for _, p := range parts {
		if b, err := os.ReadFile(p); err == nil {
			out = append(out, parseDeb822Sources(b)...)
		}
	}
	return out
}

// errNoFirmwareSources is a host whose apt sources have no Debian
// archive to take non-free-firmware from.
var errNoFirmwareSources = errors.New("no apt source with a main component to take non-free-firmware from")

// firmwareAptOptions are the apt-get options of goipa's firmware apt
// state (CacheDir()/apt-firmware): the host's archives with the
// non-free-firmware component only, its own lists, cache and an empty
// dpkg status, so the host's apt never sees the component. The lists are
// fetched when there are none, or when refresh is set.
func firmwareAptOptions(ctx context.Context, refresh bool) ([]string, error) {
	dir := filepath.Join(CacheDir(), "apt-firmware")
	lists, cache := filepath.Join(dir, "lists"), filepath.Join(dir, "cache")
	status, parts := filepath.Join(dir, "status"), filepath.Join(dir, "sources.list.d")
	for _, d := range []string{filepath.Join(lists, "partial"), filepath.Join(cache, "archives", "partial"), parts} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	src := firmwareSources(hostSources())
	if src == "" {
		return nil, errNoFirmwareSources
	}
	if err := os.WriteFile(filepath.Join(parts, "firmware.sources"), []byte(src), 0o644); err != nil {
		return nil, err
	}
	if _, err := os.Stat(status); err != nil {
		if err := os.WriteFile(status, nil, 0o644); err != nil {
			return nil, err
		}
	}
	opts := []string{
		"-oDir::Etc::SourceList=/dev/null",
		"-oDir::Etc::SourceParts=" + parts,
		"-oDir::State::Lists=" + lists,
		"-oDir::Cache=" + cache,
		"-oDir::State::status=" + status,
	}
	have, _ := filepath.Glob(filepath.Join(lists, "*_Packages*"))
	if len(have) == 0 || refresh {
		args := append(append([]string{}, opts...), "update", "-qq")
		if out, err := exec.CommandContext(ctx, "apt-get", args...).CombinedOutput(); err != nil {
			return nil, fmt.Errorf("apt-get update for %s (lists in %s): %v: %s", firmwareComponent, lists, err, out)
		}
	}
	return opts, nil
}
