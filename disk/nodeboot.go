package disk

import "strings"

// NodeBootMode is the boot mode a partition image's disk is laid out for
// (IPA's get_boot_mode): from the node Ironic sent, secure boot means
// UEFI; then instance_info's deploy_boot_mode, the boot_mode capability
// (instance_info's, then properties'), driver_internal_info's
// deploy_boot_mode, and last ramdisk, the mode the ramdisk booted in.
func NodeBootMode(node map[string]any, ramdisk string) string {
	ii, _ := node["instance_info"].(map[string]any)
	props, _ := node["properties"].(map[string]any)
	dii, _ := node["driver_internal_info"].(map[string]any)
	for _, caps := range []any{ii["capabilities"], props["capabilities"]} {
		if capability(caps, "secure_boot") == "true" {
			return "uefi"
		}
	}
	deployMode := func(m map[string]any) string { s, _ := m["deploy_boot_mode"].(string); return s }
	for _, m := range []string{deployMode(ii), capability(ii["capabilities"], "boot_mode"), capability(props["capabilities"], "boot_mode"), deployMode(dii)} {
		if m == "uefi" || m == "bios" {
			return m
		}
	}
	return ramdisk
}

// NodeDiskLabel is the partition table a partition image's disk gets
// (IPA's get_disk_label): GPT in UEFI mode, else the disk_label
// capability, else MBR ("msdos").
func NodeDiskLabel(node map[string]any, bootMode string) string {
	if bootMode == "uefi" {
		return "gpt"
	}
	ii, _ := node["instance_info"].(map[string]any)
	props, _ := node["properties"].(map[string]any)
	for _, caps := range []any{ii["capabilities"], props["capabilities"]} {
		if l := capability(caps, "disk_label"); l == "gpt" || l == "msdos" {
			return l
		}
	}
	return "msdos"
}

// capability reads one key from a capabilities value, which Ironic keeps
// as "k1:v1,k2:v2" in properties and as a dict in instance_info.
func capability(caps any, key string) string {
	switch c := caps.(type) {
	case map[string]any:
		s, _ := c[key].(string)
		return s
	case string:
		for _, kv := range strings.Split(c, ",") {
			if k, v, ok := strings.Cut(kv, ":"); ok && strings.TrimSpace(k) == key {
				return strings.TrimSpace(v)
			}
		}
	}
	return ""
}
