package image

import (
	"context"
	"errors"
	"log/slog"

	"github.com/goipa/goipa/disk"
)

// Writer writes one image onto a device, leaving it unbootable on any
// failure; *Engine is the agent's.
type Writer interface {
	WriteImage(ctx context.Context, ii *Info, device string, progress func(any)) error
}

// ConfigDriveWriter adds a config-2 partition holding iso to a disk that
// already carries a whole-disk image (disk.WriteConfigDrive).
type ConfigDriveWriter interface {
	WriteConfigDrive(ctx context.Context, device string, iso []byte) (partition string, err error)
}

// Target is where and how Deploy puts an image.
type Target struct {
	Device      string
	ConfigDrive []byte // the ISO; nil for none
	// BootMode ("uefi" or "bios") and DiskLabel ("gpt" or "msdos") lay
	// out a partition image's disk (disk.NodeBootMode, disk.NodeDiskLabel).
	BootMode, DiskLabel string
}

// Deployed is what a deploy left, for get_partition_uuids.
type Deployed struct {
	Device string
	// A partition image's partitions (IPA's role names to their device
	// paths) and block UUIDs; ESPUUID is "" without an ESP. All empty
	// for a whole-disk image.
	Partitions        map[string]string
	RootUUID, ESPUUID string
}

// WriteError: the image (or a partition image's disk layout) could not
// be written.
type WriteError struct{ Err error }

func (e *WriteError) Error() string { return e.Err.Error() }
func (e *WriteError) Unwrap() error { return e.Err }

// ConfigDriveError: the whole-disk image is written, its config drive is
// not.
type ConfigDriveError struct{ Err error }

func (e *ConfigDriveError) Error() string { return "config drive: " + e.Err.Error() }
func (e *ConfigDriveError) Unwrap() error { return e.Err }

// Deploy writes ii to t.Device as IPA's prepare_image does: a partition
// image into the root partition of a disk laid out as IPA's work_on_disk
// does, with the config drive in its own partition; a whole-disk image
// onto the disk, with the config drive added after it. Errors are
// *WriteError or *ConfigDriveError.
func Deploy(ctx context.Context, w Writer, cd ConfigDriveWriter, ii *Info, t Target, progress func(any), log *slog.Logger) (*Deployed, error) {
	if log == nil {
		log = slog.Default()
	}
	if ii.IsPartition() {
		if ii.PreserveEphemeral {
			return nil, &WriteError{errors.New("preserve_ephemeral is not supported by goipa: the disk would be repartitioned")}
		}
		layout := disk.PartitionLayout{Label: t.DiskLabel, UEFI: t.BootMode == "uefi", ESPMiB: disk.PartitionImageESPMiB,
			EphemeralMiB: ii.EphemeralMB, SwapMiB: ii.SwapMB, RootMiB: ii.RootMB, ConfigDriveMiB: (len(t.ConfigDrive) + 1<<20 - 1) >> 20}
		log.Info("partitioning for a partition image", "device", t.Device, "label", layout.Label, "boot_mode", t.BootMode,
			"root_mb", ii.RootMB, "swap_mb", ii.SwapMB, "ephemeral_mb", ii.EphemeralMB, "configdrive_mb", layout.ConfigDriveMiB)
		written, err := disk.WritePartitionImage(ctx, t.Device, layout, t.ConfigDrive, ii.EphemeralFormat,
			func(ctx context.Context, root string) error { return w.WriteImage(ctx, ii, root, progress) })
		if err != nil {
			return nil, &WriteError{err}
		}
		out := &Deployed{Device: t.Device, Partitions: map[string]string{}, RootUUID: written.RootUUID, ESPUUID: written.ESPUUID}
		for role, path := range written.Paths {
			out.Partitions[string(role)] = path
		}
		return out, nil
	}
	if err := w.WriteImage(ctx, ii, t.Device, progress); err != nil {
		return nil, &WriteError{err}
	}
	if t.ConfigDrive != nil {
		part, err := cd.WriteConfigDrive(ctx, t.Device, t.ConfigDrive)
		if err != nil {
			return nil, &ConfigDriveError{err}
		}
		log.Info("config drive written", "partition", part, "bytes", len(t.ConfigDrive))
	}
	return &Deployed{Device: t.Device}, nil
}

// ConfigDriveFunc is a function as a ConfigDriveWriter, as
// disk.WriteConfigDrive is.
type ConfigDriveFunc func(ctx context.Context, device string, iso []byte) (string, error)

// WriteConfigDrive calls f.
func (f ConfigDriveFunc) WriteConfigDrive(ctx context.Context, device string, iso []byte) (string, error) {
	return f(ctx, device, iso)
}
