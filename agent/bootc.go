package agent

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/goipa/goipa/bootc"
	"github.com/goipa/goipa/image"
)

// execute_bootc_install (IPA master's deploy and service step, spec 4.2
// and 5): Ironic's bootc deploy interface sends the oci:// container
// image, the config drive and a pull secret, and after the step only
// sets the node to boot from disk. This file reads IPA's parameters and
// maps errors to IPA's classes; the install is package bootc's, the boot
// entries package bootloader's.

func (a *Agent) registerBootc() {
	d := a.deploy
	if d == nil {
		return
	}
	s := Step{Name: "execute_bootc_install", Interface: "deploy", Priority: 0, Run: d.bootcInstall}
	a.steps.Register(Deploy, s)
	a.steps.Register(Service, s)
}

// bootcArgs are the step's arguments as Ironic's BootcAgentDeploy sends
// them.
type bootcArgs struct {
	imageSource string
	configdrive string
	pullSecret  string // base64, as Ironic sends it; "" for none
	// authorizedKeys is the node's instance_info bootc_authorized_keys,
	// which IPA hands to bootc's --root-ssh-authorized-keys.
	authorizedKeys string
}

// bootcInstanceInfo reads what IPA takes from the node's instance_info:
// bootc_authorized_keys, and bootc_tpm2_luks, which goipa refuses
// rather than deploy unencrypted a disk the user asked to encrypt.
func (b *bootcArgs) bootcInstanceInfo(node map[string]any) error {
	ii, _ := node["instance_info"].(map[string]any)
	switch v := ii["bootc_authorized_keys"].(type) {
	case nil:
	case string:
		b.authorizedKeys = v
	default:
		return ErrInvalidParams("instance_info bootc_authorized_keys must be a string, not %T", v)
	}
	if v, ok := ii["bootc_tpm2_luks"]; ok && v != nil && v != false && v != "false" && v != "False" {
		return ErrInvalidParams("instance_info bootc_tpm2_luks: goipa does not set up LUKS with a TPM2-bound key; deploy without it or with IPA")
	}
	return nil
}

func parseBootcArgs(args map[string]any) (bootcArgs, error) {
	var b bootcArgs
	src, ok := args["image_source"].(string)
	if !ok || src == "" {
		return b, ErrInvalidParams("execute_bootc_install needs image_source, an oci:// container image reference")
	}
	if !strings.HasPrefix(src, "oci://") {
		return b, ErrInvalidParams("image_source %q is not an oci:// container image reference: execute_bootc_install deploys container images only", src)
	}
	b.imageSource = src
	switch v := args["configdrive"].(type) {
	case nil:
	case string:
		b.configdrive = v
	default:
		return b, ErrInvalidParams("configdrive must be a string (a URL or base64 of a gzipped ISO), not %T", v)
	}
	switch v := args["oci_pull_secret"].(type) {
	case nil:
	case string:
		b.pullSecret = v
	default:
		return b, ErrInvalidParams("oci_pull_secret must be a base64 string or null, not %T", v)
	}
	return b, nil
}

