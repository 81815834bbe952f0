package agent

import (
	"context"
	"fmt"
	"os"
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

// deployPartitionImage lays out device as IPA's work_on_disk does and
// streams the image into the root partition.
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
	if err := disk.WipeMetadata(ctx, device); err != nil {
		return nil, fail("wiping %s: %v", device, err)
	}
	parts, err := disk.MakePartitions(ctx, device, layout)
	if err != nil {
		return nil, fail("partitioning %s: %v", device, err)
	}
	paths := map[string]any{}
	for role, p := range parts {
		path := disk.PartitionPath(device, p.Number)
		if err := disk.WaitForPartition(ctx, path); err != nil {
			return nil, fail("%v", err)
		}
		paths[string(role)] = path
	}
	if p, ok := parts[disk.RoleConfigDrive]; ok {
		if err := writeFile(disk.PartitionPath(device, p.Number), iso); err != nil {
			return nil, fail("writing the config drive: %v", err)
		}
	}
	if p, ok := parts[disk.RoleEphemeral]; ok {
		fs := ii.EphemeralFormat
		if fs == "" {
			fs = "ext4"
		}
		if err := disk.MakeFilesystem(ctx, disk.PartitionPath(device, p.Number), fs, "ephemeral0"); err != nil {
			return nil, fail("ephemeral partition: %v", err)
		}
	}
	root := disk.PartitionPath(device, parts[disk.RoleRoot].Number)
	if err := d.images.WriteImage(ctx, ii, root, c.SetProgress); err != nil {
		return nil, fail("%v", err)
	}
	pd := &partitionDeploy{partitions: paths}
	if pd.rootUUID, err = blockUUID(root, parts[disk.RoleRoot]); err != nil {
		return nil, fail("root partition UUID: %v", err)
	}
	if p, ok := parts[disk.RoleESP]; ok {
		if pd.espUUID, err = blockUUID(disk.PartitionPath(device, p.Number), p); err != nil {
			return nil, fail("EFI system partition UUID: %v", err)
		}
	}
	return pd, nil
}

// blockUUID is IPA's block_uuid: the filesystem UUID, else the PARTUUID.
func blockUUID(path string, p disk.Partition) (string, error) {
	fs, err := disk.ProbeDevice(path)
	if err != nil {
		return "", err
	}
	if fs.UUID != "" {
		return fs.UUID, nil
	}
	return strings.ToLower(p.UUID), nil
}

func writeFile(path string, b []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
