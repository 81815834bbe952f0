package disk

import (
	"context"
	"fmt"
	"os"
	"strings"
)

// PartitionImageDisk is what LayOutPartitionImage left: the partitions
// by role and their device paths.
type PartitionImageDisk struct {
	Partitions map[PartitionRole]Partition
	Paths      map[PartitionRole]string
}

// LayOutPartitionImage prepares device for a partition image as IPA's
// work_on_disk does: the old metadata wiped, the partitions of layout
// made and their nodes waited for, the config drive (iso, nil for none)
// written into its partition and the ephemeral partition formatted
// (ephemeralFS, "" for ext4). The image itself then goes into
// Paths[RoleRoot].
func LayOutPartitionImage(ctx context.Context, device string, layout PartitionLayout, iso []byte, ephemeralFS string) (*PartitionImageDisk, error) {
	if err := WipeMetadata(ctx, device); err != nil {
		return nil, fmt.Errorf("wiping %s: %v", device, err)
	}
	parts, err := MakePartitions(ctx, device, layout)
	if err != nil {
		return nil, fmt.Errorf("partitioning %s: %v", device, err)
	}
	out := &PartitionImageDisk{Partitions: parts, Paths: map[PartitionRole]string{}}
	for role, p := range parts {
		path := PartitionPath(device, p.Number)
		if err := WaitForPartition(ctx, path); err != nil {
			return nil, err
		}
		out.Paths[role] = path
	}
	if path, ok := out.Paths[RoleConfigDrive]; ok {
		if err := writeWhole(path, iso); err != nil {
			return nil, fmt.Errorf("writing the config drive: %v", err)
		}
	}
	if path, ok := out.Paths[RoleEphemeral]; ok {
		if ephemeralFS == "" {
			ephemeralFS = "ext4"
		}
		if err := MakeFilesystem(ctx, path, ephemeralFS, "ephemeral0"); err != nil {
			return nil, fmt.Errorf("ephemeral partition: %v", err)
		}
	}
	return out, nil
}

// PartitionImageESPMiB is the EFI system partition a partition image's
// disk gets in UEFI mode (IPA's efi_system_partition_size).
const PartitionImageESPMiB = 550

// WrittenPartitionImage is what WritePartitionImage left: the laid-out
// disk and IPA's block_uuid of the root and of the ESP ("" without one).
type WrittenPartitionImage struct {
	PartitionImageDisk
	RootUUID, ESPUUID string
}

// WritePartitionImage lays out device (LayOutPartitionImage), has write
// put the image into the root partition, and reads the UUIDs
// get_partition_uuids reports.
func WritePartitionImage(ctx context.Context, device string, layout PartitionLayout, iso []byte, ephemeralFS string,
	write func(ctx context.Context, root string) error) (*WrittenPartitionImage, error) {
	laid, err := LayOutPartitionImage(ctx, device, layout, iso, ephemeralFS)
	if err != nil {
		return nil, err
	}
	root := laid.Partitions[RoleRoot]
	if err := write(ctx, laid.Paths[RoleRoot]); err != nil {
		return nil, err
	}
	out := &WrittenPartitionImage{PartitionImageDisk: *laid}
	if out.RootUUID, err = BlockUUID(laid.Paths[RoleRoot], root); err != nil {
		return nil, fmt.Errorf("root partition UUID: %w", err)
	}
	if p, ok := laid.Partitions[RoleESP]; ok {
		if out.ESPUUID, err = BlockUUID(laid.Paths[RoleESP], p); err != nil {
			return nil, fmt.Errorf("EFI system partition UUID: %w", err)
		}
	}
	return out, nil
}

// BlockUUID is IPA's block_uuid for partition p at path: the
// filesystem's UUID, else the partition's (lower case).
func BlockUUID(path string, p Partition) (string, error) {
	fs, err := ProbeDevice(path)
	if err != nil {
		return "", err
	}
	if fs.UUID != "" {
		return fs.UUID, nil
	}
	return strings.ToLower(p.UUID), nil
}

// writeWhole writes b at the start of path and syncs it.
func writeWhole(path string, b []byte) error {
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
