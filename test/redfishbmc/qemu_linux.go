package redfishbmc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/goipa/goipa/initramfs"
)

// Options configure a BMC and its QEMU machine.
type Options struct {
	// Username and Password are the BMC's account (admin/password when
	// both are empty).
	Username, Password string
	// SystemID is the System's Id (goipa-vm by default).
	SystemID string
	// UEFI makes the machine boot OVMF until Ironic sets
	// BootSourceOverrideMode (Legacy: SeaBIOS).
	UEFI bool
	// VM is the machine: memory, NICs (MAC, Tap, NetNS, forwards),
	// console, more QEMU arguments. The BMC sets its firmware, boot
	// order, CD drive and QMP socket; Kernel, Initrd and ISO must be
	// empty (the machine boots from its devices).
	VM initramfs.VMOptions
	// Disks are raw disk files, attached as virtio disks in this order
	// (the boot override's Hdd boots the first bootable one).
	Disks []string
	// ImageClient downloads the images InsertMedia names (one with
	// Ironic's CA for an https image server); a plain client by default.
	ImageClient *http.Client
}

// New makes a BMC for a powered-off QEMU machine.
func New(o Options) (*BMC, error) {
	if o.VM.Kernel != "" || o.VM.Initrd != "" || o.VM.ISO != "" {
		return nil, errors.New("redfishbmc: the machine boots from its devices: VM.Kernel, VM.Initrd and VM.ISO must be empty")
	}
	if o.VM.Arch != "" && o.VM.Arch != "amd64" {
		return nil, fmt.Errorf("redfishbmc: only amd64 machines (IDE CD drive), not %s", o.VM.Arch)
	}
	dir, err := os.MkdirTemp("", "goipa-redfishbmc-")
	if err != nil {
		return nil, err
	}
	console := &ConsoleLog{}
	vm := o.VM
	if vm.Console != nil {
		vm.Console = io.MultiWriter(console, vm.Console)
	} else {
		vm.Console = console
	}
	c := config{username: o.Username, password: o.Password, systemID: o.SystemID, uefi: o.UEFI, imageClient: o.ImageClient}
	return newBMC(c, dir, console, func(next func() BootConfig) Machine {
		return &qemuMachine{tmpl: vm, disks: o.Disks, dir: dir, next: next, console: console}
	}), nil
}

// qemuMachine is a QEMU process per power-on. QEMU runs with -no-reboot,
// so a reboot the guest asks for ends the process (QMP says
// SHUTDOWN reason guest-reset) and the machine starts again with the
// BMC's boot settings of that moment, as a server's firmware reads its
// boot override at each reset.
type qemuMachine struct {
	tmpl    initramfs.VMOptions
	disks   []string
	dir     string
	next    func() BootConfig
	console io.Writer

	mu  sync.Mutex
	run *qemuRun
}

type qemuRun struct {
	vm      *initramfs.VM
	qmp     *qmpClient
	mu      sync.Mutex
	reason  string // of QMP's SHUTDOWN event
	wantOff bool
	stopped chan struct{} // closed when the machine is off again
}

const cdromID = "bmccdrom"

// qemuArgs are the devices of a boot: disks and the CD drive in the
// order the target asks, as bootindex properties the firmware follows
// (SeaBIOS and OVMF both read QEMU's bootorder).
func qemuArgs(c BootConfig, disks []string, qmpSocket string) []string {
	args := []string{"-qmp", "unix:" + qmpSocket + ",server=on,wait=off"}
	index := 1 // 0 is the NIC's on a network boot
	cd := func() {
		drive := "if=none,id=bmccd,media=cdrom,readonly=on"
		if c.CD != "" {
			drive += ",format=raw,file=" + c.CD
		}
		args = append(args, "-drive", drive, "-device", fmt.Sprintf("ide-cd,drive=bmccd,id=%s,bootindex=%d", cdromID, index))
		index++
	}
	hdd := func() {
		for i, d := range disks {
			args = append(args, "-drive", fmt.Sprintf("file=%s,if=none,id=bmcdisk%d,format=raw", d, i),
				"-device", fmt.Sprintf("virtio-blk-pci,drive=bmcdisk%d,bootindex=%d", i, index))
			index++
		}
	}
	if c.Target == TargetCd {
		cd()
		hdd()
	} else {
		hdd()
		cd()
	}
	return args
}

