package initramfs

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/u-root/u-root/pkg/cpio"
)

// Options says what goes into the ramdisk.
type Options struct {
	SourceDir  string   // the goipa module root (builds ./cmd/goipa)
	Binary     string   // a goipa binary to use instead of building one
	Arch       string   // GOARCH of the ramdisk (default amd64)
	Kernel     *Kernel  // modules come from here (nil: no modules)
	Modules    []string // module names, with their dependencies
	AllModules bool     // every module of the kernel
	// ExtraModules are .ko files built outside the kernel package for
	// Kernel (test-only drivers such as netdevsim; never in the default
	// sets): each must carry the kernel's vermagic, goes under
	// lib/modules/<version>/extra with its dependencies from the kernel,
	// and is loaded by whoever needs it (no device asks for it).
	ExtraModules []string
	Firmware     []string // firmware files: "src:lib/firmware/name"
	// FirmwareDirs are firmware trees (FetchFirmware's) to take the
	// files the chosen modules declare from (SelectFirmware); none: no
	// module firmware.
	FirmwareDirs []string
	Compression  string // "gzip" (default: what PXE and virtual media boot), "zstd" or "none"
	Output       string
	Version      string // goipa version stamped into the binary
	// DebugCommands are u-root command packages for the console (a
	// shell and tools); none by default, DebugCommands for the usual set.
	DebugCommands []string
}

// Result describes the built ramdisk.
type Result struct {
	Path    string
	Size    int64
	SHA256  string
	Modules int
	// Firmware are the module firmware files included (lib/firmware
	// names); MissingFirmware the declared ones no firmware tree has
	// ("module: file"), which the build reports and goes on without.
	Firmware        []string
	FirmwareBytes   int64
	MissingFirmware []string
}

// Build writes the initramfs. The same inputs give the same bytes: fixed
// timestamps, owners and inode numbers, sorted entries, a reproducible Go
// build and compressor headers without times or names.
func Build(ctx context.Context, o Options) (*Result, error) {
	if o.Arch == "" {
		o.Arch = "amd64"
	}
	if o.Compression == "" {
		o.Compression = "gzip"
	}
	if o.Kernel != nil && o.Kernel.Arch != "" && o.Kernel.Arch != o.Arch {
		return nil, &ArchError{What: "kernel " + o.Kernel.Version + " (for a ramdisk of " + o.Arch + ")", Want: o.Arch, Got: o.Kernel.Arch}
	}
	if len(o.ExtraModules) > 0 && o.Kernel == nil {
		return nil, fmt.Errorf("extra modules %v without a kernel to check them against", o.ExtraModules)
	}
	tmp, err := os.MkdirTemp("", "goipa-initramfs-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	bin := o.Binary
	if bin == "" {
		bin = filepath.Join(tmp, "goipa")
		if err := buildGoipa(ctx, o, bin); err != nil {
			return nil, err
		}
	}
	binData, err := os.ReadFile(bin)
	if err != nil {
		return nil, err
	}
	recs := []cpio.Record{
		cpio.Directory("dev", 0o755),
		cpio.CharDev("dev/console", 0o600, 5, 1),
		cpio.CharDev("dev/null", 0o666, 1, 3),
		cpio.Directory("proc", 0o555),
		cpio.Directory("sys", 0o555),
		cpio.Directory("run", 0o755),
		cpio.Directory("tmp", 0o1777),
		cpio.Directory("etc", 0o755),
		cpio.StaticFile("etc/resolv.conf", "", 0o644),
		cpio.StaticFile("etc/hostname", "goipa\n", 0o644),
		cpio.StaticFile("etc/passwd", "root:x:0:0:root:/:/init\n", 0o644),
		cpio.StaticRecord(binData, cpio.Info{Name: "init", Mode: cpio.S_IFREG | 0o755}),
	}
	if len(o.DebugCommands) > 0 {
		if o.SourceDir == "" {
			o.SourceDir = "."
		}
		dbg, err := debugRecords(o, tmp)
		if err != nil {
			return nil, err
		}
		recs = append(recs, dbg...)
	}
	nmods := 0
	var fwFiles []FirmwareFile
	var fwMissing []string
	if o.Kernel != nil {
		mrecs, chosen, err := moduleRecords(o)
		if err != nil {
			return nil, err
		}
		recs = append(recs, mrecs...)
		nmods = len(chosen)
		if len(o.FirmwareDirs) > 0 {
			fwFiles, fwMissing = SelectFirmware(chosen, o.FirmwareDirs)
		}
	}
	var fwNames []string
	var fwBytes int64
	for _, f := range fwFiles {
		b, err := os.ReadFile(f.Src)
		if err != nil {
			return nil, fmt.Errorf("firmware %s: %w", f.Name, err)
		}
		recs = append(recs, cpio.StaticRecord(b, cpio.Info{Name: path.Join("lib/firmware", f.Name), Mode: cpio.S_IFREG | 0o644}))
		fwNames = append(fwNames, f.Name)
		fwBytes += int64(len(b))
	}
	for _, fw := range o.Firmware {
		src, dst, ok := strings.Cut(fw, ":")
		if !ok {
			dst = filepath.Join("lib/firmware", filepath.Base(src))
		}
		b, err := os.ReadFile(src)
		if err != nil {
			return nil, fmt.Errorf("firmware %s: %w", src, err)
		}
		recs = append(recs, cpio.StaticRecord(b, cpio.Info{Name: dst, Mode: cpio.S_IFREG | 0o644}))
	}
	sort.SliceStable(recs, func(i, j int) bool { return recs[i].Name < recs[j].Name })
	cpio.MakeAllReproducible(recs)

	var raw bytes.Buffer
	w := cpio.Newc.Writer(&raw)
	if err := cpio.WriteRecordsAndDirs(w, recs); err != nil {
		return nil, err
	}
	if err := cpio.WriteTrailer(w); err != nil {
		return nil, err
	}
	out, err := compress(raw.Bytes(), o.Compression)
	if err != nil {
		return nil, err
	}
	if o.Output == "" {
		return nil, fmt.Errorf("no output path")
	}
	if err := os.MkdirAll(filepath.Dir(o.Output), 0o755); err != nil {
		return nil, err
	}
	if err := os.WriteFile(o.Output, out, 0o644); err != nil {
		return nil, err
	}
	sum := sha256.Sum256(out)
	return &Result{Path: o.Output, Size: int64(len(out)), SHA256: hex.EncodeToString(sum[:]), Modules: nmods,
		Firmware: fwNames, FirmwareBytes: fwBytes, MissingFirmware: fwMissing}, nil
}

func buildGoipa(ctx context.Context, o Options, out string) error {
	src := o.SourceDir
	if src == "" {
		src = "."
	}
	ld := "-s -w -buildid="
	if o.Version != "" {
		ld += " -X github.com/goipa/goipa/agent.Version=" + o.Version
	}
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-buildvcs=false", "-ldflags="+ld, "-o", out, "./cmd/goipa")
	cmd.Dir = src
	// GOAMD64=v1: QEMU's default TCG CPU and old servers lack v2+ instructions.
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+o.Arch, "GOAMD64=v1")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("building goipa: %v: %s", err, b)
	}
	return nil
}

