package agent

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/goipa/goipa/bootc"
	"github.com/goipa/goipa/image"
)

// execute_bootc_install (IPA master's deploy and service step, spec 4.2
// and 5): Ironic's bootc deploy interface sends the oci:// container
// image, the config drive and a pull secret, and after the step only
// sets the node to boot from disk. This file maps IPA's parameters and
// error classes; the install is package bootc's, the boot entries
// package bootloader's.

func (a *Agent) registerBootc() {
	d := a.deploy
	if d == nil {
		return
	}
	s := Step{Name: "execute_bootc_install", Interface: "deploy", Priority: 0, Run: d.bootcInstall}
	a.steps.Register(Deploy, s)
	a.steps.Register(Service, s)
}

// bootcInstall is execute_bootc_install.
func (d *deployer) bootcInstall(ctx context.Context, sc *StepCall) (any, error) {
	args, err := bootc.ParseArgs(sc.Args, sc.Node)
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
	if args.ConfigDrive != "" {
		if iso, err = d.fetchConfigDrive(ctx, args.ConfigDrive, nil); err != nil {
			return nil, err
		}
	}
	client, err := image.NewHTTPClient(image.HTTPOptions{Insecure: d.a.cfg.Insecure, CAFile: d.a.cfg.CAFile, Timeout: d.a.cfg.ImageConnectionTimeout})
	if err != nil {
		return nil, bootcError(&bootc.DownloadError{Source: args.ImageSource, Err: err})
	}
	img, err := bootc.Resolve(ctx, args.ImageSource, client, d.a.cfg.Insecure, args.Keychain)
	if err != nil {
		return nil, bootcError(err)
	}
	rootMiB, err := bootc.RootMiB(device, img)
	if small := (*bootc.TooSmallError)(nil); errors.As(err, &small) {
		return nil, bootcError(err)
	} else if err != nil {
		return nil, err
	}
	c.Log.Info("bootc install", "image", args.ImageSource, "device", device, "layers", len(img.Layers), "compressed_bytes", img.Compressed, "root_mib", rootMiB)
	d.setLast(nil)
	start := time.Now()
	opts := bootc.Options{RootMiB: rootMiB, AuthorizedKeys: args.AuthorizedKeys, Log: c.Log, Progress: c.SetProgress,
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
	c.Log.Info("bootc install done", "image", args.ImageSource, "device", device, "duration", time.Since(start).Round(time.Millisecond))
	return map[string]any{"result": fmt.Sprintf("execute_bootc_install: Container image (%s) written to device %s", args.ImageSource, device)}, nil
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
