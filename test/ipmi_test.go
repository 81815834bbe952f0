package test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/goipa/goipa/initramfs"
	"github.com/goipa/goipa/internal/testenv"
	"github.com/goipa/goipa/test/realironic"
)

var (
	ipmiRamdiskOnce sync.Once
	ipmiRamdisk     struct {
		kernel, initrd string
		err            error
	}
)

// buildIPMIRamdisk builds the ramdisk with Debian's generic kernel (the
// cloud kernel has no IPMI) and the virtio and IPMI module sets.
func buildIPMIRamdisk(t *testing.T) (kernel, initrd string) {
	t.Helper()
	testenv.NeedCommands(t, "apt-get", "apt-cache", "dpkg-deb", "qemu-system-x86_64", "go")
	ipmiRamdiskOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		r := &ipmiRamdisk
		pkg, err := initramfs.DebianKernelPackage(ctx, "linux-image-amd64", "amd64")
		if err != nil {
			r.err = err
			return
		}
		k, err := initramfs.FetchDebianKernel(ctx, filepath.Join(initramfs.CacheDir(), "kernels"), pkg)
		if err != nil {
			r.err = err
			return
		}
		dir, err := testenv.SharedTempDir("goipa-ipmi-ramdisk-")
		if err != nil {
			r.err = err
			return
		}
		o := ramdiskOptions(k, filepath.Join(dir, "goipa.initramfs"))
		o.Modules = append(append([]string(nil), initramfs.VirtioModules...), initramfs.IPMIModules...)
		r.kernel, r.initrd = k.Vmlinuz, o.Output
		_, r.err = initramfs.Build(ctx, o)
	})
	if ipmiRamdisk.err != nil {
		t.Fatalf("building the ramdisk: %v", ipmiRamdisk.err)
	}
	return ipmiRamdisk.kernel, ipmiRamdisk.initrd
}

