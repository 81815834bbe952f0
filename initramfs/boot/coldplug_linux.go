package boot

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// modules is what the ramdisk's modules.dep and modules.alias say.
type modules struct {
	dir     string
	deps    map[string][]string // module name -> rel paths of its deps, in load order
	rel     map[string]string   // module name -> rel path
	aliases [][2]string         // pattern, module name
	loaded  map[string]bool
}

func moduleName(rel string) string {
	return strings.ReplaceAll(strings.TrimSuffix(filepath.Base(rel), ".ko"), "-", "_")
}

func readModules(dir string) (*modules, error) {
	m := &modules{dir: dir, deps: map[string][]string{}, rel: map[string]string{}, loaded: map[string]bool{}}
	f, err := os.Open(filepath.Join(dir, "modules.dep"))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		rel, deps, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		n := moduleName(rel)
		m.rel[n] = rel
		m.deps[n] = strings.Fields(deps)
	}
	if a, err := os.Open(filepath.Join(dir, "modules.alias")); err == nil {
		defer a.Close()
		sc := bufio.NewScanner(a)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			if len(f) == 3 && f[0] == "alias" {
				m.aliases = append(m.aliases, [2]string{f[1], f[2]})
			}
		}
	}
	return m, nil
}

// load inserts a module after its dependencies (finit_module).
func (m *modules) load(name string) error {
	if m.loaded[name] {
		return nil
	}
	rel, ok := m.rel[name]
	if !ok {
		return fmt.Errorf("module %s is not in the ramdisk", name)
	}
	for _, d := range append(append([]string(nil), m.deps[name]...), rel) {
		n := moduleName(d)
		if m.loaded[n] {
			continue
		}
		f, err := os.Open(filepath.Join(m.dir, d))
		if err != nil {
			return err
		}
		err = unix.FinitModule(int(f.Fd()), "", 0)
		f.Close()
		if err != nil && !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("loading %s: %w", n, err)
		}
		m.loaded[n] = true
	}
	return nil
}

// match returns the modules whose alias patterns match a device's modalias.
func (m *modules) match(alias string) []string {
	var out []string
	for _, a := range m.aliases {
		if ok, _ := path.Match(a[0], alias); ok {
			out = append(out, a[1])
		}
	}
	return out
}

// companionModules are loaded after the driver they serve.
var companionModules = map[string][]string{
	"ipmi_si":   {"ipmi_devintf"},
	"ipmi_ssif": {"ipmi_devintf"},
}

// Coldplug loads the drivers the hardware needs, as udev would at boot:
// it reads every device's modalias in sysfs and loads the modules whose
// aliases match, with their dependencies, until no new device appears.
// virtio_rng goes first: without entropy, DHCP and TLS stall.
func Coldplug(ctx context.Context, log *slog.Logger) ([]string, error) {
	var u unix.Utsname
	unix.Uname(&u)
	dir := filepath.Join("/lib/modules", unix.ByteSliceToString(u.Release[:]))
	m, err := readModules(dir)
	if err != nil {
		return nil, fmt.Errorf("no modules for this kernel: %w", err)
	}
	var loaded []string
	var errs []error
	if _, ok := m.rel["virtio_rng"]; ok {
		if err := m.load("virtio_rng"); err != nil {
			errs = append(errs, err)
		}
	}
	seen := map[string]bool{}
	for round := 0; round < 6 && ctx.Err() == nil; round++ {
		var aliases []string
		for _, a := range deviceModaliases() {
			if !seen[a] {
				seen[a] = true
				aliases = append(aliases, a)
			}
		}
		if len(aliases) == 0 {
			break
		}
		for _, a := range aliases {
			for _, name := range m.match(a) {
				if m.loaded[name] {
					continue
				}
				if err := m.load(name); err != nil {
					errs = append(errs, err)
					continue
				}
				loaded = append(loaded, name)
			}
		}
		// Loaded bus drivers (virtio_pci) create new devices: look again.
		time.Sleep(50 * time.Millisecond)
	}
	// Modules no modalias names, which udev rules would load beside a
	// driver: /dev/ipmi0 needs ipmi_devintf once a BMC interface is found.
	for drv, companions := range companionModules {
		if !m.loaded[drv] {
			continue
		}
		for _, c := range companions {
			if _, ok := m.rel[c]; !ok || m.loaded[c] {
				continue
			}
			if err := m.load(c); err != nil {
				errs = append(errs, err)
				continue
			}
			loaded = append(loaded, c)
		}
	}
	if len(errs) > 0 {
		log.Warn("some modules failed to load", "error", errors.Join(errs...))
	}
	return loaded, nil
}

// WaitForHardware waits, bounded, until a disk and a NIC show up.
func WaitForHardware(ctx context.Context, timeout time.Duration) (disks, nics int) {
	deadline := time.Now().Add(timeout)
	for {
		disks, nics = 0, 0
		if es, err := os.ReadDir("/sys/block"); err == nil {
			for _, e := range es {
				n := e.Name()
				if !strings.HasPrefix(n, "loop") && !strings.HasPrefix(n, "ram") && !strings.HasPrefix(n, "zram") {
					disks++
				}
			}
		}
		if es, err := os.ReadDir("/sys/class/net"); err == nil {
			for _, e := range es {
				if _, err := os.Stat(filepath.Join("/sys/class/net", e.Name(), "device")); err == nil {
					nics++
				}
			}
		}
		if (disks > 0 && nics > 0) || time.Now().After(deadline) || ctx.Err() != nil {
			return disks, nics
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// LoadModules loads named modules (with their dependencies) from the
// ramdisk, for features no device asks for: 8021q for VLAN interfaces.
// Modules that are built in or absent are reported, not fatal.
func LoadModules(names ...string) error {
	var u unix.Utsname
	unix.Uname(&u)
	m, err := readModules(filepath.Join("/lib/modules", unix.ByteSliceToString(u.Release[:])))
	if err != nil {
		return err
	}
	var errs []error
	for _, n := range names {
		if _, ok := m.rel[n]; !ok {
			continue // built in, or not in this ramdisk: the kernel will say when it is used
		}
		if err := m.load(n); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// deviceModaliases reads the modalias of every device on a bus, plus the
// CPU's: every device a driver can bind sits on a bus, and reading
// /sys/bus/*/devices/* is much quicker under emulation than walking all
// of /sys/devices (memory blocks, virtual devices).
func deviceModaliases() []string {
	paths, _ := filepath.Glob("/sys/bus/*/devices/*/modalias")
	paths = append(paths, "/sys/devices/system/cpu/modalias")
	var out []string
	for _, p := range paths {
		if b, err := os.ReadFile(p); err == nil {
			if a := strings.TrimSpace(string(b)); a != "" {
				out = append(out, a)
			}
		}
	}
	return out
}
