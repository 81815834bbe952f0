package agent

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/goipa/goipa/efi"
)

// TestCleanUEFINVRAM runs clean_uefi_nvram through the API over a
// directory laid out like efivarfs (goipa-efivars).
func TestCleanUEFINVRAM(t *testing.T) {
	dir := t.TempDir()
	vars := efi.Vars{Dir: dir}
	g, err := efi.ParseGUID("2B7B4A3C-1D6E-4F2A-9C8B-0123456789AB")
	require.NoError(t, err)
	hd := efi.HardDrive(1, 2048, 1<<20, true, g, 0)
	add := func(desc string, path efi.DevicePath) uint16 {
		n, err := vars.AddBootEntry(efi.LoadOption{Attributes: efi.LoadOptionActive, Description: desc, Path: path})
		require.NoError(t, err)
		return n
	}
	pxe := add("UEFI PXEv4", efi.DevicePath{{Type: 0x03, SubType: 0x0b, Data: make([]byte, 33)}})
	add("debian", efi.DevicePath{hd, efi.FilePath(`\EFI\debian\shimx64.efi`)})
	add("shell", efi.DevicePath{{Type: 0x04, SubType: 0x06, Data: make([]byte, 16)}, efi.FilePath(`\EFI\tools\GRUBX64.EFI`)})

	a := newTestAgent(t, "ipa-standalone=1 goipa-efivars="+dir)
	c := newAPI(t, a)
	step := func(args map[string]any) map[string]any {
		_, res := c.post("clean.execute_clean_step", map[string]any{"step": map[string]any{"interface": "deploy", "step": "clean_uefi_nvram", "args": args},
			"node": map[string]any{}, "ports": []any{}}, "?wait=true")
		return res
	}
	res := step(map[string]any{"match_patterns": "not a list"})
	assert.Equal(t, StatusFailed, res["command_status"])
	assert.Equal(t, "InvalidCommandParamsError", res["command_error"].(map[string]any)["type"])
	res = step(map[string]any{"match_patterns": []any{"(unclosed"}})
	assert.Equal(t, StatusFailed, res["command_status"])

	res = step(map[string]any{}) // IPA's defaults: HD(...) entries and shim/grub loaders (case-insensitive)
	require.Equal(t, StatusSucceeded, res["command_status"], "%v", res["command_error"])
	ents, err := vars.BootEntries()
	require.NoError(t, err)
	require.Len(t, ents, 1)
	assert.Equal(t, "UEFI PXEv4", ents[0].Description)
	order, err := vars.BootOrder()
	require.NoError(t, err)
	assert.Equal(t, []uint16{pxe}, order)
}
