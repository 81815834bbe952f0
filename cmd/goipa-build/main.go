// Command goipa-build builds goipa's ramdisk (kernel + initramfs) and
// boots it in QEMU for local debugging.
//
//	goipa-build [flags]                   build build/goipa.initramfs and build/goipa.kernel
//	goipa-build qemu [flags]              build, then boot it with a virtio and an NVMe disk
//	goipa-build iso [flags]               build, then build/goipa.iso (BIOS and UEFI) for virtual media
//	goipa-build push --to REF [flags]     build, then push both as an OCI artifact
//	goipa-build pull --from REF [--dir D] fetch a pushed ramdisk (tag or digest)
//	goipa-build esp [--output F]          build/goipa-esp.img: GRUB ESP for Ironic's UEFI ISOs (driver_info bootloader)
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/goipa/goipa/initramfs"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	args := os.Args[1:]
	mode := ""
	if len(args) > 0 && (args[0] == "qemu" || args[0] == "push" || args[0] == "pull" || args[0] == "iso") {
		mode, args = args[0], args[1:]
	}
	var err error
	switch {
	case len(args) > 0 && args[0] == "esp":
		err = esp(ctx, args[1:])
	case mode == "pull":
		err = pull(ctx, args)
	default:
		err = run(ctx, args, mode)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "goipa-build:", err)
		os.Exit(1)
	}
}

// esp builds the ESP image Ironic embeds in the UEFI ISOs it builds
// itself from deploy_kernel and deploy_ramdisk (virtual media without
// DHCP): GRUB with linuxefi, which Ironic's grub.cfg uses.
func esp(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("goipa-build esp", flag.ContinueOnError)
	out := fs.String("output", "build/goipa-esp.img", "the ESP image to write")
	cfg := fs.String("grub-config-path", initramfs.IronicGrubConfigPath, "Ironic's [DEFAULT] grub_config_path: where its grub.cfg is on the ISO")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("esp: unexpected argument %q", fs.Arg(0))
	}
	res, err := initramfs.BuildESP(ctx, initramfs.ESPOptions{Output: *out, GrubConfigPath: *cfg})
	if err != nil {
		return err
	}
	fmt.Printf("esp %s: %d bytes (%.1f MiB), sha256 %s: give it to Ironic as the node's driver_info bootloader (or [DEFAULT] esp_image)\n",
		res.Path, res.Size, float64(res.Size)/(1<<20), res.SHA256)
	return nil
}

func pull(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("goipa-build pull", flag.ContinueOnError)
	from := fs.String("from", "", "registry/repo:tag or registry/repo@sha256:...")
	dir := fs.String("dir", "build", "where to put the kernel and initramfs")
	insecure := fs.Bool("insecure", false, "plain HTTP registry")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *from == "" {
		return fmt.Errorf("--from is required")
	}
	if err := os.MkdirAll(*dir, 0o755); err != nil {
		return err
	}
	k, i, err := initramfs.Pull(ctx, *from, *dir, *insecure)
	if err != nil {
		return err
	}
	fmt.Printf("kernel %s\ninitramfs %s\n", k, i)
	return nil
}

