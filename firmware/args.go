package firmware

import (
	"encoding/json"
	"fmt"
)

// ArgsError is a step argument that is not the list its step takes
// (IPA's InvalidCommandParamsError). An entry that has the right shape
// but is no valid image fails ValidateImage instead (ErrInvalidImage).
type ArgsError struct{ Msg string }

func (e *ArgsError) Error() string { return e.Msg }

func jsonText(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}

// ImagesFromArgs reads update_firmware's "images" argument as it comes
// in JSON: a non-empty list of {url, checksum, target, component, slot,
// activate}, each entry checked by ValidateImage.
func ImagesFromArgs(raw any) ([]Image, error) {
	invalid := func(why string) error {
		return &ArgsError{Msg: fmt.Sprintf("images must be a list of {url, checksum, target, component, slot, activate}: %s: %s", why, jsonText(raw))}
	}
	list, ok := raw.([]any)
	if !ok || len(list) == 0 {
		return nil, invalid("not a non-empty list")
	}
	var out []Image
	for _, e := range list {
		m, ok := e.(map[string]any)
		if !ok {
			return nil, invalid("an entry is not an object")
		}
		var img Image
		fields := map[string]*string{"url": &img.URL, "checksum": &img.Checksum, "target": &img.Target, "component": &img.Component, "activate": &img.Activate}
		for k, v := range m {
			if dst, ok := fields[k]; ok {
				s, ok := v.(string)
				if !ok && v != nil {
					return nil, invalid(k + " is not a string")
				}
				*dst = s
				continue
			}
			if k != "slot" {
				return nil, invalid("unknown key " + k)
			}
			f, ok := v.(float64)
			if v != nil && (!ok || f != float64(int(f))) {
				return nil, invalid("slot is not a whole number")
			}
			img.Slot = int(f)
		}
		if err := ValidateImage(img); err != nil {
			return nil, err
		}
		out = append(out, img)
	}
	return out, nil
}

// ExpectationsFromArgs reads verify_firmware's "devices" argument: a
// non-empty list of {"target": ..., "version": ...}.
func ExpectationsFromArgs(raw any) ([]Expectation, error) {
	invalid := &ArgsError{Msg: fmt.Sprintf(`devices must be a list of {"target": ..., "version": ...}: %s`, jsonText(raw))}
	list, ok := raw.([]any)
	if !ok || len(list) == 0 {
		return nil, invalid
	}
	var want []Expectation
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
		want = append(want, Expectation{Target: t, Version: v})
	}
	return want, nil
}
