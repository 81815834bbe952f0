package initramfs

import (
	"fmt"
	"path/filepath"
	"sort"
	"strings"
)

// ExtraModuleDir is where a ramdisk keeps modules built outside the
// kernel package (under lib/modules/<version>), as depmod's "extra".
const ExtraModuleDir = "extra"

// VermagicError says a module was built for another kernel than the
// ramdisk's: the kernel would refuse to load it.
type VermagicError struct {
	Module string // the module's file
	Got    string // its vermagic
	Want   string // the kernel's modules' vermagic
	Kernel string
}

func (e *VermagicError) Error() string {
	if e.Got == "" {
		return fmt.Sprintf("module %s has no vermagic: it is no kernel module built by kbuild (kernel %s wants %q)", e.Module, e.Kernel, e.Want)
	}
	return fmt.Sprintf("module %s was built for %q, kernel %s wants %q", e.Module, e.Got, e.Kernel, e.Want)
}

// ModuleInfo reads a .ko file's .modinfo (name, vermagic, dependencies,
// aliases, firmware).
func ModuleInfo(path string) (*Module, error) {
	m := &Module{Name: modName(path), Src: path}
	if m.Name == "" {
		return nil, fmt.Errorf("%s: not a .ko file", path)
	}
	if err := readModinfo(path, m); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return m, nil
}

// KernelVermagic is the vermagic the kernel's own modules carry: what
// a module built for it must carry too.
func KernelVermagic(k *Kernel) (string, error) {
	mods, _, err := ScanModules(k.ModulesDir)
	if err != nil {
		return "", err
	}
	return kernelVermagic(k, mods)
}

func kernelVermagic(k *Kernel, mods map[string]*Module) (string, error) {
	names := make([]string, 0, len(mods))
	for n := range mods {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if v := mods[n].Vermagic; v != "" {
			return v, nil
		}
	}
	return "", fmt.Errorf("kernel %s: no module with a vermagic in %s", k.Version, k.ModulesDir)
}

// CheckModule reads an out-of-tree module and checks that it was built
// for kernel k: its vermagic (kernel release, SMP, preemption model,
// module unloading, modversions) must equal the kernel's own modules'.
// The kernel itself compares less when symbol CRCs are present (not the
// release), but a ramdisk keeps modules per release: a module for
// another one is refused here.
func CheckModule(k *Kernel, path string) (*Module, error) {
	want, err := KernelVermagic(k)
	if err != nil {
		return nil, err
	}
	return checkModule(k, path, want)
}

func checkModule(k *Kernel, path, want string) (*Module, error) {
	m, err := ModuleInfo(path)
	if err != nil {
		return nil, err
	}
	if strings.TrimSpace(m.Vermagic) != strings.TrimSpace(want) {
		return nil, &VermagicError{Module: path, Got: m.Vermagic, Want: want, Kernel: k.Version}
	}
	m.Rel = filepath.Join(ExtraModuleDir, m.Name+".ko")
	return m, nil
}

// addExtraModules puts the out-of-tree modules among the kernel's
// (replacing one of the same name) and returns their names.
func addExtraModules(k *Kernel, mods map[string]*Module, paths []string) ([]string, error) {
	if len(paths) == 0 {
		return nil, nil
	}
	want, err := kernelVermagic(k, mods)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, p := range paths {
		m, err := checkModule(k, p, want)
		if err != nil {
			return nil, err
		}
		mods[m.Name] = m
		names = append(names, m.Name)
	}
	return names, nil
}
