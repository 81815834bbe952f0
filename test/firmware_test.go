package test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// checkFirmwareInVM runs the firmware steps against the guest's real
// (emulated) devices, through the agent API on the forwarded port:
// QEMU 7.2's NVMe controller has no Firmware Image Download (OACS bit
// 2 clear), so update_firmware must refuse it before anything is
// fetched or sent; its Firmware Slot Information log is read for
// verify_firmware, which fails for a version the controller does not
// run and passes for the one it does. virtio-net has no devlink
// instance: flashing eth0 is refused by the kernel's devlink family.
func checkFirmwareInVM(t *testing.T, port int) {
	t.Helper()
	var fetched atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fetched.Add(1)
		w.Write(make([]byte, 4096))
	}))
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv.Listener = l
	srv.Start()
	defer srv.Close()
	// QEMU's user network shows the host's loopback to the guest as 10.0.2.2.
	url := fmt.Sprintf("http://10.0.2.2:%d/fw.bin", l.Addr().(*net.TCPAddr).Port)
	const zeroSum = "sha256:ad7facb2586fc6e966c004d7d1d16b024f5805ff7cb47c7a85dabd8b48892ca7" // 4 KiB of zeros

	client := &http.Client{Timeout: time.Minute}
	step := func(name string, args any) (status string, details string, result map[string]any) {
		t.Helper()
		body, _ := json.Marshal(map[string]any{"name": "clean.execute_clean_step", "params": map[string]any{
			"step": map[string]any{"step": name, "interface": "deploy", "args": args}, "node": map[string]any{}, "ports": []any{}}})
		resp, err := client.Post(fmt.Sprintf("http://127.0.0.1:%d/v1/commands/?wait=true", port), "application/json", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var res struct {
			Status string `json:"command_status"`
			Error  struct {
				Details string `json:"details"`
			} `json:"command_error"`
			Result map[string]any `json:"command_result"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&res); err != nil {
			t.Fatal(err)
		}
		return res.Status, res.Error.Details, res.Result
	}

	for _, target := range []string{"nvme0", "goipa-nvme-0"} {
		status, details, _ := step("update_firmware", map[string]any{"images": []any{map[string]any{"url": url, "checksum": zeroSum, "target": target}}})
		if status != "FAILED" || !strings.Contains(details, "OACS bit 2 clear") {
			t.Errorf("update_firmware of %s on QEMU's NVMe controller: %s %q, want a refusal naming OACS bit 2", target, status, details)
		}
	}
	status, details, _ := step("update_firmware", map[string]any{"images": []any{map[string]any{"url": url, "checksum": zeroSum, "target": "eth0"}}})
	if status != "FAILED" || !strings.Contains(details, "has no devlink device to flash") {
		t.Errorf("update_firmware of eth0 (virtio-net): %s %q, want the devlink refusal", status, details)
	}
	if n := fetched.Load(); n != 0 {
		t.Errorf("the image was fetched %d times for devices that cannot take it", n)
	}

	status, details, _ = step("verify_firmware", map[string]any{"devices": []any{map[string]any{"target": "nvme0", "version": "no-such"}}})
	m := regexp.MustCompile(`nvme0 \(nvme0\) runs (\S+), not no-such`).FindStringSubmatch(details)
	if status != "FAILED" || m == nil {
		t.Fatalf("verify_firmware for a version nvme0 does not run: %s %q", status, details)
	}
	status, details, res := step("verify_firmware", map[string]any{"devices": []any{map[string]any{"target": "goipa-nvme-0", "version": m[1]}}})
	if status != "SUCCEEDED" {
		t.Errorf("verify_firmware for the version the slot log reports (%s): %s %q", m[1], status, details)
	}
	t.Logf("NVMe firmware slot log: running %s; verify_firmware result %v", m[1], res["clean_result"])

	// The inventory reports the slots (goipa_firmware) on the NVMe disk.
	resp, err := client.Post(fmt.Sprintf("http://127.0.0.1:%d/v1/commands/?wait=true", port), "application/json",
		bytes.NewReader([]byte(`{"name": "poll.get_hardware_info", "params": {}}`)))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var hw struct {
		Result struct {
			Disks []struct {
				Name     string `json:"name"`
				Firmware *struct {
					Controller      string            `json:"controller"`
					Running         string            `json:"running"`
					ActiveSlot      int               `json:"active_slot"`
					Slots           map[string]string `json:"slots"`
					UpdateSupported bool              `json:"update_supported"`
				} `json:"goipa_firmware"`
			} `json:"disks"`
		} `json:"command_result"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&hw); err != nil {
		t.Fatal(err)
	}
	for _, d := range hw.Result.Disks {
		if d.Name != "/dev/nvme0n1" {
			if d.Firmware != nil {
				t.Errorf("%s reports NVMe firmware slots", d.Name)
			}
			continue
		}
		f := d.Firmware
		if f == nil || f.Controller != "nvme0" || f.Running != m[1] || f.ActiveSlot < 1 || f.Slots[fmt.Sprint(f.ActiveSlot)] != m[1] || f.UpdateSupported {
			t.Errorf("the inventory's goipa_firmware for /dev/nvme0n1: %+v, want nvme0 running %s from its active slot, no update support", f, m[1])
		}
		return
	}
	t.Error("no /dev/nvme0n1 in the inventory")
}
