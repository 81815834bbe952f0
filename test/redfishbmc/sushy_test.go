package redfishbmc

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/goipa/goipa/initramfs"
	"github.com/goipa/goipa/internal/testenv"
	"github.com/goipa/goipa/test/realironic"
)

// sushyScript drives the BMC as Ironic's redfish driver does, through
// Debian's python3-sushy (4.3.3, installed with Ironic): a session login,
// get_system, the virtual CD of the system's managers, boot options and
// reset, each validated by sushy against the allowable values the BMC
// advertises. It prints what sushy then reads.
const sushyScript = `
import json, sys, sushy
url, user, password, system_path = sys.argv[1:5]
conn = sushy.Sushy(url, username=user, password=password)
system = conn.get_system(system_path)
def cds():
    return [v for m in system.managers for v in m.virtual_media.get_members()
            if sushy.VIRTUAL_MEDIA_CD in v.media_types]
for action in sys.argv[5:]:
    verb, _, arg = action.partition('=')
    if verb == 'insert':
        cds()[0].insert_media(arg, inserted=True, write_protected=True)
    elif verb == 'eject':
        cds()[0].eject_media()
    elif verb == 'boot':
        target, enabled, mode = arg.split(',')
        system.set_system_boot_options(sushy.BootSource(target), enabled=sushy.BootSourceOverrideEnabled(enabled),
                                       mode=sushy.BootSourceOverrideMode(mode))
    elif verb == 'reset':
        system.reset_system(sushy.ResetType(arg))
    else:
        raise SystemExit('unknown action ' + action)
    system.refresh()
cd = cds()[0]
print(json.dumps({
    'session': conn._auth.get_session_key() is not None,
    'power': system.power_state.value,
    'target': system.boot.target.value, 'enabled': system.boot.enabled.value, 'mode': system.boot.mode.value,
    'inserted': bool(cd.inserted), 'image': cd.image,
}))
`

type sushyView struct {
	Session  bool
	Power    string
	Target   string
	Enabled  string
	Mode     string
	Inserted bool
	Image    *string
}

// debianPython is Debian's interpreter, which sees python3-sushy (a
// python3 earlier on PATH, pyenv's, does not).
const debianPython = "/usr/bin/python3"

func runSushy(t *testing.T, bmcURL string, b *BMC, actions ...string) sushyView {
	t.Helper()
	user, password := b.Credentials()
	args := append([]string{"-c", sushyScript, bmcURL, user, password, b.SystemPath()}, actions...)
	var stderr bytes.Buffer
	cmd := exec.Command(debianPython, args...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("sushy %v: %v\n%s", actions, err, stderr.String())
	}
	var v sushyView
	if err := json.Unmarshal(out, &v); err != nil {
		t.Fatalf("sushy %v printed %q: %v", actions, out, err)
	}
	return v
}

// needSushy fails the test unless QEMU and Debian's python3-sushy are
// there.
func needSushy(t *testing.T) {
	t.Helper()
	testenv.NeedCommands(t, "qemu-system-x86_64", debianPython)
	if out, err := exec.Command(debianPython, "-c", "import sushy").CombinedOutput(); err != nil {
		t.Fatalf("these tests need Debian's python3-sushy (installed with Ironic: test/install-deps.sh): %v: %s", err, out)
	}
}

var ramdisk struct {
	once  sync.Once
	iso   string
	error error
}

// bootISO builds goipa's ramdisk with Debian's cloud kernel and the
// repository's ISO tooling around it (ISOLINUX for BIOS, systemd-boot
// for UEFI), once per test run.
func bootISO(t *testing.T) string {
	t.Helper()
	testenv.NeedCommands(t, "apt-get", "apt-cache", "dpkg-deb", "go")
	needSushy(t)
	ramdisk.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
		defer cancel()
		pkg, err := initramfs.DebianKernelPackage(ctx, "linux-image-cloud-amd64", "amd64")
		if err != nil {
			ramdisk.error = err
			return
		}
		k, err := initramfs.FetchDebianKernel(ctx, filepath.Join(initramfs.CacheDir(), "kernels"), pkg)
		if err != nil {
			ramdisk.error = err
			return
		}
		dir, err := testenv.SharedTempDir("goipa-redfishbmc-iso-")
		if err != nil {
			ramdisk.error = err
			return
		}
		initrd := filepath.Join(dir, "goipa.initramfs")
		if _, err := initramfs.Build(ctx, initramfs.Options{SourceDir: "../..", Kernel: k, Modules: initramfs.VirtioModules, Output: initrd}); err != nil {
			ramdisk.error = err
			return
		}
		ramdisk.iso = filepath.Join(dir, "goipa.iso")
		_, ramdisk.error = initramfs.BuildISO(ctx, initramfs.ISOOptions{Kernel: k.Vmlinuz, Initrd: initrd, Cmdline: "ipa-standalone=1", Output: ramdisk.iso})
	})
	if ramdisk.error != nil {
		t.Fatalf("building the ISO: %v", ramdisk.error)
	}
	return ramdisk.iso
}

