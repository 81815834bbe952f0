package agent

import (
	"context"
	"errors"
	"fmt"

	"github.com/goipa/goipa/firmware"
	"github.com/goipa/goipa/image"
)

// firmwareStageDir is the ramdisk's tmpfs for verified images, made the
// kernel's firmware search path so devlink's flash finds them.
const firmwareStageDir = "/run/goipa-firmware"

// newFirmwareUpdater builds the updater a firmware step uses; tests
// replace it to run over fake devices.
var newFirmwareUpdater = func(a *Agent, sc *StepCall, opts ...firmware.Option) (*firmware.Updater, error) {
	client, err := a.downloadClient()
	if err != nil {
		return nil, err
	}
	md5 := true
	if v, ok := a.LookupConfig()["agent_md5_checksum_enable"].(bool); ok {
		md5 = v
	}
	return firmware.New(append([]firmware.Option{firmware.WithHTTPClient(client), firmware.WithLogger(sc.Log),
		firmware.WithRetry(image.Retry{Attempts: a.cfg.ImageConnectionRetries, Interval: a.cfg.ImageRetryInterval}),
		firmware.WithMD5(md5), firmware.WithStageDir(firmwareStageDir)}, opts...)...), nil
}

// prepareFirmwareDir is firmware.UseFirmwareDir on the ramdisk, run once
// every target is checked; tests
// replace it.
var prepareFirmwareDir = firmware.UseFirmwareDir

func (a *Agent) registerFirmwareUpdateSteps() {
	update := Step{Name: "update_firmware", Interface: "deploy", Priority: 0, Abortable: false, Run: a.updateFirmware,
		ArgsInfo: map[string]ArgInfo{"images": {Required: true, Description: `A list of firmware images, each {"url": ..., "checksum": "<algo>:<hex>" or bare hex, "target": interface name, MAC address, PCI address, NVMe controller (nvme0) or NVMe serial, "component": devlink component (optional), "slot": NVMe slot 1-7 (optional, default the first writable one), "activate": "reset" (default) or "now"}. Every image is downloaded and verified, and every device checked, before any is flashed.`}}}
	verify := Step{Name: "verify_firmware", Interface: "deploy", Priority: 0, Abortable: true, Run: a.verifyFirmware,
		ArgsInfo: map[string]ArgInfo{"devices": {Required: true, Description: `A list of {"target": ..., "version": ...}: the step fails when a device does not run the version given.`}}}
	a.steps.Register(Clean, update)
	a.steps.Register(Service, update)
	a.steps.Register(Clean, verify)
	a.steps.Register(Service, verify)
}

func (a *Agent) updateFirmware(ctx context.Context, sc *StepCall) (any, error) {
	images, err := firmware.ImagesFromArgs(sc.Args["images"])
	if err != nil {
		return nil, firmwareArgsError(err)
	}
	if !a.realPower {
		// NICs are never among goipa-devices: a host agent flashes nothing.
		return nil, ErrInvalidParams("update_firmware is refused on a host agent (goipa agent): it would flash the host's own devices")
	}
	u, err := newFirmwareUpdater(a, sc, firmware.WithStagePreparation(prepareFirmwareDir), firmware.WithProgress(func(p firmware.Progress) { sc.SetProgress(p) }))
	if err != nil {
		return nil, err
	}
	reports, err := u.Update(ctx, images)
	if err != nil {
		if errors.Is(err, firmware.ErrInvalidImage) || errors.Is(err, firmware.ErrUnknownTarget) {
			return nil, ErrInvalidParams("%v", err)
		}
		details := err.Error()
		if len(reports) > 0 {
			details += fmt.Sprintf(" (done before the failure: %s)", jsonText(reports))
		}
		return nil, &Error{Type: "CommandExecutionError", Code: 500, Message: "Command execution failed", Details: details}
	}
	return map[string]any{"firmware": reports}, nil
}

func (a *Agent) verifyFirmware(ctx context.Context, sc *StepCall) (any, error) {
	want, err := firmware.ExpectationsFromArgs(sc.Args["devices"])
	if err != nil {
		return nil, firmwareArgsError(err)
	}
	u, err := newFirmwareUpdater(a, sc)
	if err != nil {
		return nil, err
	}
	found, err := u.Verify(ctx, want)
	if err != nil {
		if errors.Is(err, firmware.ErrUnknownTarget) {
			return nil, ErrInvalidParams("%v", err)
		}
		return nil, &Error{Type: "CommandExecutionError", Code: 500, Message: "Command execution failed", Details: err.Error()}
	}
	return map[string]any{"running": found}, nil
}

// firmwareArgsError: a step argument firmware cannot use is IPA's
// InvalidCommandParamsError.
func firmwareArgsError(err error) error {
	var bad *firmware.ArgsError
	if errors.As(err, &bad) || errors.Is(err, firmware.ErrInvalidImage) {
		return ErrInvalidParams("%v", err)
	}
	return err
}