func run(ctx context.Context, args []string, mode string) error {
	boot := mode == "qemu"
	fs := flag.NewFlagSet("goipa-build", flag.ContinueOnError)
	out := fs.String("output", "build/goipa.initramfs", "initramfs to write")
	kernelOut := fs.String("kernel-output", "build/goipa.kernel", "where to copy the kernel image")
	pkg := fs.String("kernel-package", "", "Debian kernel package, or a meta package it resolves from (default linux-image-<arch>)")
	kdir := fs.String("kernel-dir", "", "an unpacked kernel (boot/vmlinuz-*, lib/modules/*) instead of a package")
	mods := fs.String("modules", "server", "modules: server, virtio, all, or a comma separated list")
	comp := fs.String("compression", "gzip", "gzip, zstd or none")
	arch := fs.String("arch", "amd64", "architecture of the ramdisk: amd64 or arm64")
	version := fs.String("version", "", "goipa version to stamp")
	cmdline := fs.String("append", "ipa-standalone=1", "kernel parameters for qemu, and the ISO's boot entries")
	isoOut := fs.String("iso-output", "build/goipa.iso", "iso: the ISO to write")
	port := fs.Int("port", 9999, "host port forwarded to the agent (qemu)")
	to := fs.String("to", "", "push: registry/repo:tag")
	debug := fs.Bool("debug-commands", true, "add u-root's shell and tools for the console")
	firmware := fs.String("firmware", "modules", "modules: the firmware files the chosen modules declare, from Debian's non-free-firmware; none: no firmware")
	insecure := fs.Bool("insecure", false, "push: plain HTTP registry")
	var extra []string
	fs.Func("extra-module", "a .ko built for the kernel outside its package, added under lib/modules/<version>/extra with its dependencies (repeatable; test drivers such as netdevsim); its vermagic must be the kernel's", func(p string) error {
		if !strings.HasSuffix(p, ".ko") {
			return fmt.Errorf("%s is no .ko file", p)
		}
		extra = append(extra, p)
		return nil
	})
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *arch != "amd64" && *arch != "arm64" {
		return fmt.Errorf("--arch %s: amd64 or arm64", *arch)
	}
	if *pkg == "" {
		*pkg = "linux-image-" + *arch
	}
	var k *initramfs.Kernel
	var err error
	if *kdir != "" {
		k, err = initramfs.KernelFromDir(*kdir)
	} else {
		name := *pkg
		if !strings.Contains(name, "-6.") && !strings.Contains(name, "-5.") {
			if name, err = initramfs.DebianKernelPackage(ctx, *pkg, *arch); err != nil {
				return err
			}
		}
		k, err = initramfs.FetchDebianKernel(ctx, filepath.Join(initramfs.CacheDir(), "kernels"), name, initramfs.ForArch(*arch))
	}
	if err != nil {
		return err
	}
	o := initramfs.Options{SourceDir: ".", Arch: *arch, Kernel: k, Compression: *comp, Output: *out, Version: *version, ExtraModules: extra}
	for _, p := range extra {
		// Checked before the build: a module for another kernel fails here,
		// not after minutes of building.
		if _, err := initramfs.CheckModule(k, p); err != nil {
			return fmt.Errorf("--extra-module: %w", err)
		}
	}
	if *debug {
		o.DebugCommands = initramfs.DebugCommands
	}
	switch *mods {
	case "server":
		o.Modules = initramfs.ServerModulesFor(*arch)
	case "virtio":
		o.Modules = initramfs.VirtioModules
	case "all":
		o.AllModules = true
	default:
		o.Modules = strings.Split(*mods, ",")
	}
	switch *firmware {
	case "none":
	case "modules":
		need, err := initramfs.DeclaresFirmware(k, o.Modules, o.AllModules)
		if err != nil {
			return err
		}
		if need {
			if o.FirmwareDirs, err = initramfs.FetchFirmware(ctx, filepath.Join(initramfs.CacheDir(), "firmware")); err != nil {
				return err
			}
		}
	default:
		return fmt.Errorf("--firmware %s: modules or none", *firmware)
	}
	start := time.Now()
	res, err := initramfs.Build(ctx, o)
	if err != nil {
		return err
	}
	if len(res.Firmware) > 0 || len(res.MissingFirmware) > 0 {
		fmt.Printf("firmware: %d files (%.1f MiB uncompressed) the modules declare\n", len(res.Firmware), float64(res.FirmwareBytes)/(1<<20))
		for _, m := range res.MissingFirmware {
			fmt.Printf("firmware not in Debian's non-free-firmware, left out: %s\n", m)
		}
	}
	if err := copyFile(k.Vmlinuz, *kernelOut); err != nil {
		return err
	}
	fmt.Printf("initramfs %s: %d bytes (%.1f MiB), sha256 %s, %d modules from kernel %s, built in %s\n",
		res.Path, res.Size, float64(res.Size)/(1<<20), res.SHA256, res.Modules, k.Version, time.Since(start).Round(time.Millisecond))
	fmt.Printf("kernel %s\n", *kernelOut)
	if mode == "iso" {
		iso, err := initramfs.BuildISO(ctx, initramfs.ISOOptions{Kernel: *kernelOut, Initrd: res.Path, Cmdline: *cmdline, Output: *isoOut, Arch: *arch})
		if err != nil {
			return err
		}
		boots := "BIOS and UEFI"
		if *arch == "arm64" {
			boots = "UEFI"
		}
		fmt.Printf("iso %s: %d bytes (%.1f MiB), sha256 %s (%s)\n", iso.Path, iso.Size, float64(iso.Size)/(1<<20), iso.SHA256, boots)
		return nil
	}
	if mode == "push" {
		if *to == "" {
			return fmt.Errorf("push needs --to registry/repo:tag")
		}
		ref, err := initramfs.Push(ctx, *to, *kernelOut, res.Path, *insecure, initramfs.PushArch(*arch))
		if err != nil {
			return err
		}
		fmt.Printf("pushed %s\n", ref)
		return nil
	}
	if !boot {
		return nil
	}
	dir, err := os.MkdirTemp("", "goipa-qemu-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	vd, nv := filepath.Join(dir, "virtio.img"), filepath.Join(dir, "nvme.img")
	for _, d := range []string{vd, nv} {
		if err := os.WriteFile(d, nil, 0o644); err != nil {
			return err
		}
		os.Truncate(d, 8<<30)
	}
	fmt.Printf("booting under %s; the agent answers on http://127.0.0.1:%d once up (Ctrl-C ends it)\n", initramfs.Accel(), *port)
	vm, err := initramfs.StartVM(ctx, initramfs.VMOptions{Kernel: *kernelOut, Initrd: res.Path, Cmdline: *cmdline,
		VirtioDisks: []string{vd}, NVMeDisks: []string{nv}, HostForward: *port, Console: os.Stdout, Arch: *arch})
	if err != nil {
		return err
	}
	select {
	case <-vm.Done():
	case <-ctx.Done():
		vm.Kill()
	}
	return nil
}

func copyFile(src, dst string) error {
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
