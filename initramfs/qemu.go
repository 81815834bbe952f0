package initramfs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"
)

// VMOptions describe a QEMU guest booting the ramdisk.
type VMOptions struct {
	// Kernel and Initrd boot directly; without them (and without ISO)
	// the firmware boots the disks.
	Kernel, Initrd string
	Cmdline        string
	// ISO boots this image from a CD drive instead of Kernel and Initrd
	// (whose parameters the ISO's boot loader then holds).
	ISO string
	// UEFI boots OVMF (Debian's ovmf package) instead of SeaBIOS, with a
	// fresh copy of its variable store, so the guest has efivarfs.
	UEFI bool
	// UEFIVars is the variable store to use instead of a fresh copy, kept
	// when QEMU exits: a machine's NVRAM across power cycles (the test
	// BMC's). It is filled from OVMF's template when missing or empty.
	UEFIVars string
	// NetBoot keeps QEMU's iPXE option ROM on the NIC and boots it first
	// (bootindex 0): a network boot. Without it the NIC has no ROM.
	NetBoot     bool
	VirtioDisks []string // raw disk files
	NVMeDisks   []string
	MAC         string
	// HostForward forwards 127.0.0.1:port on the host to the guest's
	// agent port (user networking); with Tap, the guest joins that tap
	// device instead (a provisioning network in a namespace).
	HostForward int
	GuestPort   int
	// MoreForwards are further {host port, guest port} TCP forwards on
	// user networking (the rescue test's SSH).
	MoreForwards [][2]int
	Tap          string
	MemoryMiB    int
	Console      io.Writer // the serial console, line by line
	NetNS        string    // run QEMU in this network namespace
	// Args are more QEMU arguments: an emulated BMC, SMBIOS strings.
	Args []string
	// Arch is the guest's architecture: amd64 (default) or arm64, which
	// boots qemu-system-aarch64's virt machine, always with UEFI (AAVMF,
	// Debian's qemu-efi-aarch64), its console on ttyAMA0.
	Arch string
}

// VM is a running guest.
type VM struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	mu    sync.Mutex
	lines []string
	// partial is the console's last line while it has no newline yet: a
	// prompt or a line editor's screen waits for input without ending
	// its line.
	partial string
	start   time.Time
	done    chan struct{}
	err     error
}

// Accel picks KVM only when a real KVM module is loaded: a nested /dev/kvm
// (PVM) cannot run Debian's kernels and would hang them.
func Accel() string {
	if f, err := os.OpenFile("/dev/kvm", os.O_RDWR, 0); err == nil {
		f.Close()
		for _, m := range []string{"/sys/module/kvm_intel", "/sys/module/kvm_amd"} {
			if _, err := os.Stat(m); err == nil {
				return "kvm"
			}
		}
	}
	return "tcg"
}