func (m *qemuMachine) On() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.run != nil
}

func (m *qemuMachine) PowerOn(ctx context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.run != nil {
		return nil
	}
	return m.start(ctx)
}

// start boots a new QEMU; m.mu is held. ctx is the machine's lifetime,
// not a request's.
func (m *qemuMachine) start(ctx context.Context) error {
	c := m.next()
	o := m.tmpl
	o.UEFI = c.UEFI
	if c.UEFI {
		o.UEFIVars = filepath.Join(m.dir, "OVMF_VARS.fd") // the machine's NVRAM, kept across power cycles
	}
	o.NetBoot = c.Target == TargetPxe
	sock := filepath.Join(m.dir, "qmp.sock")
	os.Remove(sock)
	o.Args = append(qemuArgs(c, m.disks, sock), m.tmpl.Args...)
	vm, err := initramfs.StartVM(ctx, o)
	if err != nil {
		return fmt.Errorf("power on: %w", err)
	}
	r := &qemuRun{vm: vm, stopped: make(chan struct{})}
	dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	q, err := dialQMP(dctx, sock, func(e qmpEvent) {
		if e.Name != "SHUTDOWN" {
			return
		}
		var d struct{ Reason string }
		json.Unmarshal(e.Data, &d)
		r.mu.Lock()
		r.reason = d.Reason
		r.mu.Unlock()
	})
	if err != nil {
		vm.Kill()
		return fmt.Errorf("power on: %w\n%s", err, tailOf(vm.Console(), 20))
	}
	r.qmp = q
	m.run = r
	go m.watch(ctx, r)
	return nil
}

// watch marks the machine off when QEMU ends, and starts it again when
// the guest asked for a reset.
func (m *qemuMachine) watch(ctx context.Context, r *qemuRun) {
	<-r.vm.Done()
	select { // the SHUTDOWN event may still be in the socket
	case <-r.qmp.done:
	case <-time.After(5 * time.Second):
	}
	r.qmp.close()
	r.mu.Lock()
	reset := r.reason == "guest-reset" && !r.wantOff
	r.mu.Unlock()
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.run == r {
		m.run = nil
	}
	close(r.stopped)
	if reset && ctx.Err() == nil {
		if m.console != nil {
			fmt.Fprintln(m.console, "redfishbmc: the guest reset the machine")
		}
		if err := m.start(ctx); err != nil && m.console != nil {
			fmt.Fprintf(m.console, "redfishbmc: restarting after the guest's reset: %v\n", err)
		}
	}
}

func (m *qemuMachine) current() *qemuRun {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.run
}

func (m *qemuMachine) ForceOff(ctx context.Context) error {
	r := m.current()
	if r == nil {
		return nil
	}
	r.mu.Lock()
	r.wantOff = true
	r.mu.Unlock()
	qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	_, err := r.qmp.execute(qctx, "quit", nil)
	cancel()
	if err != nil && !errors.Is(err, errQMPClosed) {
		r.vm.Kill() // QMP is stuck: pull the plug
	}
	select {
	case <-r.stopped:
	case <-time.After(10 * time.Second):
		r.vm.Kill()
		<-r.stopped
	}
	return nil
}

func (m *qemuMachine) PowerButton(ctx context.Context) error {
	return m.qmp(ctx, "system_powerdown", nil)
}

func (m *qemuMachine) NMI(ctx context.Context) error { return m.qmp(ctx, "inject-nmi", nil) }

func (m *qemuMachine) ChangeMedium(ctx context.Context, file string) error {
	if file == "" {
		// force: the guest locks the tray of a mounted CD; a BMC's
		// virtual media goes regardless.
		return m.qmp(ctx, "eject", map[string]any{"id": cdromID, "force": true})
	}
	return m.qmp(ctx, "blockdev-change-medium", map[string]any{"id": cdromID, "filename": file, "format": "raw", "read-only-mode": "read-only"})
}

func (m *qemuMachine) qmp(ctx context.Context, command string, args any) error {
	r := m.current()
	if r == nil {
		return errors.New("the machine is off")
	}
	_, err := r.qmp.execute(ctx, command, args)
	return err
}

func tailOf(s string, n int) string {
	l := strings.Split(s, "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "\n")
}
