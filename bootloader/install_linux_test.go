package bootloader

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/goipa/goipa/efi"
)

// TestInstallOutcomes covers the branches of Install that need no ESP
// and no grub-install: whole-disk images, the grub-install gate, software
// RAID in BIOS mode, and a UEFI disk without an ESP.
func TestInstallOutcomes(t *testing.T) {
	dir := t.TempDir()
	plain := filepath.Join(dir, "disk")
	require.NoError(t, os.WriteFile(plain, make([]byte, 1<<20), 0o644)) // no partition table
	md := filepath.Join(dir, "md0")                                     // named as a software RAID array
	require.NoError(t, os.WriteFile(md, make([]byte, 1<<20), 0o644))
	const partUUID = "9f0f5a9e-8f6e-4a4b-a1a1-6c7d5c9e0b11"
	vars := efi.Vars{Dir: t.TempDir()}
	for _, tt := range []struct {
		name   string
		device string
		r      Request
		want   any // nil, or a pointer to the error type
	}{
		{"whole disk, no root UUID", plain, Request{BootMode: "bios"}, nil},
		{"whole disk, no signature", plain, Request{RootUUID: "0x00000000", BootMode: "bios"}, nil},
		{"whole disk, MBR signature", plain, Request{RootUUID: "0x1234abcd", BootMode: "bios"}, nil},
		{"partition image, grub-install disabled", plain, Request{RootUUID: partUUID, BootMode: "bios"}, new(*GrubDisabledError)},
		{"whole disk on software RAID, grub-install disabled", md, Request{RootUUID: "0x1234abcd", BootMode: "bios"}, new(*GrubDisabledError)},
		{"UEFI without ESP", plain, Request{RootUUID: "0x00000000", BootMode: "uefi", NVRAM: NVRAM{Vars: vars}}, new(*NoESPError)},
		{"UEFI on a device that is not there", filepath.Join(dir, "gone"), Request{BootMode: "uefi", NVRAM: NVRAM{Vars: vars}}, new(*TableError)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := Install(t.Context(), tt.device, tt.r, quiet)
			if tt.want == nil {
				assert.NoError(t, err)
				return
			}
			require.Error(t, err)
			assert.True(t, errors.As(err, tt.want), "%T: %v", err, err)
		})
	}
	ents, err := os.ReadDir(vars.Dir)
	require.NoError(t, err)
	assert.Empty(t, ents, "no boot entry without an ESP")
	assert.Equal(t, "Installing GRUB2 boot loader to device /dev/sda failed with exit status 1.", (&GrubError{Device: "/dev/sda", Err: errors.New("exit status 1")}).Error())
}
