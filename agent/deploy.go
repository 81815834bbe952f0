package agent

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/goipa/goipa/disk"
	"github.com/goipa/goipa/download"
	"github.com/prometheus/client_golang/prometheus"
)

// ImageWriter streams, verifies and writes an image onto a device,
// leaving it unbootable on any failure. The image package implements it.
type ImageWriter interface {
	WriteImage(ctx context.Context, ii *ImageInfo, device string, progress func(any)) error
}

// ConfigDriveWriter adds a config-2 partition holding iso to a disk that
// already carries a whole-disk image. The disk package implements it.
type ConfigDriveWriter interface {
	WriteConfigDrive(ctx context.Context, device string, iso []byte) (partition string, err error)
}

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

// deployer holds what the last image deploy did, for get_partition_uuids.
type deployer struct {
	a           *Agent
	disks       DiskSelector
	images      ImageWriter
	configDrive ConfigDriveWriter

	mu        sync.Mutex
	device    string           // the disk the last image went to
	partition *partitionDeploy // what a partition image's deploy left
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
			_, err := ParseImageInfo(ii, d.md5Allowed())
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

// hints returns the node's root device hints: instance_info first.
func rootDeviceHints(node map[string]any) map[string]any {
	for _, key := range []string{"instance_info", "properties"} {
		if m, ok := node[key].(map[string]any); ok {
			if h, ok := m["root_device"].(map[string]any); ok && len(h) > 0 {
				return h
			}
		}
	}
	return nil
}

// installDisk picks the install disk by the node's root device hints,
// after the host-mode guard, and only when the one device check allows
// it (prepare_image, install_bootloader, inject_files, bootc).
func (d *deployer) installDisk(ctx context.Context) (string, error) {
	if err := d.a.mayTouchDisks(); err != nil {
		return "", err
	}
	device, err := d.disks.RootDisk(ctx, rootDeviceHints(d.a.Node()))
	if err != nil {
		return "", &Error{Type: "DeviceNotFound", Code: 404, Message: "Error finding the disk or partition device to deploy the image onto", Details: err.Error()}
	}
	if err := d.a.checkDevice(device); err != nil {
		return "", err
	}
	return device, nil
}

// md5Allowed is the lookup's agent_md5_checksum_enable (default true).
func (d *deployer) md5Allowed() bool {
	if v, ok := d.a.LookupConfig()["agent_md5_checksum_enable"].(bool); ok {
		return v
	}
	return true
}

func (d *deployer) prepareImage(ctx context.Context, c *Call, raw map[string]any, configdrive string) (string, error) {
	ii, err := ParseImageInfo(raw, d.md5Allowed())
	if err != nil {
		return "", err
	}
	if configdrive == "" {
		configdrive = ii.Configdrive
	}
	device, err := d.installDisk(ctx)
	if err != nil {
		return "", err
	}
	var iso []byte
	if configdrive != "" {
		if iso, err = d.fetchConfigDrive(ctx, configdrive, ii); err != nil {
			return "", err
		}
	}
	c.Log.Info("writing image", "image", ii.ID, "device", device, "urls", ii.URLs, "format", ii.DiskFormat)
	d.mu.Lock()
	d.device, d.partition = "", nil
	d.mu.Unlock()
	start := time.Now()
	if ii.IsPartition() {
		pd, err := d.deployPartitionImage(ctx, c, ii, iso, device)
		if err != nil {
			return "", err
		}
		c.Log.Info("partition image written", "image", ii.ID, "device", device, "root_uuid", pd.rootUUID, "duration", time.Since(start).Round(time.Millisecond))
		d.mu.Lock()
		d.device, d.partition = device, pd
		d.mu.Unlock()
		msg := fmt.Sprintf("image (%s) written to device %s root_uuid=%s", ii.ID, device, pd.rootUUID)
		if ii.DeployBootMode == "uefi" && pd.espUUID != "" {
			msg += " efi_system_partition_uuid=" + pd.espUUID
		}
		return msg, nil
	}
	if err := d.images.WriteImage(ctx, ii, device, c.SetProgress); err != nil {
		return "", &Error{Type: "ImageWriteError", Code: 500, Message: "Error writing image to device", Details: err.Error()}
	}
	c.Log.Info("image written", "image", ii.ID, "device", device, "duration", time.Since(start).Round(time.Millisecond))
	if iso != nil {
		part, err := d.configDrive.WriteConfigDrive(ctx, device, iso)
		if err != nil {
			return "", &Error{Type: "InstanceDeployFailure", Code: 500, Message: "Failed to deploy instance", Details: "config drive: " + err.Error()}
		}
		c.Log.Info("config drive written", "partition", part, "bytes", len(iso))
	}
	d.mu.Lock()
	d.device = device
	d.mu.Unlock()
	return fmt.Sprintf("image (%s) written to device %s root_uuid=None", ii.ID, device), nil
}

// downloadClient is the client for what a deploy fetches besides the
// image (config drives, inject_files): ipa-cafile, ipa-insecure and the
// image download timeout as the image has them, the environment's
// proxies and, through extra, the ones image_info names.
func (a *Agent) downloadClient(extra ...download.Option) (*http.Client, error) {
	return download.NewClient(append([]download.Option{download.WithCA(a.cfg.CAFile), download.WithInsecure(a.cfg.Insecure),
		download.WithTimeout(a.cfg.ImageConnectionTimeout)}, extra...)...)
}

// fetchConfigDrive turns Ironic's config drive string (a URL, or base64 of
// a gzipped ISO) into the ISO bytes (spec 10). A URL is fetched with the
// image's CA, proxies (image_info's, when ii is not nil) and timeouts.
func (d *deployer) fetchConfigDrive(ctx context.Context, s string, ii *ImageInfo) ([]byte, error) {
	var data []byte
	if strings.HasPrefix(s, "http://") || strings.HasPrefix(s, "https://") {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, s, nil)
		if err != nil {
			return nil, ErrInvalidParams("config drive URL %q: %v", s, err)
		}
		var extra []download.Option
		if ii != nil {
			extra = append(extra, download.WithProxies(ii.Proxies, ii.NoProxy))
		}
		client, err := d.a.downloadClient(extra...)
		if err != nil {
			return nil, fmt.Errorf("downloading the config drive: %w", err)
		}
		resp, err := client.Do(req)
		if err != nil {
			return nil, fmt.Errorf("downloading the config drive: %w", err)
		}
		defer resp.Body.Close()
		if resp.StatusCode >= 400 {
			return nil, fmt.Errorf("downloading the config drive: HTTP %d", resp.StatusCode)
		}
		// Streamed and bounded (disk.ReadConfigDrive): a server that
		// sends too much, a gzip bomb or base64 of either costs at most
		// the drive's own size in memory.
		iso, err := disk.ReadConfigDrive(resp.Body)
		var bad *disk.ConfigDriveError
		if errors.As(err, &bad) {
			return nil, ErrInvalidParams("%s", bad.Details)
		} else if err != nil {
			return nil, fmt.Errorf("downloading the config drive: %w", err)
		}
		return iso, nil
	} else {
		dec, err := base64.StdEncoding.DecodeString(strings.TrimSpace(s))
		if err != nil {
			// IPA uses undecodable text as it is; a gzip check below still guards it.
			dec = []byte(s)
		}
		data = dec
	}
	iso, err := disk.DecodeConfigDrive(data)
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
	dev, pd := d.device, d.partition
	d.mu.Unlock()
	if dev == "" {
		return map[string]any{}, nil
	}
	if pd != nil {
		return pd.result(), nil
	}
	sig, err := mbrSignature(dev)
	if err != nil {
		return nil, err
	}
	return map[string]any{"root uuid": fmt.Sprintf("0x%08x", sig)}, nil
}

// mbrSignature reads the 32-bit disk signature at byte 440.
func mbrSignature(dev string) (uint32, error) {
	f, err := os.Open(dev)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	var b [4]byte
	if _, err := f.ReadAt(b[:], 440); err != nil {
		return 0, fmt.Errorf("reading the disk signature of %s: %w", dev, err)
	}
	return binary.LittleEndian.Uint32(b[:]), nil
}
