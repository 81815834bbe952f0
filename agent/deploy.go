package agent

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/goipa/goipa/disk"
	"github.com/goipa/goipa/download"
	"github.com/goipa/goipa/image"
	"github.com/goipa/goipa/inventory"
	"github.com/prometheus/client_golang/prometheus"
)

// standby.prepare_image, get_partition_uuids and the write_image and
// inject_files steps: IPA's parameters, results and error classes; the
// work is package image's (image.Deploy) and disk's.

// ImageInfo is IPA's image_info (image.ParseInfo).
type ImageInfo = image.Info

// ImageWriter streams, verifies and writes an image onto a device,
// leaving it unbootable on any failure (image.Engine).
type ImageWriter = image.Writer

// ConfigDriveWriter adds a config-2 partition to a disk that carries a
// whole-disk image (disk.WriteConfigDrive).
type ConfigDriveWriter = image.ConfigDriveWriter

// DiskSelector picks the install disk by root device hints (nil hints:
// IPA's default rule). The inventory package implements it, and it only
// ever sees the devices goipa may touch (goipa-devices).
type DiskSelector interface {
	RootDisk(ctx context.Context, hints map[string]any) (string, error)
}

// WithDeploy enables the image deploy commands and steps.
func WithDeploy(sel DiskSelector, w ImageWriter, cd ConfigDriveWriter) Option {
	return func(a *Agent) {
		a.deploy = &deployer{a: a, disks: sel, images: w, configDrive: cd}
		if c, ok := w.(interface{ Collectors() []prometheus.Collector }); ok {
			a.metrics.registry.MustRegister(c.Collectors()...)
		}
	}
}

// NewImageEngine returns the agent's ImageWriter: image.Engine with the
// agent's download parameters and Ironic's lookup config.
func NewImageEngine(cfg *Config, log *slog.Logger, lookupConfig func() map[string]any) ImageWriter {
	return image.NewEngine(image.EngineConfig{
		HTTP:  image.HTTPOptions{Insecure: cfg.Insecure, CAFile: cfg.CAFile, Timeout: cfg.ImageConnectionTimeout, Parallel: cfg.ImageParallel},
		Retry: image.Retry{Attempts: cfg.ImageConnectionRetries, Interval: cfg.ImageRetryInterval}, MaxDuration: cfg.ImageMaxDuration,
		Lookup: lookupConfig, Log: log})
}

// NewConfigDriveWriter returns the agent's ConfigDriveWriter.
func NewConfigDriveWriter(*slog.Logger) ConfigDriveWriter {
	return image.ConfigDriveFunc(disk.WriteConfigDrive)
}

// deployer holds what the last image deploy did, for get_partition_uuids.
type deployer struct {
	a           *Agent
	disks       DiskSelector
	images      ImageWriter
	configDrive ConfigDriveWriter

	mu   sync.Mutex
	last *image.Deployed // nil: nothing written yet
}

func (d *deployer) setLast(res *image.Deployed) {
	d.mu.Lock()
	d.last = res
	d.mu.Unlock()
}

func (a *Agent) registerDeploy() {
	d := a.deploy
	if d == nil {
		return
	}
	a.cmds.Register(Commands{Ext: "standby", Cmds: map[string]Command{
		"prepare_image": {Async: true, Run: func(ctx context.Context, c *Call) (any, error) {
			ii, _ := c.Params["image_info"].(map[string]any)
			cd, _ := c.Params["configdrive"].(string)
			return d.prepareImage(ctx, c, ii, cd)
		}, Validate: func(params map[string]any) error {
			// IPA's _validate_image_info runs before the command starts.
			ii, _ := params["image_info"].(map[string]any)
			_, err := d.parseImageInfo(ii)
			return err
		}},
		"get_partition_uuids": {Run: d.getPartitionUUIDs},
	}})
	a.cmds.Register(Commands{Ext: "image", Cmds: map[string]Command{
		"install_bootloader": {Async: true, Run: d.installBootloader},
	}})
	write := func(ctx context.Context, sc *StepCall) (any, error) {
		ii, _ := sc.Args["image_info"].(map[string]any)
		cd, _ := sc.Args["configdrive"].(string)
		msg, err := d.prepareImage(ctx, sc.Call, ii, cd)
		if err != nil {
			return nil, err
		}
		return map[string]any{"result": "prepare_image: " + msg}, nil
	}
	a.steps.Register(Deploy, Step{Name: "write_image", Interface: "deploy", Priority: 0, Run: write})
	a.steps.Register(Service, Step{Name: "write_image", Interface: "deploy", Priority: 0, Run: write})
	inject := Step{Name: "inject_files", Interface: "deploy", Priority: a.cfg.InjectFilesPriority, Run: d.injectFiles,
		ArgsInfo: map[string]ArgInfo{
			"files":     {Description: "Files to inject, a list of file structures with keys: 'path' (path to the file), 'partition' (partition specifier), 'content' (base64 encoded string), 'mode' (new file mode) and 'dirmode' (mode for the leaf directory, if created). Merged with the values from node.properties[inject_files].", Required: false},
			"verify_ca": {Description: "Whether to verify TLS certificates. Global agent options are used by default.", Required: false},
		}}
	a.steps.Register(Deploy, inject)
	a.steps.Register(Service, inject)
}

// installDisk picks the install disk by node's root device hints, after
// the host-mode guard, and only when the one device check allows it
// (prepare_image, install_bootloader, inject_files, bootc).
func (d *deployer) installDisk(ctx context.Context, node map[string]any) (string, error) {
	if err := d.a.mayTouchDisks(); err != nil {
		return "", err
	}
	device, err := d.disks.RootDisk(ctx, inventory.NodeRootDeviceHints(node))
	if err != nil {
		return "", deviceNotFound(err.Error())
	}
	if err := d.a.checkDevice(device); err != nil {
		return "", err
	}
	return device, nil
}

