package inventory

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// roundTrip is the body as the inspector receives it.
func roundTrip(t *testing.T, v any) map[string]any {
	t.Helper()
	b, err := json.Marshal(v)
	require.NoError(t, err)
	var m map[string]any
	require.NoError(t, json.Unmarshal(b, &m))
	return m
}

func TestInspectionCollectorsByIPAName(t *testing.T) {
	root := unpackSnapshot(t, "bios-virtio-scsi-nvme")
	ctx := context.Background()
	opts := []Option{WithRoot(root), WithSkipBMC(true), WithBootIF("01-52-54-00-00-00-01")}
	inv, err := Collect(ctx, opts...)
	require.NoError(t, err)
	inv.Interfaces[0].LLDP = []LLDPTLV{{Type: 1, Value: []byte{4, 0xaa, 0xbb}}, {Type: 0, Value: nil}}

	all := []string{"default", "logs", "extra-hardware", "pci-devices", "numa-topology", "dmi-decode", "lldp", "usb-devices"}
	data := roundTrip(t, InspectionData(ctx, inv, all, opts...))
	assert.Nil(t, data["error"])
	for _, k := range []string{"inventory", "boot_interface", "configuration", "data", "pci_devices", "numa_topology", "dmi", "lldp_raw", "usb_devices"} {
		assert.Contains(t, data, k)
	}
	assert.NotContains(t, data, "logs", "the agent's")
	assert.Equal(t, "01-52-54-00-00-00-01", data["boot_interface"])
	assert.Equal(t, map[string]any{"collectors": []any{"default", "logs", "extra-hardware", "pci-devices", "numa-topology", "dmi-decode", "lldp", "usb-devices"},
		"managers": []any{map[string]any{"name": "generic_hardware_manager", "version": "1.1"}}}, data["configuration"])

	// lldp_raw: every interface, [type, hex] pairs, [] where nothing was heard.
	lldp := data["lldp_raw"].(map[string]any)
	assert.Equal(t, []any{[]any{1.0, "04aabb"}, []any{0.0, ""}}, lldp[inv.Interfaces[0].Name])
	assert.Equal(t, []any{}, lldp[inv.Interfaces[1].Name])
	assert.Equal(t, []any{}, data["usb_devices"], "QEMU's guests had no USB controller")
	assert.IsType(t, []any{}, data["data"])

	// pci_devices: IPA's text values.
	var virtio map[string]any
	for _, d := range data["pci_devices"].([]any) {
		if m := d.(map[string]any); m["bus"] == "0000:00:08.0" {
			virtio = m
		}
	}
	require.NotNil(t, virtio)
	assert.Equal(t, "1af4", virtio["vendor_id"])
	assert.Equal(t, "1000", virtio["product_id"])
	assert.Equal(t, "020000", virtio["class"])
	assert.Equal(t, "00", virtio["revision"])
	assert.Equal(t, "-1", virtio["numa_node_id"], "sysfs's text, as IPA reads it")

	// Without default: no inventory, no configuration.
	data = roundTrip(t, InspectionData(ctx, inv, []string{"usb-devices"}, opts...))
	assert.Equal(t, map[string]any{"usb_devices": []any{}, "error": nil}, data)

	// An unknown collector fails the whole inspection before any runs, as
	// IPA's stevedore manager does.
	data = roundTrip(t, InspectionData(ctx, inv, []string{"default", "extra-hardware", "benchmarks", "foo"}, opts...))
	assert.Equal(t, map[string]any{"error": "The following errors were encountered:\n* Failed to load collector ['benchmarks', 'foo']"}, data)
	assert.Equal(t, []string{"benchmarks"}, UnknownCollectors([]string{"default", "benchmarks", "logs"}))

	// No BOOTIF: boot_interface is still sent, as null.
	inv.Boot.PXEInterface = nil
	data = roundTrip(t, InspectionData(ctx, inv, []string{"default"}, opts...))
	assert.Contains(t, data, "boot_interface")
	assert.Nil(t, data["boot_interface"])
}

