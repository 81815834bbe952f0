package agent

import (
	"context"
	"fmt"
	"strings"

	"github.com/goipa/goipa/disk"
)

// espMiB is the EFI system partition a partition image gets (IPA's
// efi_system_partition_size).
const espMiB = 550

// partitionDeploy is what a partition-image deploy left, for
// get_partition_uuids (spec 4.6).
type partitionDeploy struct {
	partitions map[string]any
	rootUUID   string
	espUUID    string // "" without an ESP
}

func (p *partitionDeploy) result() map[string]any {
	var esp any
	if p.espUUID != "" {
		esp = p.espUUID
	}
	return map[string]any{"partitions": p.partitions, "root uuid": p.rootUUID, "efi system partition uuid": esp}
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

// partitionBootMode and partitionDiskLabel follow spec 9.4, from the
// node Ironic sent: secure boot means UEFI; then instance_info's
// deploy_boot_mode, the boot_mode capability, driver_internal_info's
// deploy_boot_mode, and last the ramdisk's own mode.
func (a *Agent) partitionBootMode(node map[string]any) string {
	ii, _ := node["instance_info"].(map[string]any)
	props, _ := node["properties"].(map[string]any)
	dii, _ := node["driver_internal_info"].(map[string]any)
	for _, caps := range []any{ii["capabilities"], props["capabilities"]} {
		if capability(caps, "secure_boot") == "true" {
			return "uefi"
		}
	}
	for _, m := range []string{str(ii["deploy_boot_mode"]), capability(ii["capabilities"], "boot_mode"), capability(props["capabilities"], "boot_mode"), str(dii["deploy_boot_mode"])} {
		if m == "uefi" || m == "bios" {
			return m
		}
	}
	return a.bootMode()
}

func partitionDiskLabel(node map[string]any, bootMode string) string {
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

func str(v any) string { s, _ := v.(string); return s }

// deployPartitionImage lays out device as IPA's work_on_disk does
// (disk.LayOutPartitionImage) and streams the image into the root
// partition.
func (d *deployer) deployPartitionImage(ctx context.Context, c *Call, ii *ImageInfo, iso []byte, device string) (*partitionDeploy, error) {
	fail := func(format string, args ...any) error {
		return &Error{Type: "ImageWriteError", Code: 500, Message: "Error writing image to device", Details: fmt.Sprintf(format, args...)}
	}
	if ii.PreserveEphemeral {
		return nil, fail("preserve_ephemeral is not supported by goipa: the disk would be repartitioned")
	}
	node := d.a.Node()
	mode := d.a.partitionBootMode(node)
	layout := disk.PartitionLayout{Label: partitionDiskLabel(node, mode), UEFI: mode == "uefi", ESPMiB: espMiB,
		EphemeralMiB: ii.EphemeralMB, SwapMiB: ii.SwapMB, RootMiB: ii.RootMB, ConfigDriveMiB: (len(iso) + 1<<20 - 1) >> 20}
	c.Log.Info("partitioning for a partition image", "device", device, "label", layout.Label, "boot_mode", mode,
		"root_mb", ii.RootMB, "swap_mb", ii.SwapMB, "ephemeral_mb", ii.EphemeralMB, "configdrive_mb", layout.ConfigDriveMiB)
	laid, err := disk.LayOutPartitionImage(ctx, device, layout, iso, ii.EphemeralFormat)
	if err != nil {
		return nil, fail("%v", err)
	}
	parts, paths := laid.Partitions, map[string]any{}
	for role, path := range laid.Paths {
		paths[string(role)] = path
	}
	root := disk.PartitionPath(device, parts[disk.RoleRoot].Number)
	if err := d.images.WriteImage(ctx, ii, root, c.SetProgress); err != nil {
		return nil, fail("%v", err)
	}
	pd := &partitionDeploy{partitions: paths}
	if pd.rootUUID, err = disk.BlockUUID(root, parts[disk.RoleRoot]); err != nil {
		return nil, fail("root partition UUID: %v", err)
	}
	if p, ok := parts[disk.RoleESP]; ok {
		if pd.espUUID, err = disk.BlockUUID(disk.PartitionPath(device, p.Number), p); err != nil {
			return nil, fail("EFI system partition UUID: %v", err)
		}
	}
	return pd, nil
}