// StartVM boots the guest. It is killed when ctx ends (and if this
// process dies).
func StartVM(ctx context.Context, o VMOptions) (_ *VM, err error) {
	if o.MemoryMiB == 0 {
		o.MemoryMiB = 1024
	}
	if o.GuestPort == 0 {
		o.GuestPort = 9999
	}
	arm := o.Arch == "arm64"
	accel := Accel()
	if arm && runtime.GOARCH != "arm64" {
		accel = "tcg"
	}
	args := []string{"-accel", accel, "-m", fmt.Sprint(o.MemoryMiB), "-smp", "2", "-nographic", "-monitor", "none", "-no-reboot",
		"-device", "virtio-rng-pci"}
	console := "ttyS0"
	if arm {
		// pauth-impdef: QEMU's own pointer-authentication hash instead of
		// QARMA, several times faster under TCG.
		cpu := "max,pauth-impdef=on"
		if accel == "kvm" {
			cpu = "host"
		}
		args = append(args, "-machine", "virt", "-cpu", cpu)
		console = "ttyAMA0"
		o.UEFI = true // arm64 servers boot UEFI only
	}
	var cleanup []string
	switch {
	case o.ISO != "" && arm:
		args = append(args, "-device", "virtio-scsi-pci,id=cdscsi", "-drive", "file="+o.ISO+",media=cdrom,readonly=on,if=none,id=cd0",
			"-device", "scsi-cd,drive=cd0,bus=cdscsi.0,bootindex=0")
	case o.ISO != "":
		args = append(args, "-drive", "file="+o.ISO+",media=cdrom,readonly=on,if=ide,index=2", "-boot", "d")
	case o.Kernel == "":
		// Neither kernel nor ISO: the firmware boots what the disks hold
		// (a deployed system).
	default:
		args = append(args, "-kernel", o.Kernel, "-initrd", o.Initrd, "-append", "console="+console+" panic=-1 "+o.Cmdline)
	}
	if o.UEFI {
		find := ovmf
		if arm {
			find = aavmf
		}
		fw, err := find()
		if err != nil {
			return nil, err
		}
		if o.UEFIVars != "" {
			// The template copy is not needed: the caller's store is
			// kept, and filled from the template the first time.
			tmpl, rerr := os.ReadFile(fw.vars)
			os.Remove(fw.vars)
			if rerr != nil {
				return nil, rerr
			}
			if st, serr := os.Stat(o.UEFIVars); serr != nil || st.Size() == 0 {
				if err := os.WriteFile(o.UEFIVars, tmpl, 0o600); err != nil {
					return nil, fmt.Errorf("UEFI variable store: %w", err)
				}
			}
			fw.vars = o.UEFIVars
		} else {
			cleanup = append(cleanup, fw.vars)
			defer func() {
				if err != nil {
					os.Remove(fw.vars)
				}
			}()
		}
		args = append(args, "-drive", "if=pflash,format=raw,readonly=on,file="+fw.code, "-drive", "if=pflash,format=raw,file="+fw.vars)
	}
	if !arm && accel == "kvm" {
		args = append(args, "-cpu", "host")
	}
	for i, d := range o.VirtioDisks {
		args = append(args, "-drive", fmt.Sprintf("file=%s,if=none,id=vd%d,format=raw", d, i), "-device", fmt.Sprintf("virtio-blk-pci,drive=vd%d", i))
	}
	for i, d := range o.NVMeDisks {
		args = append(args, "-drive", fmt.Sprintf("file=%s,if=none,id=nv%d,format=raw", d, i), "-device", fmt.Sprintf("nvme,drive=nv%d,serial=goipa-nvme-%d", i, i))
	}
	args = append(args, o.Args...)
	mac := ""
	if o.MAC != "" {
		mac = ",mac=" + o.MAC
	}
	rom := ",romfile="
	if o.NetBoot {
		rom = ",bootindex=0" // QEMU's default ROM: iPXE
	}
	if o.Tap != "" {
		args = append(args, "-netdev", "tap,id=n0,ifname="+o.Tap+",script=no,downscript=no", "-device", "virtio-net-pci,netdev=n0"+rom+mac)
	} else {
		fwd := ""
		if o.HostForward != 0 {
			fwd = fmt.Sprintf(",hostfwd=tcp:127.0.0.1:%d-:%d", o.HostForward, o.GuestPort)
		}
		for _, f := range o.MoreForwards {
			fwd += fmt.Sprintf(",hostfwd=tcp:127.0.0.1:%d-:%d", f[0], f[1])
		}
		args = append(args, "-netdev", "user,id=n0"+fwd, "-device", "virtio-net-pci,netdev=n0"+rom+mac)
	}
	name := "qemu-system-x86_64"
	if arm {
		name = "qemu-system-aarch64"
	}
	if o.NetNS != "" {
		args = append([]string{"netns", "exec", o.NetNS, name}, args...)
		name = "ip"
	}
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	cmd.Stderr = cmd.Stdout
	stdin, err := cmd.StdinPipe() // the serial console's input
	if err != nil {
		return nil, err
	}
	vm := &VM{cmd: cmd, stdin: stdin, start: time.Now(), done: make(chan struct{})}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting QEMU: %w", err)
	}
	go func() {
		// Read what arrives rather than whole lines: a prompt or a line
		// editor's screen waits for input without ending its line, and
		// WaitFor must see it (vm.partial) all the same.
		buf := make([]byte, 64<<10)
		var pending []byte
		addLine := func(line string) {
			vm.mu.Lock()
			vm.lines = append(vm.lines, line)
			vm.mu.Unlock()
			if o.Console != nil {
				fmt.Fprintln(o.Console, line)
			}
		}
		for {
			n, err := out.Read(buf)
			pending = append(pending, buf[:n]...)
			for {
				i := bytes.IndexByte(pending, '\n')
				if i < 0 {
					break
				}
				addLine(strings.TrimSuffix(string(pending[:i]), "\r"))
				pending = pending[i+1:]
			}
			if len(pending) > 1<<20 { // a runaway line is cut, as a scanner's limit would
				addLine(string(pending))
				pending = nil
			}
			pending = append([]byte(nil), pending...)
			vm.mu.Lock()
			vm.partial = string(pending)
			vm.mu.Unlock()
			if err != nil {
				if len(pending) > 0 {
					addLine(string(pending))
				}
				vm.mu.Lock()
				vm.partial = ""
				vm.mu.Unlock()
				break
			}
		}
		vm.err = cmd.Wait()
		for _, f := range cleanup {
			os.Remove(f)
		}
		close(vm.done)
	}()
	return vm, nil
}