func TestPCIDevicesFollowIPA(t *testing.T) {
	root := t.TempDir()
	writeTree(t, root, map[string]string{
		"sys/bus/pci/devices/0000:00:01.0/vendor":    "0x8086\n",
		"sys/bus/pci/devices/0000:00:01.0/device":    "0x1572\n",
		"sys/bus/pci/devices/0000:00:01.0/class":     "0x020000\n",
		"sys/bus/pci/devices/0000:00:01.0/numa_node": "1\n",
		// No revision, no numa_node file: both null.
		"sys/bus/pci/devices/0000:00:02.0/vendor": "0x1af4\n",
		"sys/bus/pci/devices/0000:00:02.0/device": "0x1000\n",
		"sys/bus/pci/devices/0000:00:02.0/class":  "0x020000\n",
		// A vendor without 0x: IPA's IndexError skips the device.
		"sys/bus/pci/devices/0000:00:03.0/vendor": "8086\n",
		"sys/bus/pci/devices/0000:00:03.0/device": "0x1572\n",
		"sys/bus/pci/devices/0000:00:03.0/class":  "0x020000\n",
	})
	got := roundTrip(t, map[string]any{"d": pciDevices(newOptions([]Option{WithRoot(root)}))})["d"]
	assert.Equal(t, []any{
		map[string]any{"vendor_id": "8086", "product_id": "1572", "class": "020000", "revision": nil, "bus": "0000:00:01.0", "numa_node_id": "1"},
		map[string]any{"vendor_id": "1af4", "product_id": "1000", "class": "020000", "revision": nil, "bus": "0000:00:02.0", "numa_node_id": nil},
	}, got)
}

// TestUSBDevicesAsLshwFindsThem builds a BMC's USB tree: a root hub with
// a vendor-specific virtual device first (lshw's id "usb", class
// generic), a keyboard second ("usb:1"), and a hub whose first device is
// a mass-storage virtual CD (class storage, not generic).
func TestUSBDevicesAsLshwFindsThem(t *testing.T) {
	root := t.TempDir()
	dev := func(name, class, manufacturer, product, bus, devnum string) map[string]string {
		p := "sys/bus/usb/devices/" + name + "/"
		m := map[string]string{p + "bDeviceClass": class + "\n", p + "busnum": bus + "\n", p + "devnum": devnum + "\n"}
		if manufacturer != "" {
			m[p+"manufacturer"] = manufacturer + "\n"
		}
		if product != "" {
			m[p+"product"] = product + "\n"
		}
		return m
	}
	tree := map[string]string{}
	for _, m := range []map[string]string{
		dev("usb1", "09", "Linux 6.1.0 xhci-hcd", "xHCI Host Controller", "1", "1"),
		dev("1-1", "ff", "American Megatrends Inc.", "Virtual Ethernet", "1", "2"),
		dev("1-2", "00", "Dell", "Virtual Keyboard", "1", "3"),
		dev("1-3", "09", "", "USB2.0 Hub", "1", "4"),
		dev("1-3.1", "00", "AMI", "Virtual CDROM", "1", "5"),
		dev("1-3.2", "ff", "AMI", "Virtual Something", "1", "6"),
		dev("2-1", "00", "", "", "2", "7"),
	} {
		for k, v := range m {
			tree[k] = v
		}
	}
	tree["sys/bus/usb/devices/1-2/1-2:1.0/bInterfaceClass"] = "03\n"
	tree["sys/bus/usb/devices/1-3.1/1-3.1:1.0/bInterfaceClass"] = "08\n"
	tree["sys/bus/usb/devices/2-1/2-1:1.0/bInterfaceClass"] = "fe\n" // application-specific: generic
	writeTree(t, root, tree)
	assert.Equal(t, []USBDevice{
		{Product: "Virtual Ethernet", Vendor: "American Megatrends Inc.", Handle: "USB:1:2"},
		{Product: "", Vendor: "", Handle: "USB:2:7"},
	}, USBDevices(WithRoot(root)))
	assert.Equal(t, []USBDevice{}, USBDevices(WithRoot(t.TempDir())))
}

