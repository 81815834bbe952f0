package agent

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/goipa/goipa/bootloader"
)

// defaultNVRAMPatterns are IPA's: entries on a disk partition, and shim
// and grub loaders anywhere.
var defaultNVRAMPatterns = []any{`^HD\(`, `shim.*\.efi`, `grub.*\.efi`}

func (a *Agent) registerFirmwareSteps() {
	nvram := Step{Name: "clean_uefi_nvram", Interface: "deploy", Priority: 0, Abortable: true, Run: a.cleanUEFINVRAM,
		ArgsInfo: map[string]ArgInfo{"match_patterns": {Description: "A list of regular expressions to match EFI boot records against (case-insensitive); a matching record is deleted. Defaults to records on a disk partition and shim or grub loaders.", Required: false}}}
	a.steps.Register(Clean, nvram)
	a.steps.Register(Deploy, nvram)
	a.steps.Register(Clean, Step{Name: "erase_pstore", Interface: "deploy", Priority: 0, Abortable: true, Run: a.erasePstore})
	a.registerFirmwareUpdateSteps()
}

// cleanUEFINVRAM is IPA's clean_uefi_nvram: the patterns checked here,
// the entries removed by bootloader.RemoveMatching.
func (a *Agent) cleanUEFINVRAM(ctx context.Context, sc *StepCall) (any, error) {
	raw, ok := sc.Args["match_patterns"]
	if !ok || raw == nil {
		raw = defaultNVRAMPatterns
	}
	invalid := ErrInvalidParams("The match_patterns must be a list of strings: %v", raw)
	list, ok := raw.([]any)
	if !ok {
		return nil, invalid
	}
	var patterns []*regexp.Regexp
	for _, p := range list {
		s, ok := p.(string)
		if !ok {
			return nil, invalid
		}
		re, err := regexp.Compile("(?i)" + s)
		if err != nil {
			return nil, invalid
		}
		patterns = append(patterns, re)
	}
	vars, real := a.efiVars()
	if !real {
		sc.Log.Info("simulated: clean_uefi_nvram on a host agent changes nothing (goipa-efivars names a directory to work on)")
		return nil, nil
	}
	if err := bootloader.RemoveMatching(vars, patterns, sc.Log); err != nil {
		return nil, &Error{Type: "CommandExecutionError", Code: 500, Message: "Command execution failed", Details: err.Error()}
	}
	return nil, nil
}

// erasePstore removes what the kernel's pstore kept of earlier crashes
// (a previous tenant's kernel logs), as IPA's erase_pstore does.
func (a *Agent) erasePstore(ctx context.Context, sc *StepCall) (any, error) {
	if !a.realPower && a.cfg.Power != "system" {
		sc.Log.Info("simulated: erase_pstore on a host agent leaves the host's pstore alone")
		return nil, nil
	}
	dir := pstoreMount()
	if dir == "" {
		sc.Log.Info("erase_pstore: no pstore mounted")
		return nil, nil
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	for _, e := range ents {
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			return nil, &Error{Type: "CommandExecutionError", Code: 500, Message: "Command execution failed", Details: fmt.Sprintf("removing %s from pstore: %v", e.Name(), err)}
		}
	}
	sc.Log.Info("erase_pstore: cleared", "path", dir, "entries", len(ents))
	return nil, nil
}

// pstoreMount finds the pstore mount point in /proc/mounts.
func pstoreMount() string {
	f, err := os.Open("/proc/mounts")
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if fs := strings.Fields(sc.Text()); len(fs) >= 3 && fs[0] == "pstore" && fs[2] == "pstore" {
			return fs[1]
		}
	}
	return ""
}
