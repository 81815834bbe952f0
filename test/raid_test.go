package test

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/goipa/goipa/initramfs"
	"github.com/goipa/goipa/internal/testenv"
	"github.com/goipa/goipa/mdraid"
	"github.com/goipa/goipa/test/realironic"
)

// Software RAID geometry on the test's 5 GiB disks (worked out by hand,
// as IPA and mdadm lay it out): a BIOS node without a disk_label
// capability gets MBR tables (IPA's default), the RAID partition from
// the first free sector (1 MiB) to the end of the disk ("MAX"); mdadm's
// 1.2 superblock puts the data 10240 sectors into the partition.
const (
	raidDiskSize     = 5 << 30
	raidPartStart    = 2048     // sectors
	raidPartSectors  = 10483712 // to the end of the 10485760-sector disk
	raidDataOffset   = 10240    // sectors, in the partition
	raidArraySectors = 10473472 // raidPartSectors - raidDataOffset, 64 KiB-aligned
)

// TestSoftwareRAIDWithRealIronic: Debian's Ironic 21.4 with
// raid_interface=agent builds a software RAID-1 through goipa's ramdisk
// in QEMU (manual cleaning: delete_configuration, create_configuration),
// records the node's raid_config from the step's result, and deploys a
// whole-disk image onto the array after the ramdisk booted again and
// assembled it from the superblocks goipa wrote. Afterwards both disk
// files hold IPA's partition table, a superblock mdadm reads as a
// healthy two-disk RAID-1, and the image at the data offset.
func TestSoftwareRAIDWithRealIronic(t *testing.T) {
	testenv.NeedRoot(t)
	testenv.NeedCommands(t, "ironic", "dnsmasq", "qemu-system-x86_64", "ip", "sfdisk", "losetup", "mdadm", "debugfs")
	kernel, initrd := buildRamdisk(t)
	ctx := context.Background()
	const mac = "52:54:00:e2:d0:01"
	const guestIP = "192.168.77.61"
	pn := newProvisioningNet(t, mac, guestIP)
	ir := realironic.Start(t, realironic.WithNetNS(pn.ns, pn.host), realironic.WithHeartbeatTimeout(10))
	start := time.Now()
	step := func(what string) { t.Logf("[%6.1fs] %s", time.Since(start).Seconds(), what) }
	diskA, diskB := sparseFile(t, raidDiskSize), sparseFile(t, raidDiskSize)

	uuid, err := ir.EnrollManualNode(ctx, "goipa-raid", mac, map[string]any{}, map[string]any{"raid_interface": "agent"})
	if err != nil {
		t.Fatal(err)
	}
	if err := ir.Provision(ctx, uuid, "manage", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := ir.WaitState(ctx, uuid, "manageable", 60*time.Second, nil); err != nil {
		t.Fatal(err)
	}
	target := map[string]any{"logical_disks": []any{map[string]any{"size_gb": "MAX", "raid_level": "1", "controller": "software", "is_root_volume": true}}}
	if err := ir.Do(ctx, http.MethodPut, "/v1/nodes/"+uuid+"/states/raid", target, nil); err != nil {
		t.Fatal(err)
	}
	boot := func() *initramfs.VM {
		t.Helper()
		cmdline := fmt.Sprintf("ipa-api-url=%s BOOTIF=01-%s ipa-debug=1", ir.URL, strings.ReplaceAll(mac, ":", "-"))
		return startGuest(t, ctx, initramfs.VMOptions{Kernel: kernel, Initrd: initrd, Cmdline: cmdline,
			VirtioDisks: []string{diskA, diskB}, MAC: mac, Tap: pn.tap, NetNS: pn.ns})
	}

	// 1. Manual cleaning builds the array.
	steps := []any{map[string]any{"interface": "raid", "step": "delete_configuration"}, map[string]any{"interface": "raid", "step": "create_configuration"}}
	if err := ir.Provision(ctx, uuid, "clean", map[string]any{"clean_steps": steps}); err != nil {
		t.Fatal(err)
	}
	if _, err := ir.WaitState(ctx, uuid, "clean wait", 60*time.Second, nil); err != nil {
		t.Fatal(err)
	}
	vm := boot()
	if _, err := ir.WaitState(ctx, uuid, "manageable", 300*time.Second, commentary(t, vm, step)); err != nil {
		t.Fatalf("manual cleaning with create_configuration: %v", err)
	}
	step("manual cleaning (delete_configuration, create_configuration) done: manageable")
	var node struct {
		RAIDConfig map[string]any `json:"raid_config"`
		Properties map[string]any `json:"properties"`
	}
	if err := ir.Do(ctx, http.MethodGet, "/v1/nodes/"+uuid, nil, &node); err != nil {
		t.Fatal(err)
	}
	lds, _ := node.RAIDConfig["logical_disks"].([]any)
	if len(lds) != 1 || lds[0].(map[string]any)["raid_level"] != "1" || lds[0].(map[string]any)["controller"] != "software" || node.RAIDConfig["last_updated"] == nil {
		t.Errorf("Ironic's raid_config after create_configuration: %v", node.RAIDConfig)
	}
	if caps := fmt.Sprint(node.Properties["capabilities"]); !strings.Contains(caps, "raid_level:1") {
		t.Errorf("Ironic did not record the root volume's raid_level capability: %q", caps)
	}
	console := vm.Console()
	for _, want := range []string{"software RAID created", "md0 : active raid1 vdb1[1] vda1[0]"} {
		if !strings.Contains(console, want) {
			t.Errorf("the guest's log lacks %q:\n%s", want, grepLines(console, "RAID", "md"))
		}
	}
	// Ironic powers a node off after manual cleaning; with fake power the
	// test pulls the plug, mid-resync.
	vm.Kill()
	<-vm.Done()

	// 2. Deploy onto the array from a fresh boot, which must assemble it.
	if err := ir.Provision(ctx, uuid, "provide", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := ir.WaitState(ctx, uuid, "available", 60*time.Second, nil); err != nil {
		t.Fatal(err)
	}
	image := demoImage(t, 64<<20)
	if err := os.WriteFile(filepath.Join(ir.ImageDir, "raid.raw"), image, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := ir.Patch(ctx, uuid, map[string]any{"op": "add", "path": "/instance_info", "value": map[string]any{
		"image_source": ir.ImageURL("raid.raw"), "image_os_hash_algo": "sha256", "image_os_hash_value": sha256Hex(image),
		"image_type": "whole-disk", "image_disk_format": "raw", "root_gb": 1}}); err != nil {
		t.Fatal(err)
	}
	if err := ir.Provision(ctx, uuid, "active", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := ir.WaitState(ctx, uuid, "wait call-back", 60*time.Second, nil); err != nil {
		t.Fatal(err)
	}
	vm = boot()
	if _, err := ir.WaitState(ctx, uuid, "active", 300*time.Second, commentary(t, vm, step)); err != nil {
		t.Fatalf("deploy onto the array: %v", err)
	}
	step("deployed onto /dev/md0: active")
	select {
	case <-vm.Done():
	case <-time.After(60 * time.Second):
		t.Fatal("the ramdisk did not power the VM off after the deploy")
	}
	console = vm.Console()
	for _, want := range []string{"software RAID assembled", "device=/dev/md0", "md0 : active"} {
		if !strings.Contains(console, want) {
			t.Errorf("the second boot's log lacks %q:\n%s", want, grepLines(console, "RAID", "md"))
		}
	}
	if !strings.Contains(grepLines(console, "writing image"), "/dev/md0") {
		t.Errorf("the image was not written to /dev/md0:\n%s", grepLines(console, "writing image", "install disk", "root device"))
	}

	// 3. The disks, read from the host with sfdisk, mdadm and debugfs.
	var uuids []string
	for i, f := range []string{diskA, diskB} {
		checkRAIDHolder(t, f)
		info := examineMember(t, f)
		for _, want := range []string{"Version : 1.2", "Raid Level : raid1", "Raid Devices : 2", fmt.Sprintf("Data Offset : %d sectors", raidDataOffset),
			fmt.Sprintf("Device Role : Active device %d", i), "Array State : AA", fmt.Sprintf("Array Size : %d KiB", raidArraySectors/2)} {
			if !strings.Contains(info, want) {
				t.Errorf("%s: mdadm --examine lacks %q:\n%s", filepath.Base(filepath.Dir(f)), want, info)
			}
		}
		uuids = append(uuids, field(info, "Array UUID"))
		data := readAt(t, f, (raidPartStart+raidDataOffset)*512, len(image))
		if !bytes.Equal(data[34*512:], image[34*512:]) {
			t.Errorf("member %d does not hold the image at the array's data offset", i)
		}
		checkMarker(t, data)
	}
	if uuids[0] == "" || uuids[0] != uuids[1] {
		t.Errorf("the members belong to different arrays: %q", uuids)
	}
	t.Logf("software RAID-1 through Ironic: both members hold the image at sector %d; array of %d sectors", raidPartStart+raidDataOffset, raidArraySectors)
}

// checkRAIDHolder reads a holder's partition table as IPA's parted
// calls leave it on a BIOS node: MBR, one partition of type 0x83 from
// 1 MiB to the end of the disk.
func checkRAIDHolder(t *testing.T, f string) {
	t.Helper()
	out, err := exec.Command("sfdisk", "--json", f).Output()
	if err != nil {
		t.Fatalf("sfdisk --json %s: %v", f, err)
	}
	var d struct {
		Table struct {
			Label      string `json:"label"`
			Partitions []struct {
				Start, Size int64
				Type        string
			} `json:"partitions"`
		} `json:"partitiontable"`
	}
	if err := json.Unmarshal(out, &d); err != nil {
		t.Fatal(err)
	}
	p := d.Table.Partitions
	if d.Table.Label != "dos" || len(p) != 1 || p[0].Start != raidPartStart || p[0].Size != raidPartSectors || p[0].Type != "83" {
		t.Errorf("%s: partition table %s, want one dos partition of type 83 at %d for %d sectors", f, out, raidPartStart, raidPartSectors)
	}
}

// examineMember runs mdadm --examine on a holder file's first partition
// through a read-only loop device.
func examineMember(t *testing.T, f string) string {
	t.Helper()
	out, err := exec.Command("losetup", "--find", "--show", "--read-only", "--offset", fmt.Sprint(raidPartStart*512),
		"--sizelimit", fmt.Sprint(raidPartSectors*512), f).Output()
	if err != nil {
		t.Fatalf("losetup: %v", err)
	}
	loop := strings.TrimSpace(string(out))
	defer exec.Command("losetup", "-d", loop).Run()
	res, err := exec.Command("mdadm", "--examine", loop).CombinedOutput()
	if err != nil {
		t.Fatalf("mdadm --examine %s: %v: %s", f, err, res)
	}
	return string(res)
}

func field(info, name string) string {
	for _, l := range strings.Split(info, "\n") {
		if k, v, ok := strings.Cut(l, " : "); ok && strings.TrimSpace(k) == name {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

func readAt(t *testing.T, path string, off int64, n int) []byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, n)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	return b
}

func grepLines(s string, keys ...string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		for _, k := range keys {
			if strings.Contains(l, k) {
				out = append(out, l)
				break
			}
		}
	}
	return strings.Join(out, "\n")
}

// TestSoftwareRAIDBadInput: a host agent with two loop devices refuses
// bad RAID configs with IPA's SoftwareRAIDError before touching a disk,
// and, on this host whose kernel has no md driver, refuses a good one
// before partitioning. A superblock goipa writes is what mdadm reads.
func TestSoftwareRAIDBadInput(t *testing.T) {
	testenv.NeedRoot(t)
	testenv.NeedCommands(t, "losetup", "unshare", "mdadm", "go")
	a, b := loopDevice(t, 64<<20), loopDevice(t, 64<<20)
	pattern := bytes.Repeat([]byte("goipa-untouched!"), 1<<16) // 1 MiB
	for _, l := range []string{a, b} {
		if err := os.WriteFile(l, pattern, 0); err != nil {
			t.Fatal(err)
		}
	}
	ag := startAgent(t, "--ipa-standalone=1", "--goipa-devices="+a+","+b)
	raidWaitAPI(t, ag.port)
	software := func(level string, extra map[string]any) map[string]any {
		ld := map[string]any{"size_gb": "MAX", "raid_level": level, "controller": "software"}
		for k, v := range extra {
			ld[k] = v
		}
		return map[string]any{"logical_disks": []any{ld}}
	}
	for _, tc := range []struct {
		name string
		cfg  map[string]any
		want string
	}{
		{"unsupported level", map[string]any{"logical_disks": []any{
			map[string]any{"size_gb": 1, "raid_level": "1", "controller": "software"},
			map[string]any{"size_gb": "MAX", "raid_level": "6", "controller": "software"}}}, "does not support RAID level 6"},
		{"missing disk", software("1", map[string]any{"physical_disks": []any{map[string]any{"name": a}, map[string]any{"name": "/dev/nonexistent"}}}), "No candidates for physical disk"},
		{"too few disks", software("1", map[string]any{"physical_disks": []any{map[string]any{"name": a}}}), "at least 2 items"},
		{"no md driver on this host", software("1", nil), "no md (software RAID) driver"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			node := map[string]any{"uuid": "raid-node", "target_raid_config": tc.cfg}
			res := raidCommand(t, ag.port, "clean.execute_clean_step", map[string]any{
				"step": map[string]any{"step": "create_configuration", "interface": "raid", "priority": 0}, "node": node, "ports": []any{},
				"clean_version": map[string]any{"generic_hardware_manager": "1.1"}})
			if res["command_status"] != "FAILED" {
				t.Fatalf("want FAILED, got %v", res)
			}
			errb, _ := json.Marshal(res["command_error"])
			if !strings.Contains(string(errb), "SoftwareRAIDError") || !strings.Contains(string(errb), tc.want) {
				t.Errorf("error %s, want a SoftwareRAIDError with %q", errb, tc.want)
			}
			for _, l := range []string{a, b} {
				if got := readAt(t, l, 0, len(pattern)); !bytes.Equal(got, pattern) {
					t.Errorf("%s was written to", l)
				}
			}
		})
	}

	// A superblock written by mdraid, read by mdadm.
	member := loopDevice(t, 64<<20)
	sbs, err := mdraid.Spec{Name: "md0", HomeHost: "goipa", Level: 1, Metadata: mdraid.Metadata12, Time: time.Unix(1700000000, 0)}.
		Superblocks([]uint64{131072, 131072}, [][16]byte{{1}, {2}})
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := sbs[1].Marshal()
	f, err := os.OpenFile(member, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt(raw, 4096)
	f.Close()
	out, err := exec.Command("mdadm", "--examine", member).CombinedOutput()
	if err != nil {
		t.Fatalf("mdadm --examine: %v: %s", err, out)
	}
	for _, want := range []string{"Version : 1.2", "Name : goipa:md0", "Raid Level : raid1", "Raid Devices : 2", "Data Offset : 2048 sectors",
		"Super Offset : 8 sectors", "Device Role : Active device 1", fmt.Sprintf("Checksum : %08x - correct", binary.LittleEndian.Uint32(raw[216:]))} {
		if !strings.Contains(string(out), want) {
			t.Errorf("mdadm --examine lacks %q:\n%s", want, out)
		}
	}
}

// raidCommand posts an agent command with wait=true and returns its
// result, whatever its status.
func raidCommand(t *testing.T, port int, name string, params any) map[string]any {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"name": name, "params": params})
	client := &http.Client{Timeout: 60 * time.Second}
	resp, err := client.Post(fmt.Sprintf("http://127.0.0.1:%d/v1/commands/?wait=true", port), "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	defer resp.Body.Close()
	var res map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&res); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return res
}

// raidWaitAPI waits (bounded) for a host agent's API.
func raidWaitAPI(t *testing.T, port int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/v1/commands/", port))
		if err == nil {
			resp.Body.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("agent API on port %d not up within 30 s: %v", port, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