// deviceNotFound is IPA's DeviceNotFound for the install disk.
func deviceNotFound(details string) *Error {
	return &Error{Type: "DeviceNotFound", Code: 404, Message: "Error finding the disk or partition device to deploy the image onto", Details: details}
}

// parseImageInfo is image.ParseInfo with the lookup's
// agent_md5_checksum_enable (default true) and IPA's error class.
func (d *deployer) parseImageInfo(raw map[string]any) (*ImageInfo, error) {
	md5, ok := d.a.LookupConfig()["agent_md5_checksum_enable"].(bool)
	ii, err := image.ParseInfo(raw, md5 || !ok)
	var bad *image.InvalidInfoError
	if errors.As(err, &bad) {
		return nil, ErrInvalidParams("%s", bad.Details)
	}
	return ii, err
}

func (d *deployer) prepareImage(ctx context.Context, c *Call, raw map[string]any, configdrive string) (string, error) {
	ii, err := d.parseImageInfo(raw)
	if err != nil {
		return "", err
	}
	node := d.a.Node()
	device, err := d.installDisk(ctx, node)
	if err != nil {
		return "", err
	}
	var iso []byte
	if configdrive = cmp.Or(configdrive, ii.Configdrive); configdrive != "" {
		if iso, err = d.fetchConfigDrive(ctx, configdrive, ii); err != nil {
			return "", err
		}
	}
	c.Log.Info("writing image", "image", ii.ID, "device", device, "urls", ii.URLs, "format", ii.DiskFormat, "type", ii.ImageType)
	d.setLast(nil)
	start, mode := time.Now(), d.a.partitionBootMode(node)
	res, err := image.Deploy(ctx, d.images, d.configDrive, ii,
		image.Target{Device: device, ConfigDrive: iso, BootMode: mode, DiskLabel: partitionDiskLabel(node, mode)}, c.SetProgress, c.Log)
	var cdErr *image.ConfigDriveError
	if errors.As(err, &cdErr) {
		return "", &Error{Type: "InstanceDeployFailure", Code: 500, Message: "Failed to deploy instance", Details: cdErr.Error()}
	} else if err != nil {
		return "", &Error{Type: "ImageWriteError", Code: 500, Message: "Error writing image to device", Details: err.Error()}
	}
	c.Log.Info("image written", "image", ii.ID, "device", device, "root_uuid", res.RootUUID, "duration", time.Since(start).Round(time.Millisecond))
	d.setLast(res)
	msg := fmt.Sprintf("image (%s) written to device %s root_uuid=%s", ii.ID, device, cmp.Or(res.RootUUID, "None"))
	if ii.DeployBootMode == "uefi" && res.ESPUUID != "" {
		msg += " efi_system_partition_uuid=" + res.ESPUUID
	}
	return msg, nil
}

// partitionBootMode and partitionDiskLabel lay out a partition image's
// (or software RAID's) disk for the node Ironic sent.
func (a *Agent) partitionBootMode(node map[string]any) string {
	return disk.NodeBootMode(node, a.bootMode())
}

func partitionDiskLabel(node map[string]any, bootMode string) string {
	return disk.NodeDiskLabel(node, bootMode)
}

// downloadClient is the client for what a deploy fetches besides the
// image (config drives, inject_files, firmware): ipa-cafile, ipa-insecure
// and the image download timeout as the image has them, the
// environment's proxies and, through extra, the ones image_info names.
func (a *Agent) downloadClient(extra ...download.Option) (*http.Client, error) {
	return download.NewClient(append([]download.Option{download.WithCA(a.cfg.CAFile), download.WithInsecure(a.cfg.Insecure),
		download.WithTimeout(a.cfg.ImageConnectionTimeout)}, extra...)...)
}

// fetchConfigDrive is disk.FetchConfigDrive with the agent's download
// client (and image_info's proxies, when ii is not nil) and IPA's error
// class for a drive that cannot be used.
func (d *deployer) fetchConfigDrive(ctx context.Context, s string, ii *ImageInfo) ([]byte, error) {
	iso, err := disk.FetchConfigDrive(ctx, s, func() (*http.Client, error) {
		if ii == nil {
			return d.a.downloadClient()
		}
		return d.a.downloadClient(download.WithProxies(ii.Proxies, ii.NoProxy))
	})
	var bad *disk.ConfigDriveError
	if errors.As(err, &bad) {
		return nil, ErrInvalidParams("%s", bad.Details)
	}
	return iso, err
}

// getPartitionUUIDs answers as IPA does: nothing written yet is {}; a
// whole-disk image gives its MBR disk signature as the root uuid.
func (d *deployer) getPartitionUUIDs(ctx context.Context, c *Call) (any, error) {
	d.mu.Lock()
	last := d.last
	d.mu.Unlock()
	switch {
	case last == nil:
		return map[string]any{}, nil
	case last.Partitions != nil:
		var esp any
		if last.ESPUUID != "" {
			esp = last.ESPUUID
		}
		return map[string]any{"partitions": last.Partitions, "root uuid": last.RootUUID, "efi system partition uuid": esp}, nil
	}
	sig, err := disk.MBRSignature(last.Device)
	if err != nil {
		return nil, err
	}
	return map[string]any{"root uuid": fmt.Sprintf("0x%08x", sig)}, nil
}
