package firmware

import (
	"errors"
	"strings"
	"testing"
)

func TestImagesFromArgs(t *testing.T) {
	good := map[string]any{"url": "http://x/fw.bin", "checksum": "sha256:00", "target": "nvme0"}
	with := func(k string, v any) map[string]any {
		m := map[string]any{}
		for a, b := range good {
			m[a] = b
		}
		m[k] = v
		return m
	}
	for _, tc := range []struct {
		name      string
		raw       any
		want      []Image
		argsError string // an *ArgsError saying this
		invalid   bool   // ErrInvalidImage
	}{
		{name: "one image", raw: []any{good}, want: []Image{{URL: "http://x/fw.bin", Checksum: "sha256:00", Target: "nvme0"}}},
		{name: "every key", raw: []any{with("slot", 2.0), map[string]any{"url": "u", "checksum": "c", "target": "eth0", "component": "fw.mgmt", "activate": "now", "slot": nil}},
			want: []Image{{URL: "http://x/fw.bin", Checksum: "sha256:00", Target: "nvme0", Slot: 2}, {URL: "u", Checksum: "c", Target: "eth0", Component: "fw.mgmt", Activate: "now"}}},
		{name: "not a list", raw: map[string]any{}, argsError: "not a non-empty list"},
		{name: "empty list", raw: []any{}, argsError: "not a non-empty list"},
		{name: "an entry that is no object", raw: []any{"fw.bin"}, argsError: "an entry is not an object"},
		{name: "unknown key", raw: []any{with("sloot", 2.0)}, argsError: "unknown key sloot"},
		{name: "slot not a number", raw: []any{with("slot", "two")}, argsError: "slot is not a whole number"},
		{name: "slot not whole", raw: []any{with("slot", 1.5)}, argsError: "slot is not a whole number"},
		{name: "url not a string", raw: []any{with("url", 3.0)}, argsError: "url is not a string"},
		{name: "no checksum", raw: []any{with("checksum", nil)}, invalid: true},
		{name: "bad activate", raw: []any{with("activate", "later")}, invalid: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ImagesFromArgs(tc.raw)
			var ae *ArgsError
			switch {
			case tc.argsError != "":
				if !errors.As(err, &ae) || !strings.Contains(ae.Msg, tc.argsError) || !strings.HasPrefix(ae.Msg, "images must be a list of {url, checksum, target, component, slot, activate}: ") {
					t.Fatalf("err = %v, want an ArgsError saying %q", err, tc.argsError)
				}
			case tc.invalid:
				if !errors.Is(err, ErrInvalidImage) {
					t.Fatalf("err = %v, want ErrInvalidImage", err)
				}
			default:
				if err != nil {
					t.Fatal(err)
				}
				if len(got) != len(tc.want) {
					t.Fatalf("got %+v, want %+v", got, tc.want)
				}
				for i := range got {
					if got[i] != tc.want[i] {
						t.Errorf("image %d = %+v, want %+v", i, got[i], tc.want[i])
					}
				}
			}
		})
	}
}

func TestExpectationsFromArgs(t *testing.T) {
	for _, tc := range []struct {
		name string
		raw  any
		want []Expectation
	}{
		{name: "two devices", raw: []any{map[string]any{"target": "nvme0", "version": "1.0"}, map[string]any{"target": "eth0", "version": "2"}}, want: []Expectation{{"nvme0", "1.0"}, {"eth0", "2"}}},
		{name: "not a list", raw: "nvme0"},
		{name: "empty", raw: []any{}},
		{name: "no version", raw: []any{map[string]any{"target": "nvme0"}}},
		{name: "a version that is no string", raw: []any{map[string]any{"target": "nvme0", "version": 1.0}}},
		{name: "an entry that is no object", raw: []any{"nvme0"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ExpectationsFromArgs(tc.raw)
			if tc.want == nil {
				var ae *ArgsError
				if !errors.As(err, &ae) || !strings.HasPrefix(ae.Msg, `devices must be a list of {"target": ..., "version": ...}: `) {
					t.Fatalf("err = %v, want an ArgsError", err)
				}
				return
			}
			if err != nil || len(got) != len(tc.want) {
				t.Fatalf("got %+v, %v", got, err)
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Errorf("%d = %+v, want %+v", i, got[i], tc.want[i])
				}
			}
		})
	}
}
