package test

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/u-root/u-root/pkg/cpio"

	"github.com/goipa/goipa/initramfs"
	"github.com/goipa/goipa/internal/testenv"
)

// maxServerRamdisk is the compressed size the server ramdisk, drivers
// and firmware included, must stay under (issue 22).
const maxServerRamdisk = 40 << 20

// TestServerRamdiskDriversAndFirmware builds the default amd64 server
// ramdisk from Debian's generic kernel with the firmware its modules
// declare, as goipa-build does, and checks it stays under 40 MiB
// compressed, carries the new drivers with their dependencies, and the
// blobs the NICs need to come up (bnx2x, qed, ice's DDP package reached
// through its symlink, cxgb4, tg3, rtl_nic) as regular files. Without
// firmware dirs (goipa-build --firmware=none) no firmware goes in.
func TestServerRamdiskDriversAndFirmware(t *testing.T) {
	testenv.NeedCommands(t, "apt-get", "apt-cache", "dpkg-deb", "go")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	pkg, err := initramfs.DebianKernelPackage(ctx, "linux-image-amd64", "amd64")
	if err != nil {
		t.Fatal(err)
	}
	k, err := initramfs.FetchDebianKernel(ctx, filepath.Join(initramfs.CacheDir(), "kernels"), pkg)
	if err != nil {
		t.Fatal(err)
	}
	need, err := initramfs.DeclaresFirmware(k, initramfs.ServerModules, false)
	if err != nil || !need {
		t.Fatalf("the server set declares no firmware (%v)", err)
	}
	dirs, err := initramfs.FetchFirmware(ctx, filepath.Join(initramfs.CacheDir(), "firmware"))
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "server.initramfs")
	res, err := initramfs.Build(ctx, initramfs.Options{SourceDir: "..", Kernel: k, Modules: initramfs.ServerModules,
		DebugCommands: initramfs.DebugCommands, FirmwareDirs: dirs, Output: out})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("server ramdisk: %.1f MiB gzip, %d modules, %d firmware files (%.1f MiB), not in Debian: %v",
		float64(res.Size)/(1<<20), res.Modules, len(res.Firmware), float64(res.FirmwareBytes)/(1<<20), res.MissingFirmware)
	if res.Size >= maxServerRamdisk {
		t.Errorf("server ramdisk is %d bytes compressed, want under %d", res.Size, maxServerRamdisk)
	}
	recs := readRamdisk(t, out)
	modDir := "lib/modules/" + k.Version + "/"
	for _, m := range []string{"mpi3mr", "aacraid", "be2net", "qede", "qed", "igc", "r8169", "cxgb4", "bnx2x", "nfp", "iavf",
		"ixgbevf", "mlx4_en", "mlx4_core", "qla2xxx", "lpfc", "scsi_transport_fc"} {
		found := false
		for name := range recs {
			if strings.HasPrefix(name, modDir) && filepath.Base(name) == m+".ko" {
				found = true
			}
		}
		if !found {
			t.Errorf("the server ramdisk has no %s.ko", m)
		}
	}
	for _, fw := range []string{"bnx2x/bnx2x-e2-7.13.21.0.fw", "qed/qed_init_values_zipped-8.59.1.0.bin", "intel/ice/ddp/ice.pkg",
		"cxgb4/t6fw.bin", "tigon/tg3.bin", "rtl_nic/rtl8168h-2.fw", "ql2500_fw.bin"} {
		r, ok := recs["lib/firmware/"+fw]
		switch {
		case !ok:
			t.Errorf("the server ramdisk has no lib/firmware/%s", fw)
		case r.Mode&cpio.S_IFMT != cpio.S_IFREG || r.FileSize < 64:
			t.Errorf("lib/firmware/%s: mode %o, %d bytes: want the regular file its symlinks lead to", fw, r.Mode, r.FileSize)
		}
	}
	for name := range recs {
		if strings.HasPrefix(name, "lib/firmware/") && strings.Contains(name, "amdgpu") {
			t.Errorf("firmware no module of the set declares: %s", name)
		}
	}

	// --firmware=none: the same modules, no firmware. The binary and the
	// compression do not matter here, so the check stays cheap.
	bare := filepath.Join(t.TempDir(), "bare.initramfs")
	if _, err := initramfs.Build(ctx, initramfs.Options{Binary: "/bin/true", Kernel: k, Modules: initramfs.ServerModules, Compression: "none", Output: bare}); err != nil {
		t.Fatal(err)
	}
	for name := range readRamdisk(t, bare) {
		if strings.HasPrefix(name, "lib/firmware") {
			t.Errorf("a ramdisk built without firmware has %s", name)
		}
	}
}

// readRamdisk lists a (gzip or uncompressed) newc initramfs by name.
func readRamdisk(t *testing.T, path string) map[string]cpio.Info {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var r io.Reader = bytes.NewReader(raw)
	if bytes.HasPrefix(raw, []byte{0x1f, 0x8b}) {
		zr, err := gzip.NewReader(r)
		if err != nil {
			t.Fatal(err)
		}
		r = zr
	}
	data, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	recs, err := cpio.ReadAllRecords(cpio.Newc.Reader(bytes.NewReader(data)))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]cpio.Info{}
	for _, rec := range recs {
		out[rec.Name] = rec.Info
	}
	return out
}
