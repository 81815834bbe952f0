package bootloader

import (
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/goipa/goipa/disk"
	"github.com/goipa/goipa/efi"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func hdPath(t *testing.T, file string) efi.DevicePath {
	t.Helper()
	g, err := efi.ParseGUID("2B7B4A3C-1D6E-4F2A-9C8B-0123456789AB")
	require.NoError(t, err)
	return efi.DevicePath{efi.HardDrive(1, 2048, 1<<20, true, g, 0), efi.FilePath(file)}
}

// TestReplaceBootEntry: an entry with the same label is dropped (IPA's
// duplicate rule) and the new one goes first in BootOrder.
func TestReplaceBootEntry(t *testing.T) {
	vars := efi.Vars{Dir: t.TempDir()}
	_, err := vars.AddBootEntry(efi.LoadOption{Attributes: efi.LoadOptionActive, Description: "debian", Path: hdPath(t, `\EFI\debian\grubx64.efi`)})
	require.NoError(t, err)
	other, err := vars.AddBootEntry(efi.LoadOption{Attributes: efi.LoadOptionActive, Description: "UEFI PXEv4", Path: efi.DevicePath{{Type: 0x03, SubType: 0x0b, Data: make([]byte, 33)}}})
	require.NoError(t, err)
	require.NoError(t, ReplaceBootEntry(vars, efi.LoadOption{Attributes: efi.LoadOptionActive, Description: "debian", Path: hdPath(t, `\EFI\debian\shimx64.efi`)}))
	ents, err := vars.BootEntries()
	require.NoError(t, err)
	require.Len(t, ents, 2)
	order, err := vars.BootOrder()
	require.NoError(t, err)
	require.Len(t, order, 2)
	assert.Equal(t, other, order[1], "the new entry is first")
	for _, e := range ents {
		if e.Description == "debian" {
			assert.Equal(t, order[0], e.Num)
			assert.Contains(t, e.Path.String(), "shimx64.efi", "the old entry is gone")
		}
	}
	report, err := vars.Report()
	require.NoError(t, err)
	assert.Regexp(t, `^BootOrder: [0-9A-F]{4},[0-9A-F]{4}\n`, string(report))
	assert.Contains(t, string(report), "debian\tHD(1,GPT,")
}

// TestRemoveMatching removes the entries whose path matches, and only
// those.
func TestRemoveMatching(t *testing.T) {
	vars := efi.Vars{Dir: t.TempDir()}
	pxe, err := vars.AddBootEntry(efi.LoadOption{Attributes: efi.LoadOptionActive, Description: "UEFI PXEv4", Path: efi.DevicePath{{Type: 0x03, SubType: 0x0b, Data: make([]byte, 33)}}})
	require.NoError(t, err)
	_, err = vars.AddBootEntry(efi.LoadOption{Attributes: efi.LoadOptionActive, Description: "debian", Path: hdPath(t, `\EFI\debian\shimx64.efi`)})
	require.NoError(t, err)
	require.NoError(t, RemoveMatching(vars, []*regexp.Regexp{regexp.MustCompile(`(?i)^HD\(`)}, quiet))
	order, err := vars.BootOrder()
	require.NoError(t, err)
	assert.Equal(t, []uint16{pxe}, order)
}

// TestFindESP: the ESP-typed partition (or MBR type 0xef) wins; else
// nothing without a UUID to look for.
func TestFindESP(t *testing.T) {
	gpt := disk.Table{Kind: "gpt", Partitions: []disk.Partition{{Number: 1, TypeGUID: "0FC63DAF-8483-4772-8E79-3D69D8477DE4"}, {Number: 2, TypeGUID: ESPType}}}
	p, ok := FindESP("/nonexistent", gpt, "")
	require.True(t, ok)
	assert.Equal(t, 2, p.Number)
	mbr := disk.Table{Kind: "mbr", Partitions: []disk.Partition{{Number: 1, MBRType: 0x83}, {Number: 3, MBRType: 0xef}}}
	p, ok = FindESP("/nonexistent", mbr, "")
	require.True(t, ok)
	assert.Equal(t, 3, p.Number)
	_, ok = FindESP("/nonexistent", disk.Table{Kind: "mbr", Partitions: []disk.Partition{{Number: 1, MBRType: 0x83}}}, "")
	assert.False(t, ok)
}

// TestSetupUEFIWithoutESP: a disk without an ESP is IPA's "No EFI
// partition could be detected" and no entry is written.
func TestSetupUEFIWithoutESP(t *testing.T) {
	dev := filepath.Join(t.TempDir(), "disk")
	require.NoError(t, os.WriteFile(dev, make([]byte, 1<<20), 0o644))
	vars := efi.Vars{Dir: t.TempDir()}
	done, err := SetupUEFI(t.Context(), dev, disk.Table{}, "", NVRAM{Vars: vars}, quiet)
	assert.False(t, done)
	var noESP *NoESPError
	require.True(t, errors.As(err, &noESP), "%v", err)
	assert.Contains(t, err.Error(), "No EFI partition could be detected on device "+dev)
	ents, _ := os.ReadDir(vars.Dir)
	assert.Empty(t, ents)
}

func TestUEFIErrorWording(t *testing.T) {
	inner := errors.New("no members found")
	e := &UEFIError{Device: "/dev/md0", RAID: true, Err: inner}
	assert.Equal(t, "Could not configure UEFI boot on software RAID device /dev/md0: no members found", e.Error())
	assert.ErrorIs(t, e, inner)
	assert.Equal(t, "Could not configure UEFI boot on device /dev/sda: no members found", (&UEFIError{Device: "/dev/sda", Err: inner}).Error())
}
