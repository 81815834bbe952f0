package disk

import "testing"

func TestNodeBootModeAndDiskLabel(t *testing.T) {
	for _, tt := range []struct {
		name             string
		node             map[string]any
		ramdisk          string
		wantMode, wantLb string
	}{
		{"nothing said: the ramdisk's mode, MBR", map[string]any{}, "bios", "bios", "msdos"},
		{"nothing said on a UEFI ramdisk", map[string]any{}, "uefi", "uefi", "gpt"},
		{"secure boot in instance_info's capabilities", map[string]any{"instance_info": map[string]any{"capabilities": map[string]any{"secure_boot": "true", "boot_mode": "bios"}}}, "bios", "uefi", "gpt"},
		{"secure boot in properties' capability string", map[string]any{"properties": map[string]any{"capabilities": "boot_mode:bios, secure_boot:true"}}, "bios", "uefi", "gpt"},
		{"instance_info deploy_boot_mode first", map[string]any{"instance_info": map[string]any{"deploy_boot_mode": "bios", "capabilities": map[string]any{"boot_mode": "uefi"}}}, "uefi", "bios", "msdos"},
		{"instance_info capability before properties'", map[string]any{"instance_info": map[string]any{"capabilities": map[string]any{"boot_mode": "uefi"}}, "properties": map[string]any{"capabilities": "boot_mode:bios"}}, "bios", "uefi", "gpt"},
		{"properties' capability string, with disk_label", map[string]any{"properties": map[string]any{"capabilities": "boot_mode:bios,disk_label:gpt"}}, "uefi", "bios", "gpt"},
		{"driver_internal_info last", map[string]any{"driver_internal_info": map[string]any{"deploy_boot_mode": "uefi"}}, "bios", "uefi", "gpt"},
		{"an unknown mode is skipped", map[string]any{"instance_info": map[string]any{"deploy_boot_mode": "legacy"}}, "bios", "bios", "msdos"},
		{"an unknown disk_label is skipped", map[string]any{"instance_info": map[string]any{"capabilities": map[string]any{"disk_label": "sun"}}}, "bios", "bios", "msdos"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			mode := NodeBootMode(tt.node, tt.ramdisk)
			if mode != tt.wantMode {
				t.Errorf("NodeBootMode = %q, want %q", mode, tt.wantMode)
			}
			if l := NodeDiskLabel(tt.node, mode); l != tt.wantLb {
				t.Errorf("NodeDiskLabel = %q, want %q", l, tt.wantLb)
			}
		})
	}
}
