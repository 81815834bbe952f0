// Command gen boots goipa's ramdisk in QEMU machine shapes and saves
// each guest's snapshot (goipa snapshot, printed on the console by init
// with goipa-snapshot-console=1) under ../snapshots, for the inventory's
// table tests. Run it as root from the repository root when a shape
// changes: go run ./inventory/testdata/gen
package main

import (
	"context"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/goipa/goipa/initramfs"
)

type shape struct {
	name string
	uefi bool
	args func(dir string) []string
	nvme bool
}

func disk(dir, name string, size int64) string {
	p := filepath.Join(dir, name)
	os.WriteFile(p, nil, 0o644)
	os.Truncate(p, size)
	return p
}

var shapes = []shape{
	{name: "bios-virtio-scsi-nvme", nvme: true, args: func(dir string) []string {
		return []string{
			"-drive", "file=" + disk(dir, "vd.img", 1<<30) + ",if=none,id=xvd0,format=raw", "-device", "virtio-blk-pci,drive=xvd0,serial=goipa-vd-0",
			"-device", "virtio-scsi-pci,id=xscsi0",
			"-drive", "file=" + disk(dir, "sd.img", 2<<30) + ",if=none,id=xsd0,format=raw", "-device", "scsi-hd,drive=xsd0,bus=xscsi0.0,serial=goipa-scsi-0,rotation_rate=7200",
			"-netdev", "user,id=xn1", "-device", "virtio-net-pci,netdev=xn1,mac=52:54:00:00:00:02",
		}
	}},
	{name: "uefi-ahci-nvme-e1000e", uefi: true, nvme: true, args: func(dir string) []string {
		return []string{
			"-device", "ahci,id=xahci0",
			"-drive", "file=" + disk(dir, "sata.img", 4<<30) + ",if=none,id=xsata0,format=raw", "-device", "ide-hd,drive=xsata0,bus=xahci0.0,serial=goipa-sata-0,model=GOIPA SATA SSD,rotation_rate=1",
			"-netdev", "user,id=xn1", "-device", "e1000e,netdev=xn1,mac=52:54:00:00:00:02",
		}
	}},
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
}

func run() error {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	pkg, err := initramfs.DebianKernelPackage(ctx, "linux-image-amd64", "amd64")
	if err != nil {
		return err
	}
	k, err := initramfs.FetchDebianKernel(ctx, filepath.Join(initramfs.CacheDir(), "kernels"), pkg)
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "goipa-snapshots-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	initrd := filepath.Join(dir, "initramfs")
	if _, err := initramfs.Build(ctx, initramfs.Options{SourceDir: ".", Kernel: k, Modules: initramfs.ServerModules, Output: initrd}); err != nil {
		return err
	}
	for _, s := range shapes {
		o := initramfs.VMOptions{Kernel: k.Vmlinuz, Initrd: initrd, Cmdline: "ipa-standalone=1 goipa-snapshot-console=1 loglevel=1",
			UEFI: s.uefi, MAC: "52:54:00:00:00:01", Args: s.args(dir), MemoryMiB: 1536}
		if s.nvme {
			o.NVMeDisks = []string{disk(dir, s.name+"-nvme.img", 3<<30)}
		}
		vm, err := initramfs.StartVM(ctx, o)
		if err != nil {
			return err
		}
		_, err = vm.WaitFor(ctx, "goipa-snapshot-end", 5*time.Minute)
		console := vm.Console()
		vm.Kill()
		if err != nil {
			return fmt.Errorf("%s: %v\n%s", s.name, err, console)
		}
		_, rest, _ := strings.Cut(console, "goipa-snapshot-begin\n")
		body, _, _ := strings.Cut(rest, "goipa-snapshot-end")
		var b64 strings.Builder
		for _, l := range strings.Split(body, "\n") {
			if l = strings.TrimSpace(l); l != "" && strings.Trim(l, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=") == "" {
				b64.WriteString(l)
			}
		}
		raw, err := base64.StdEncoding.DecodeString(b64.String())
		if err != nil {
			return fmt.Errorf("%s: %w", s.name, err)
		}
		out := filepath.Join("inventory", "testdata", "snapshots", s.name+".tar.gz")
		if err := os.WriteFile(out, raw, 0o644); err != nil {
			return err
		}
		fmt.Printf("%s: %d bytes\n", out, len(raw))
	}
	return nil
}