// TestIPMIBMCInQEMU boots the ramdisk with QEMU's emulated BMC on a KCS
// interface: init loads ipmi_si from the ACPI device and ipmi_devintf
// beside it, and the inventory reports the BMC's identity from IPMI Get
// Device ID through /dev/ipmi0. QEMU's simulator has no LAN configuration
// parameters, so the addresses are IPA's placeholders for a BMC without
// a configured LAN channel, and no bmc_mac. The agent first posts its
// inspection data, with the dmi-decode collector, to a callback on the
// host: the guest's SMBIOS tables arrive in IPA's dmi shape.
func TestIPMIBMCInQEMU(t *testing.T) {
	testenv.NeedRoot(t)
	kernel, initrd := buildIPMIRamdisk(t)
	port := realironic.FreePort(t)
	inspected := make(chan map[string]any, 1)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body map[string]any
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil || r.URL.Path != "/v1/continue" {
			http.Error(w, "bad inspection data", http.StatusBadRequest)
			return
		}
		select {
		case inspected <- body:
		default:
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"uuid": "1be26c0b-03f2-4d2e-ae87-c02d7f33c123"}`))
	})}
	go srv.Serve(ln)
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	// QEMU's user network reaches the host's loopback at 10.0.2.2.
	cmdline := fmt.Sprintf("ipa-inspection-callback-url=http://10.0.2.2:%d/v1/continue ipa-inspection-collectors=default,dmi-decode",
		ln.Addr().(*net.TCPAddr).Port)
	vm := startGuest(t, ctx, initramfs.VMOptions{Kernel: kernel, Initrd: initrd, Cmdline: cmdline,
		VirtioDisks: []string{sparseFile(t, 64<<20)}, HostForward: port,
		Args: []string{
			// Dell's IANA number, firmware 2.83, IPMI 2.0: values no default has.
			"-device", "ipmi-bmc-sim,id=bmc0,mfg_id=674,product_id=256,fwrev1=2,fwrev2=0x83,ipmi_version=0x02,device_rev=3",
			"-device", "isa-ipmi-kcs,bmc=bmc0",
			"-smbios", "type=0,vendor=goipa-bios,version=9.8.7,date=03/04/2026"}})
	var data map[string]any
	select {
	case data = <-inspected:
	case <-time.After(90 * time.Second):
		t.Fatal("no inspection data within 90 s")
	}
	if data["error"] != nil {
		t.Errorf("inspection error %v", data["error"])
	}
	dmi, _ := data["dmi"].(map[string]any)
	bios, _ := dmi["bios"].(map[string]any)
	if bios["Vendor"] != "goipa-bios" || bios["Version"] != "9.8.7" || bios["Release Date"] != "03/04/2026" {
		t.Errorf("dmi bios %v, want QEMU's -smbios type=0 strings", bios)
	}
	if cpus, _ := dmi["cpu"].([]any); len(cpus) != 1 || cpus[0].(map[string]any)["Core Count"] != "2" {
		t.Errorf("dmi cpu %v, want the guest's one processor of two cores (-smp 2)", dmi["cpu"])
	}
	mem, _ := dmi["memory"].(map[string]any)
	if devs, _ := mem["devices"].([]any); mem["Number Of Devices"] != float64(1) || len(devs) != 1 || devs[0].(map[string]any)["Size"] != "1 GB" {
		t.Errorf("dmi memory %v, want one 1 GB device", mem)
	}
	inv, _ := data["inventory"].(map[string]any)
	if inv["goipa_bmc"] == nil || inv["bmc_address"] != "0.0.0.0" {
		t.Errorf("inspected inventory: goipa_bmc %v, bmc_address %v", inv["goipa_bmc"], inv["bmc_address"])
	}

	toAPI, err := vm.WaitFor(ctx, "API listening", 90*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("QEMU start to API %.2f s (accel %s)", toAPI.Seconds(), initramfs.Accel())

	client := &http.Client{Timeout: 60 * time.Second}
	start := time.Now()
	resp, err := client.Post(fmt.Sprintf("http://127.0.0.1:%d/v1/commands/?wait=true", port), "application/json",
		bytes.NewReader([]byte(`{"name": "poll.get_hardware_info", "params": {}}`)))
	if err != nil {
		t.Fatal(err)
	}
	var res struct {
		Status string `json:"command_status"`
		Result struct {
			BMCAddress   *string         `json:"bmc_address"`
			BMCV6Address *string         `json:"bmc_v6address"`
			BMCMAC       json.RawMessage `json:"bmc_mac"`
			BMC          *struct {
				FirmwareVersion string `json:"firmware_version"`
				IPMIVersion     string `json:"ipmi_version"`
				ManufacturerID  int    `json:"manufacturer_id"`
				ProductID       int    `json:"product_id"`
				DeviceID        int    `json:"device_id"`
				DeviceRevision  int    `json:"device_revision"`
			} `json:"goipa_bmc"`
		} `json:"command_result"`
	}
	err = json.NewDecoder(resp.Body).Decode(&res)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("get_hardware_info took %s", time.Since(start).Round(time.Millisecond))
	if res.Status != "SUCCEEDED" {
		t.Fatalf("get_hardware_info %s", res.Status)
	}
	b := res.Result.BMC
	if b == nil {
		t.Fatal("no goipa_bmc in the inventory: /dev/ipmi0 missing or Get Device ID unanswered")
	}
	t.Logf("goipa_bmc %+v", *b)
	if b.FirmwareVersion != "2.83" || b.IPMIVersion != "2.0" || b.ManufacturerID != 674 || b.ProductID != 256 || b.DeviceID != 0x20 || b.DeviceRevision != 3 {
		t.Errorf("goipa_bmc %+v, want firmware 2.83, IPMI 2.0, manufacturer 674, product 256, device 0x20 revision 3", *b)
	}
	if res.Result.BMCAddress == nil || *res.Result.BMCAddress != "0.0.0.0" {
		t.Errorf("bmc_address %v, want IPA's 0.0.0.0 for a BMC without a LAN address", res.Result.BMCAddress)
	}
	if res.Result.BMCV6Address == nil || *res.Result.BMCV6Address != "::/0" {
		t.Errorf("bmc_v6address %v, want IPA's ::/0", res.Result.BMCV6Address)
	}
	if len(res.Result.BMCMAC) != 0 {
		t.Errorf("bmc_mac %s, want none (the simulator has no LAN channel)", res.Result.BMCMAC)
	}
	if strings.Contains(vm.Console(), "cannot read the BMC") {
		t.Error("the agent logged that it could not read the BMC")
	}
}