// TestInventoryValuesAsIPA checks the values baremetal-operator reads
// where IPA's sources differ from what sysfs says at first sight.
func TestInventoryValuesAsIPA(t *testing.T) {
	root := unpackSnapshot(t, "uefi-ahci-nvme-e1000e")
	inv, err := Collect(context.Background(), WithRoot(root), WithSkipBMC(true))
	require.NoError(t, err)
	assert.Equal(t, "", inv.CPU.Frequency, "no cpufreq in a VM: lscpu prints no MHz, IPA reports \"\"")
	assert.Equal(t, "QEMU Virtual CPU version 2.5+", inv.CPU.ModelName)
	for _, f := range inv.CPU.Flags {
		assert.NotEmpty(t, f)
	}
	assert.Equal(t, "Standard PC (i440FX + PIIX, 1996)", inv.SystemVendor.ProductName)
	assert.Equal(t, Firmware{Vendor: "EFI Development Kit II / OVMF", Version: "0.0.0", BuildDate: "02/06/2015"}, inv.SystemVendor.Firmware)
	byName := map[string]Interface{}
	for _, i := range inv.Interfaces {
		byName[i.Name] = i
	}
	assert.Equal(t, "0000:00:06.0", str0(byName["eth0"].PCIAddress), "e1000e: the PCI function")
	assert.Equal(t, "virtio1", str0(byName["eth1"].PCIAddress), "virtio: IPA's basename of the device link")
	assert.Nil(t, byName["eth1"].SpeedMbps)
	assert.Nil(t, byName["eth1"].ClientID)

	// cpufreq present: the highest limit, with lscpu's four decimals.
	cf := t.TempDir()
	writeTree(t, cf, map[string]string{
		"sys/devices/system/cpu/present":                       "0-1\n",
		"sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq": "3500000\n",
		"sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_min_freq": "800000\n",
		"sys/devices/system/cpu/cpu1/cpufreq/cpuinfo_max_freq": "3700000\n",
		"sys/devices/system/cpu/cpu1/cpufreq/cpuinfo_min_freq": "800000\n",
		"proc/cpuinfo": cpuinfoTwoSockets,
	})
	assert.Equal(t, "3700.0000", cpuFrequency(newOptions([]Option{WithRoot(cf)})))
	assert.Equal(t, "PowerEdge R640 (SKU=NotProvided;ModelName=PowerEdge R640)", lshwProduct("PowerEdge R640", "SKU=NotProvided;ModelName=PowerEdge R640"))
}

func TestMellanoxInfiniBandAsIPA(t *testing.T) {
	root := t.TempDir()
	const addr = "a0:00:00:27:fe:80:00:00:00:00:00:00:7c:fe:90:03:00:29:26:52"
	writeTree(t, root, map[string]string{
		"sys/class/net/ib0/address":       addr + "\n",
		"sys/class/net/ib0/carrier":       "1\n",
		"sys/class/net/ib0/device/vendor": "0x15b3\n",
		"sys/class/net/ib0/device/device": "0x1017\n",
	})
	require.NoError(t, os.MkdirAll(filepath.Join(root, "sys/class/net/ib0/device/driver"), 0o755))
	ifs, err := Interfaces(context.Background(), WithRoot(root))
	require.NoError(t, err)
	require.Len(t, ifs, 1)
	ib := ifs[0]
	assert.Equal(t, "7c:fe:90:29:26:52", ib.MACAddress)
	assert.Equal(t, "ff:00:00:00:00:00:02:00:00:02:c9:00:7c:fe:90:03:00:29:26:52", str0(ib.ClientID))
	assert.Equal(t, "0x15b3", str0(ib.Vendor))
	assert.Nil(t, ib.Driver, "IPA's Mellanox manager leaves the driver out")
	assert.Nil(t, ib.LLDP)
}

// TestLLDPCollectorReportsWhatWasHeard: with ipa-collect-lldp=0 the
// inventory's interfaces carry no LLDP, yet IPA's lldp collector still
// reports what each NIC heard.
func TestLLDPCollectorReportsWhatWasHeard(t *testing.T) {
	root := unpackSnapshot(t, "bios-virtio-scsi-nvme")
	ctx := context.Background()
	opts := []Option{WithRoot(root), WithSkipBMC(true)}
	inv, err := Collect(ctx, opts...)
	require.NoError(t, err)
	require.GreaterOrEqual(t, len(inv.Interfaces), 2)
	first := inv.Interfaces[0].Name
	heard := WithHeardLLDP(func(name string) []LLDPTLV {
		if name == first {
			return []LLDPTLV{{Type: 5, Value: []byte("tor-a")}}
		}
		return nil
	})
	data := roundTrip(t, InspectionData(ctx, inv, []string{"default", "lldp"}, append(opts, heard)...))
	assert.Nil(t, data["error"])
	lldp := data["lldp_raw"].(map[string]any)
	assert.Equal(t, []any{[]any{5.0, "746f722d61"}}, lldp[first])
	assert.Equal(t, []any{}, lldp[inv.Interfaces[1].Name])
	for _, ifc := range data["inventory"].(map[string]any)["interfaces"].([]any) {
		assert.Nil(t, ifc.(map[string]any)["lldp"], "the inventory's interfaces carry LLDP only with ipa-collect-lldp")
	}
}
