package agent

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestInstallBootloaderOutcomes covers the branches of
// image.install_bootloader that need no ESP: bad arguments, whole-disk
// images in BIOS mode, the grub-install gate, the failure override, and
// an ESP that cannot be found in UEFI mode.
func TestInstallBootloaderOutcomes(t *testing.T) {
	disk := filepath.Join(t.TempDir(), "disk")
	require.NoError(t, os.WriteFile(disk, make([]byte, 1<<20), 0o644)) // no partition table
	md := filepath.Join(t.TempDir(), "md0")                            // the install disk is a software RAID array
	require.NoError(t, os.WriteFile(md, make([]byte, 1<<20), 0o644))
	efivars := t.TempDir()
	tests := []struct {
		name, cmdline string
		params        map[string]any
		status        string
		errType       string
		onMD          bool
	}{
		{"bad target", "", map[string]any{"root_uuid": nil, "target_boot_mode": "legacy"}, StatusFailed, "InvalidCommandParamsError", false},
		{"whole disk, no signature", "", map[string]any{"root_uuid": "0x00000000", "target_boot_mode": "bios"}, StatusSucceeded, "", false},
		{"whole disk, MBR signature", "", map[string]any{"root_uuid": "0x1234abcd"}, StatusSucceeded, "", false},
		{"partition image, grub-install disabled", "", map[string]any{"root_uuid": "9f0f5a9e-8f6e-4a4b-a1a1-6c7d5c9e0b11"}, StatusFailed, "InvalidImage", false},
		{"ignored failure", "", map[string]any{"root_uuid": "9f0f5a9e-8f6e-4a4b-a1a1-6c7d5c9e0b11", "ignore_bootloader_failure": true}, StatusSucceeded, "", false},
		{"ignored by kernel parameter", "ipa-ignore-bootloader-failure=1", map[string]any{"root_uuid": "9f0f5a9e-8f6e-4a4b-a1a1-6c7d5c9e0b11"}, StatusSucceeded, "", false},
		// On software RAID a whole-disk image's boot code is inside the
		// array: only grub-install on the members makes it bootable.
		{"whole disk on software RAID, grub-install disabled", "", map[string]any{"root_uuid": "0x1234abcd", "target_boot_mode": "bios"}, StatusFailed, "InvalidImage", true},
		{"whole disk on software RAID, failure ignored", "", map[string]any{"root_uuid": "0x1234abcd", "ignore_bootloader_failure": true}, StatusSucceeded, "", true},
		{"UEFI without ESP", "goipa-efivars=" + efivars, map[string]any{"root_uuid": "0x00000000", "target_boot_mode": "uefi"}, StatusFailed, "DeviceNotFound", false},
	}
	_, uefiHost := os.Stat("/sys/firmware/efi")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if uefiHost == nil && tt.cmdline == "" && tt.status == StatusSucceeded {
				t.Skip("this host booted UEFI, so the agent takes the UEFI path here")
			}
			fd := &fakeDeploy{disk: disk}
			if tt.onMD {
				fd.disk = md
			}
			a := newTestAgent(t, "ipa-standalone=1 goipa-devices=/dev/loop7 "+tt.cmdline, WithDeploy(fd, fd, fd))
			a.cfg.Devices = []string{disk, md} // the fake disks are files: named as they are
			c := newAPI(t, a)
			code, res := c.post("image.install_bootloader", tt.params, "?wait=true")
			require.Equal(t, 200, code, "%v", res)
			assert.Equal(t, tt.status, res["command_status"], "%v", res["command_error"])
			if tt.errType != "" {
				require.NotNil(t, res["command_error"])
				assert.Equal(t, tt.errType, res["command_error"].(map[string]any)["type"], "%v", res["command_error"])
			} else {
				assert.Nil(t, res["command_result"], "IPA's result is null")
			}
		})
	}
	entries, err := os.ReadDir(efivars)
	require.NoError(t, err)
	assert.Empty(t, entries, "no boot entry without an ESP")
}
