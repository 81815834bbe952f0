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
	images, err := firmwareImages(sc.Args["images"])
	if err != nil {
		return nil, err
	}
	if !a.realPower {
		// NICs are never among goipa-devices: a host agent flashes nothing.
		return nil, ErrInvalidParams("update_firmware is refused on a host agent (goipa agent): it would flash the host's own devices")
	}
	u, err := newFirmwareUpdater(a, sc, firmware.WithStagePreparation(prepareFirmwareDir), firmware.WithProgress(func(p firmware.Progress) {
		sc.SetProgress(p)
	}))
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
	invalid := ErrInvalidParams(`devices must be a list of {"target": ..., "version": ...}: %s`, jsonText(sc.Args["devices"]))
	list, ok := sc.Args["devices"].([]any)
	if !ok || len(list) == 0 {
		return nil, invalid
	}
	var want []firmware.Expectation
	for _, d := range list {
		m, ok := d.(map[string]any)
		if !ok {
			return nil, invalid
		}
		t, _ := m["target"].(string)
		v, _ := m["version"].(string)
		if t == "" || v == "" {
			return nil, invalid
		}
		want = append(want, firmware.Expectation{Target: t, Version: v})
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

// firmwareImages translates the step's images argument.
func firmwareImages(raw any) ([]firmware.Image, error) {
	invalid := func(why string) error {
		return ErrInvalidParams("images must be a list of {url, checksum, target, component, slot, activate}: %s: %s", why, jsonText(raw))
	}
	list, ok := raw.([]any)
	if !ok || len(list) == 0 {
		return nil, invalid("not a non-empty list")
	}
	var out []firmware.Image
	for _, e := range list {
		m, ok := e.(map[string]any)
		if !ok {
			return nil, invalid("an entry is not an object")
		}
		var img firmware.Image
		for k, v := range m {
			switch k {
			case "url", "checksum", "target", "component", "activate":
				s, ok := v.(string)
				if !ok && v != nil {
					return nil, invalid(k + " is not a string")
				}
				switch k {
				case "url":
					img.URL = s
				case "checksum":
					img.Checksum = s
				case "target":
					img.Target = s
				case "component":
					img.Component = s
				case "activate":
					img.Activate = s
				}
			case "slot":
				f, ok := v.(float64)
				if v != nil && (!ok || f != float64(int(f))) {
					return nil, invalid("slot is not a whole number")
				}
				img.Slot = int(f)
			default:
				return nil, invalid("unknown key " + k)
			}
		}
		if err := firmware.ValidateImage(img); err != nil {
			return nil, ErrInvalidParams("%v", err)
		}
		out = append(out, img)
	}
	return out, nil
}