// bootcInstall is execute_bootc_install.
func (d *deployer) bootcInstall(ctx context.Context, sc *StepCall) (any, error) {
	args, err := parseBootcArgs(sc.Args)
	if err != nil {
		return nil, err
	}
	if err := args.bootcInstanceInfo(sc.Node); err != nil {
		return nil, err
	}
	keychain, err := bootc.PullSecretKeychain(args.imageSource, args.pullSecret)
	if err != nil {
		return nil, bootcError(err)
	}
	c := sc.Call
	if err := d.a.mayTouchDisks(); err != nil {
		return nil, err
	}
	if mode := d.a.bootMode(); mode != "uefi" {
		return nil, &Error{Type: "InvalidImage", Code: 400, Message: "Invalid image",
			Details: fmt.Sprintf("goipa installs bootc images for UEFI boot only, and this ramdisk booted in %s mode", mode)}
	}
	device, err := d.installDisk(ctx, d.a.Node())
	if err != nil {
		return nil, err
	}
	var iso []byte
	if args.configdrive != "" {
		if iso, err = d.fetchConfigDrive(ctx, args.configdrive, nil); err != nil {
			return nil, err
		}
	}
	client, err := image.NewHTTPClient(image.HTTPOptions{Insecure: d.a.cfg.Insecure, CAFile: d.a.cfg.CAFile, Timeout: d.a.cfg.ImageConnectionTimeout})
	if err != nil {
		return nil, bootcError(&bootc.DownloadError{Source: args.imageSource, Err: err})
	}
	img, err := bootc.Resolve(ctx, args.imageSource, client, d.a.cfg.Insecure, keychain)
	if err != nil {
		return nil, bootcError(err)
	}
	rootMiB, err := bootc.RootMiB(device, img)
	var small *bootc.TooSmallError
	if errors.As(err, &small) {
		return nil, &Error{Type: "ImageWriteError", Code: 500, Message: "Error writing image to device", Details: small.Details}
	} else if err != nil {
		return nil, err
	}
	c.Log.Info("bootc install", "image", args.imageSource, "device", device, "layers", len(img.Layers), "compressed_bytes", img.Compressed, "root_mib", rootMiB)
	d.setLast(nil)
	start := time.Now()
	opts := bootc.Options{RootMiB: rootMiB, AuthorizedKeys: args.authorizedKeys, Log: c.Log, Progress: c.SetProgress,
		Retry: image.Retry{Attempts: d.a.cfg.ImageConnectionRetries, Interval: d.a.cfg.ImageRetryInterval}}
	if iso != nil {
		opts.ConfigDrive = func(ctx context.Context, device string) (string, error) {
			part, err := d.configDrive.WriteConfigDrive(ctx, device, iso)
			if err == nil {
				c.Log.Info("config drive written", "partition", part, "bytes", len(iso))
			}
			return part, err
		}
	}
	res, err := bootc.Install(ctx, device, img, opts)
	if err != nil {
		return nil, bootcError(err)
	}
	d.setLast(&image.Deployed{Device: device, Partitions: res.Partitions, RootUUID: res.RootUUID, ESPUUID: res.ESPUUID})
	// The boot entry comes last, when the disk is complete.
	if ok, err := d.setupUEFI(ctx, c, device, res.ESPUUID); err != nil {
		return nil, err
	} else if !ok {
		return nil, fmt.Errorf("the ESP on %s holds no loader after the install", device)
	}
	c.Log.Info("bootc install done", "image", args.imageSource, "device", device, "duration", time.Since(start).Round(time.Millisecond))
	return map[string]any{"result": fmt.Sprintf("execute_bootc_install: Container image (%s) written to device %s", args.imageSource, device)}, nil
}

// bootcError maps package bootc's errors to IPA's classes; anything else
// that went wrong writing is an ImageWriteError.
func bootcError(err error) error {
	var (
		inv *bootc.InvalidError
		bad *bootc.InvalidImageError
		dl  *bootc.DownloadError
		cd  *bootc.ConfigDriveError
		ae  *Error
	)
	switch {
	case errors.As(err, &inv):
		return ErrInvalidParams("%s", inv.Details)
	case errors.As(err, &bad):
		return &Error{Type: "InvalidImage", Code: 400, Message: "Invalid image", Details: bad.Details}
	case errors.As(err, &dl):
		return &Error{Type: "ImageDownloadError", Code: 500, Message: "Error downloading image", Details: dl.Error()}
	case errors.As(err, &cd):
		return &Error{Type: "InstanceDeployFailure", Code: 500, Message: "Failed to deploy instance", Details: cd.Error()}
	case errors.As(err, &ae):
		return err
	}
	return &Error{Type: "ImageWriteError", Code: 500, Message: "Error writing image to device", Details: err.Error()}
}