func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }

// agentCommand posts a command to the agent in the guest and returns its
// result (standalone: no token).
func agentCommand(t *testing.T, port int, name string) map[string]any {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"name": name, "params": map[string]any{}})
	resp, err := (&http.Client{Timeout: 60 * time.Second}).Post(fmt.Sprintf("http://127.0.0.1:%d/v1/commands/?wait=true", port), "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	defer resp.Body.Close()
	var res map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&res); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return res
}

// startPowerCommand starts an agent command that takes the machine down
// (so nothing waits for its end) and checks that the agent took it.
func startPowerCommand(t *testing.T, port int, name string) {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"name": name, "params": map[string]any{}})
	resp, err := (&http.Client{Timeout: 60 * time.Second}).Post(fmt.Sprintf("http://127.0.0.1:%d/v1/commands/", port), "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%s: HTTP %s", name, resp.Status)
	}
}

func bootMode(t *testing.T, port int) string {
	res := agentCommand(t, port, "poll.get_hardware_info")
	inv, _ := res["command_result"].(map[string]any)
	boot, _ := inv["boot"].(map[string]any)
	mode, _ := boot["current_boot_mode"].(string)
	return mode
}

// TestSushyBootsTheMachineFromVirtualMedia: sushy 4.3.3 logs in to the
// BMC, inserts goipa's ISO (served over HTTP) in the virtual CD, sets a
// one-time Cd boot with the boot mode and powers the machine on: the
// firmware the mode names (OVMF for UEFI, SeaBIOS for Legacy) boots the
// ISO to goipa's API, which reports that boot mode, and the one-time
// override is spent. Then, per firmware:
//   - UEFI: the CD is ejected and re-inserted while the machine runs
//     (QMP medium change), and ForceOff stops QEMU.
//   - BIOS: with a continuous Cd override the guest reboots itself
//     (standby.run_image): the BMC starts the machine again from the CD,
//     and the guest powering itself off (standby.power_off) is Off in
//     sushy's eyes.
func TestSushyBootsTheMachineFromVirtualMedia(t *testing.T) {
	testenv.NeedRoot(t)
	iso := bootISO(t)
	images := httptest.NewServer(http.FileServer(http.Dir(filepath.Dir(iso))))
	defer images.Close()
	imageURL := images.URL + "/" + filepath.Base(iso)

	for _, tc := range []struct {
		name, mode, want string
		uefi             bool
	}{
		{"uefi", "UEFI", "uefi", true},
		{"bios", "Legacy", "bios", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
			defer cancel()
			port := realironic.FreePort(t)
			disk := filepath.Join(t.TempDir(), "disk.img")
			if err := os.WriteFile(disk, nil, 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.Truncate(disk, 1<<30); err != nil {
				t.Fatal(err)
			}
			// The machine starts in the other mode: the boot options
			// must switch it.
			b, err := New(Options{UEFI: !tc.uefi, Disks: []string{disk}, VM: initramfs.VMOptions{HostForward: port, GuestPort: 9999}})
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			srv := httptest.NewServer(b)
			defer srv.Close()
			defer func() {
				if t.Failed() {
					t.Logf("console:\n%s", b.Console().Tail(60))
				}
			}()

			v := runSushy(t, srv.URL, b)
			if !v.Session || v.Power != "Off" || v.Inserted {
				t.Fatalf("fresh BMC as sushy reads it: %+v, want a session, Off and an empty CD", v)
			}
			start := time.Now()
			v = runSushy(t, srv.URL, b, "insert="+imageURL, "boot=Cd,Once,"+tc.mode, "reset=On")
			if v.Power != "On" || !v.Inserted || v.Image == nil || *v.Image != imageURL || v.Mode != tc.mode || v.Target != "Cd" || v.Enabled != "Disabled" {
				t.Errorf("after insert, one-time Cd boot and On: %+v (want On, the image inserted, mode %s, the Once override spent)", v, tc.mode)
			}
			if _, err := b.Console().WaitFor(ctx, "API listening", 0, 10*time.Minute); err != nil {
				t.Fatal(err)
			}
			t.Logf("%s: power on to goipa's API from the virtual CD: %.1f s", tc.name, time.Since(start).Seconds())
			boots := b.Boots()
			if len(boots) != 1 || boots[0].Target != TargetCd || boots[0].UEFI != tc.uefi || boots[0].CD == "" {
				t.Fatalf("boots %+v, want one from Cd with uefi=%v and the image", boots, tc.uefi)
			}
			if got, err := os.ReadFile(boots[0].CD); err != nil {
				t.Fatal(err)
			} else if want, _ := os.ReadFile(iso); !bytes.Equal(got, want) {
				t.Fatalf("the CD's bytes (%d) are not the image's (%d)", len(got), len(want))
			}
			if m := bootMode(t, port); m != tc.want {
				t.Errorf("goipa reports boot mode %q, want %q", m, tc.want)
			}

			if tc.uefi {
				v = runSushy(t, srv.URL, b, "eject")
				if v.Inserted || v.Image != nil || v.Power != "On" {
					t.Errorf("after eject while on: %+v", v)
				}
				v = runSushy(t, srv.URL, b, "insert="+imageURL)
				if !v.Inserted {
					t.Errorf("after insert while on: %+v", v)
				}
				v = runSushy(t, srv.URL, b, "reset=ForceOff")
				if v.Power != "Off" || b.PoweredOn() {
					t.Errorf("after ForceOff: sushy reads %s, QEMU running %v", v.Power, b.PoweredOn())
				}
				return
			}

			mark := b.Console().Mark()
			runSushy(t, srv.URL, b, "boot=Cd,Continuous,"+tc.mode)
			startPowerCommand(t, port, "standby.run_image")
			if _, err := b.Console().WaitFor(ctx, "redfishbmc: the guest reset the machine", mark, 2*time.Minute); err != nil {
				t.Fatal(err)
			}
			if _, err := b.Console().WaitFor(ctx, "API listening", mark, 10*time.Minute); err != nil {
				t.Fatal(err)
			}
			if boots := b.Boots(); len(boots) != 2 || boots[1].Target != TargetCd {
				t.Fatalf("boots %+v, want a second one from Cd", boots)
			}
			startPowerCommand(t, port, "standby.power_off")
			for end := time.Now().Add(2 * time.Minute); b.PoweredOn() && time.Now().Before(end); time.Sleep(time.Second) {
			}
			if v = runSushy(t, srv.URL, b); v.Power != "Off" {
				t.Errorf("after the guest powered off: sushy reads %s", v.Power)
			}
			if n := len(b.Boots()); n != 2 {
				t.Errorf("%d boots: a power-off must not start the machine again", n)
			}
		})
	}
}