// moduleRecords lays out lib/modules/<ver>/ with the chosen modules, a
// modules.dep listing each one's full dependency list, modules.alias
// for coldplug, and modules.builtin.
func moduleRecords(o Options) ([]cpio.Record, []*Module, error) {
	k := o.Kernel
	mods, builtin, err := ScanModules(k.ModulesDir)
	if err != nil {
		return nil, nil, err
	}
	extra, err := addExtraModules(k, mods, o.ExtraModules)
	if err != nil {
		return nil, nil, err
	}
	names := o.Modules
	if o.AllModules {
		names = nil
		for n := range mods {
			names = append(names, n)
		}
		sort.Strings(names)
	}
	names = append(append([]string(nil), names...), extra...)
	chosen, missing := Closure(mods, builtin, names)
	if len(missing) > 0 {
		return nil, nil, &MissingModulesError{Kernel: k.Version, Missing: missing}
	}
	base := filepath.Join("lib/modules", k.Version)
	var recs []cpio.Record
	var dep, alias strings.Builder
	for _, m := range chosen {
		src := m.Src
		if src == "" {
			src = filepath.Join(k.ModulesDir, m.Rel)
		}
		b, err := os.ReadFile(src)
		if err != nil {
			return nil, nil, err
		}
		recs = append(recs, cpio.StaticRecord(b, cpio.Info{Name: filepath.Join(base, m.Rel), Mode: cpio.S_IFREG | 0o644}))
		all, _ := Closure(mods, builtin, m.Deps)
		var deps []string
		for _, d := range all {
			deps = append(deps, d.Rel)
		}
		fmt.Fprintf(&dep, "%s: %s\n", m.Rel, strings.Join(deps, " "))
		for _, a := range m.Aliases {
			fmt.Fprintf(&alias, "alias %s %s\n", a, m.Name)
		}
	}
	recs = append(recs,
		cpio.StaticFile(filepath.Join(base, "modules.dep"), dep.String(), 0o644),
		cpio.StaticFile(filepath.Join(base, "modules.alias"), alias.String(), 0o644))
	if b, err := os.ReadFile(filepath.Join(k.ModulesDir, "modules.builtin")); err == nil {
		recs = append(recs, cpio.StaticRecord(b, cpio.Info{Name: filepath.Join(base, "modules.builtin"), Mode: cpio.S_IFREG | 0o644}))
	}
	return recs, chosen, nil
}

func compress(raw []byte, kind string) ([]byte, error) {
	var buf bytes.Buffer
	var w io.WriteCloser
	switch kind {
	case "none":
		return raw, nil
	case "gzip":
		zw, err := gzip.NewWriterLevel(&buf, gzip.BestCompression)
		if err != nil {
			return nil, err
		}
		w = zw // no name, zero mtime: reproducible
	case "zstd":
		zw, err := zstd.NewWriter(&buf, zstd.WithEncoderLevel(zstd.SpeedBetterCompression), zstd.WithEncoderConcurrency(1))
		if err != nil {
			return nil, err
		}
		w = zw
	default:
		return nil, fmt.Errorf("unknown compression %q (gzip, zstd or none)", kind)
	}
	if _, err := w.Write(raw); err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