// WaitFor waits until a console line contains s, and returns how long
// after QEMU's start it came. It fails early if the guest panics or exits.
func (vm *VM) WaitFor(ctx context.Context, s string, timeout time.Duration) (time.Duration, error) {
	deadline := time.After(timeout)
	seen := 0
	for {
		vm.mu.Lock()
		lines := vm.lines[seen:]
		seen = len(vm.lines)
		partial := vm.partial
		vm.mu.Unlock()
		for _, l := range append(lines[:len(lines):len(lines)], partial) {
			if strings.Contains(l, s) {
				return time.Since(vm.start), nil
			}
			if strings.Contains(l, "Kernel panic") {
				return 0, fmt.Errorf("the guest panicked: %s", l)
			}
		}
		select {
		case <-vm.done:
			if strings.Contains(vm.Console(), s) {
				return time.Since(vm.start), nil // printed just before QEMU exited
			}
			return 0, fmt.Errorf("QEMU exited before %q (%v)", s, vm.err)
		case <-deadline:
			return 0, fmt.Errorf("no %q on the console within %s", s, timeout)
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Type sends text to the guest's serial console.
func (vm *VM) Type(s string) error {
	_, err := io.WriteString(vm.stdin, s)
	return err
}

// Console returns everything the guest printed.
func (vm *VM) Console() string {
	vm.mu.Lock()
	defer vm.mu.Unlock()
	if vm.partial != "" {
		return strings.Join(append(vm.lines[:len(vm.lines):len(vm.lines)], vm.partial), "\n")
	}
	return strings.Join(vm.lines, "\n")
}

// Done is closed when QEMU has exited.
func (vm *VM) Done() <-chan struct{} { return vm.done }

// Kill stops QEMU.
func (vm *VM) Kill() {
	if vm.cmd.Process != nil {
		syscall.Kill(-vm.cmd.Process.Pid, syscall.SIGKILL)
	}
	<-vm.done
}

type ovmfFiles struct{ code, vars string }

// ovmf finds Debian's OVMF and copies its variable template, which the
// guest writes (boot entries), to a temporary file.
func ovmf() (ovmfFiles, error) {
	return firmware("UEFI boot needs OVMF: install Debian's ovmf package (test/install-deps.sh does)",
		[2]string{"/usr/share/OVMF/OVMF_CODE_4M.fd", "/usr/share/OVMF/OVMF_VARS_4M.fd"},
		[2]string{"/usr/share/OVMF/OVMF_CODE.fd", "/usr/share/OVMF/OVMF_VARS.fd"})
}

// aavmf is ovmf for arm64: Debian's qemu-efi-aarch64, both images padded
// to the virt machine's 64 MiB flash banks.
func aavmf() (ovmfFiles, error) {
	return firmware("arm64 guests need AAVMF: install Debian's qemu-efi-aarch64 package (test/install-deps.sh does)",
		[2]string{"/usr/share/AAVMF/AAVMF_CODE.fd", "/usr/share/AAVMF/AAVMF_VARS.fd"})
}

func firmware(missing string, pairs ...[2]string) (ovmfFiles, error) {
	for _, pair := range pairs {
		if _, err := os.Stat(pair[0]); err != nil {
			continue
		}
		tmpl, err := os.ReadFile(pair[1])
		if err != nil {
			return ovmfFiles{}, err
		}
		f, err := os.CreateTemp("", "goipa-ovmf-vars-*.fd")
		if err != nil {
			return ovmfFiles{}, err
		}
		_, werr := f.Write(tmpl)
		if cerr := f.Close(); werr == nil {
			werr = cerr
		}
		if werr != nil {
			os.Remove(f.Name())
			return ovmfFiles{}, werr
		}
		return ovmfFiles{code: pair[0], vars: f.Name()}, nil
	}
	return ovmfFiles{}, errors.New(missing)
}