// TestSushyNetworkBoot: a one-time Pxe override boots the NIC's option
// ROM (QEMU's iPXE) first, and the next power-on is back to the disks.
func TestSushyNetworkBoot(t *testing.T) {
	testenv.NeedRoot(t)
	needSushy(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	b, err := New(Options{VM: initramfs.VMOptions{MemoryMiB: 256}})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	srv := httptest.NewServer(b)
	defer srv.Close()
	v := runSushy(t, srv.URL, b, "boot=Pxe,Once,Legacy", "reset=On")
	if v.Power != "On" || v.Target != "Pxe" || v.Enabled != "Disabled" {
		t.Errorf("after a one-time Pxe boot and On: %+v", v)
	}
	if _, err := b.Console().WaitFor(ctx, "iPXE initialising devices", 0, 3*time.Minute); err != nil {
		t.Fatalf("%v\n%s", err, b.Console().Tail(30))
	}
	mark := b.Console().Mark()
	runSushy(t, srv.URL, b, "reset=ForceRestart")
	if boots := b.Boots(); len(boots) != 2 || boots[0].Target != TargetPxe || boots[1].Target != TargetNone {
		t.Errorf("boots %+v, want Pxe then the firmware's own order", boots)
	}
	// No disk, an empty CD, no NIC ROM: SeaBIOS finds nothing to boot.
	if _, err := b.Console().WaitFor(ctx, "No bootable device", mark, 3*time.Minute); err != nil {
		t.Fatalf("%v\n%s", err, b.Console().Tail(30))
	}
	// The first boot's last lines may still arrive after the mark: what
	// counts is after the second power-on's line.
	if _, second, _ := strings.Cut(b.Console().String(), "redfishbmc: power on: boot target None"); strings.Contains(second, "iPXE") {
		t.Errorf("the second boot ran iPXE: the one-time override was not spent:\n%s", b.Console().Tail(40))
	}
	if v := runSushy(t, srv.URL, b, "reset=ForceOff"); v.Power != "Off" {
		t.Errorf("after ForceOff: %s", v.Power)
	}
}
