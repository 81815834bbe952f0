package inventory

import (
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// USBDevice is an entry of IPA's usb_devices: the USB devices lshw puts
// in its "generic" class, with the strings the device gives.
type USBDevice struct {
	Product string `json:"product"`
	Vendor  string `json:"vendor"`
	Handle  string `json:"handle"`
}

// lshwUSBClasses are the USB class codes lshw files under a class of its
// own; every other device is "generic".
var lshwUSBClasses = map[string]string{
	"01": "multimedia", "06": "multimedia", "0e": "multimedia",
	"02": "communication", "0a": "communication", "e0": "communication",
	"03": "input", "07": "printer", "08": "storage", "09": "bus",
}

// USBDevices is IPA's usb-devices collector. IPA asks lshw for the nodes
// with id "usb" and class generic: lshw names the first device on each
// hub "usb" (the others "usb:1", "usb:2"...), so only that device counts,
// and only when it is neither a hub nor of a class lshw names (storage,
// input, audio...). goipa applies the same rules to sysfs.
func USBDevices(opts ...Option) []USBDevice {
	return usbDevices(newOptions(opts))
}

func usbDevices(o *options) []USBDevice {
	base := o.path("sys/bus/usb/devices")
	entries, err := os.ReadDir(base)
	if err != nil {
		return []USBDevice{}
	}
	// Group the devices (not interfaces, which have a colon) by parent.
	children := map[string][]string{}
	for _, e := range entries {
		name := e.Name()
		if strings.Contains(name, ":") || strings.HasPrefix(name, "usb") {
			continue
		}
		children[usbParent(name)] = append(children[usbParent(name)], name)
	}
	out := []USBDevice{}
	for _, parent := range sortedKeys(children) {
		kids := children[parent]
		sort.Slice(kids, func(i, j int) bool { return usbPortLess(kids[i], kids[j]) })
		first := filepath.Join(base, kids[0])
		if usbClass(first) != "generic" {
			continue
		}
		bus, _ := strconv.Atoi(readTrim(filepath.Join(first, "busnum")))
		dev, _ := strconv.Atoi(readTrim(filepath.Join(first, "devnum")))
		out = append(out, USBDevice{
			Product: readTrim(filepath.Join(first, "product")),
			Vendor:  readTrim(filepath.Join(first, "manufacturer")),
			Handle:  "USB:" + strconv.Itoa(bus) + ":" + strconv.Itoa(dev),
		})
	}
	return out
}

// usbParent is the hub a device hangs from: "1-1.2" on "1-1", "1-1" on
// the root hub "usb1".
func usbParent(name string) string {
	if i := strings.LastIndexByte(name, '.'); i >= 0 {
		return name[:i]
	}
	bus, _, _ := strings.Cut(name, "-")
	return "usb" + bus
}

// usbPortLess orders devices on a hub by port number.
func usbPortLess(a, b string) bool {
	last := func(s string) int {
		i := strings.LastIndexAny(s, ".-")
		n, _ := strconv.Atoi(s[i+1:])
		return n
	}
	return last(a) < last(b)
}

// usbClass is lshw's class for a device: its own class, or its first
// interface's when the device leaves it to the interfaces (class 00).
func usbClass(dir string) string {
	c := strings.ToLower(readTrim(filepath.Join(dir, "bDeviceClass")))
	if c == "00" || c == "" {
		ifs, _ := filepath.Glob(filepath.Join(dir, filepath.Base(dir)+":*"))
		sort.Strings(ifs)
		if len(ifs) > 0 {
			c = strings.ToLower(readTrim(filepath.Join(ifs[0], "bInterfaceClass")))
		}
	}
	if cls, ok := lshwUSBClasses[c]; ok {
		return cls
	}
	return "generic"
}
