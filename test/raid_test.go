package test

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"maps"
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

// raidGeometry is where IPA and mdadm put things on the test's 5 GiB
// disks (10485760 sectors), worked out by hand.
type raidGeometry struct {
	label                 string // the holders' table: "dos" or "gpt"
	partStart, partSize   int64  // the RAID partition, in sectors
	dataOffset            int64  // mdadm 1.2's data offset in the partition
	arraySectors          int64  // the array: partition less offset, 64 KiB-aligned
	espStart, espSize     int64  // UEFI: the ESP goipa adds on every holder
	espArraySize          int64  // in KiB, as mdadm --examine prints it
	imageESPStart, espLen int    // where the image's own ESP is (bytes), wiped after the copy
}

var (
	// BIOS without a disk_label capability: MBR (IPA's default), the RAID
	// partition from the first free sector (1 MiB) to the end of the disk.
	raidBIOS = raidGeometry{label: "dos", partStart: 2048, partSize: 10483712, dataOffset: 10240, arraySectors: 10473472}
	// UEFI: GPT, 551 MiB kept in front for the ESP, the RAID partition to
	// the last 1 MiB boundary before the backup GPT; the ESP mirror is
	// metadata 1.0 over 550 MiB partitions (1126400 sectors, superblock
	// at 1126384, 16 sectors of bitmap and bad-block room before it, the
	// size 64 KiB-aligned: 1126272 sectors).
	raidUEFI = raidGeometry{label: "gpt", partStart: 1128448, partSize: 9355264, dataOffset: 10240, arraySectors: 9345024,
		espStart: 2048, espSize: 1126400, espArraySize: 1126272 / 2, imageESPStart: 1 << 20, espLen: 16 << 20}
)

// TestSoftwareRAIDWithRealIronic: Debian's Ironic 21.4 with
// raid_interface=agent builds a software RAID-1 through goipa's ramdisk
// in QEMU (UEFI, OVMF): manual cleaning runs delete_configuration and
// create_configuration, Ironic records the node's raid_config from the
// step's result, and a whole-disk image with an ESP is deployed onto
// the array after the ramdisk booted again and assembled it from the
// superblocks goipa wrote, with apply_configuration (a deploy template)
// making it anew first. install_bootloader mirrors the ESP onto every
// member (md RAID-1, metadata 1.0) with a boot entry per member. The
// disk files then hold IPA's GPT, superblocks mdadm reads as healthy
// two-disk mirrors, the image at the array's data offset and the ESP's
// files on each member.
func TestSoftwareRAIDWithRealIronic(t *testing.T) { raidFlow(t, true) }

// TestSoftwareRAIDBIOSWithRealIronic is the same on a BIOS node: MBR
// holders (about two minutes under TCG). The image's protective MBR has
// no disk signature, so Ironic's root UUID is 0x00000000 and, as in IPA,
// install_bootloader has nothing to run; were it set, grub-install on
// every member would be needed, off by default as in IPA master, hence
// ipa-ignore-bootloader-failure below.
func TestSoftwareRAIDBIOSWithRealIronic(t *testing.T) { raidFlow(t, false) }

func raidFlow(t *testing.T, uefi bool) {
	testenv.NeedRoot(t)
	testenv.NeedCommands(t, "ironic", "dnsmasq", "qemu-system-x86_64", "ip", "sfdisk", "sgdisk", "losetup", "mdadm", "debugfs", "mtype")
	kernel, initrd := buildRamdisk(t)
	ctx := context.Background()
	const mac = "52:54:00:e2:d0:01"
	const guestIP = "192.168.77.61"
	geo := raidBIOS
	if uefi {
		geo = raidUEFI
	}
	pn := newProvisioningNet(t, mac, guestIP)
	ir := realironic.Start(t, realironic.WithNetNS(pn.ns, pn.host), realironic.WithHeartbeatTimeout(10))
	start := time.Now()
	step := func(what string) { t.Logf("[%6.1fs] %s", time.Since(start).Seconds(), what) }
	diskA, diskB := sparseFile(t, 5<<30), sparseFile(t, 5<<30)

	mode := "bios"
	if uefi {
		mode = "uefi"
	}
	uuid, err := ir.EnrollManualNode(ctx, "goipa-raid", mac, map[string]any{"capabilities": "boot_mode:" + mode}, map[string]any{"raid_interface": "agent"})
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
		if !uefi {
			// A BIOS whole-disk image on md boots only after the image's
			// grub-install on every member, off by default as in IPA
			// master; this image carries no grub.
			cmdline += " ipa-ignore-bootloader-failure=1"
		}
		return startGuest(t, ctx, initramfs.VMOptions{Kernel: kernel, Initrd: initrd, Cmdline: cmdline, UEFI: uefi,
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
	node.RAIDConfig, node.Properties = nil, nil // a decode merges into maps it finds
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
	if uefi {
		image = espImage(t, true)
	}
	if err := os.WriteFile(filepath.Join(ir.ImageDir, "raid.raw"), image, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := ir.Patch(ctx, uuid, map[string]any{"op": "add", "path": "/instance_info", "value": map[string]any{
		"image_source": ir.ImageURL("raid.raw"), "image_os_hash_algo": "sha256", "image_os_hash_value": sha256Hex(image),
		"image_type": "whole-disk", "image_disk_format": "raw", "root_gb": 1}}); err != nil {
		t.Fatal(err)
	}
	// The deploy also runs apply_configuration (a deploy template on the
	// node's trait): the array assembled at boot is deleted and made anew
	// before the image is written, and Ironic reads the deploy_result.
	template := map[string]any{"name": "CUSTOM_SOFTWARE_RAID1", "steps": []any{map[string]any{
		"interface": "raid", "step": "apply_configuration", "priority": 90, "args": map[string]any{"raid_config": target, "delete_existing": true}}}}
	if err := ir.Do(ctx, http.MethodPost, "/v1/deploy_templates", template, nil); err != nil {
		t.Fatal(err)
	}
	if err := ir.Do(ctx, http.MethodPut, "/v1/nodes/"+uuid+"/traits", map[string]any{"traits": []string{"CUSTOM_SOFTWARE_RAID1"}}, nil); err != nil {
		t.Fatal(err)
	}
	if err := ir.Patch(ctx, uuid, map[string]any{"op": "add", "path": "/instance_info/traits", "value": []string{"CUSTOM_SOFTWARE_RAID1"}}); err != nil {
		t.Fatal(err)
	}
	cleanedAt := node.RAIDConfig["last_updated"]
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
	for _, want := range []string{"software RAID assembled", "device=/dev/md0", "md0 : active", "deleting Software RAID device", "software RAID created"} {
		if !strings.Contains(console, want) {
			t.Errorf("the second boot's log lacks %q:\n%s", want, grepLines(console, "RAID", "md"))
		}
	}
	if i, j := strings.Index(console, "software RAID assembled"), strings.Index(console, "software RAID created"); i < 0 || j < i || !strings.Contains(console[j:], "writing image") {
		t.Error("want the array assembled at boot, made anew by apply_configuration, then the image written")
	}
	node.RAIDConfig, node.Properties = nil, nil // a decode merges into maps it finds
	if err := ir.Do(ctx, http.MethodGet, "/v1/nodes/"+uuid, nil, &node); err != nil {
		t.Fatal(err)
	}
	if node.RAIDConfig["last_updated"] == cleanedAt || len(node.RAIDConfig["logical_disks"].([]any)) != 1 {
		t.Errorf("Ironic did not record apply_configuration's deploy_result: %v (cleaning left %v)", node.RAIDConfig, cleanedAt)
	}
	if !strings.Contains(grepLines(console, "writing image"), "/dev/md0") {
		t.Errorf("the image was not written to /dev/md0:\n%s", grepLines(console, "writing image", "install disk", "root device"))
	}
	if uefi {
		entries := grepLines(console, "UEFI boot entry added")
		for _, want := range []string{"(RAID, part0)", "(RAID, part1)"} {
			if !strings.Contains(entries, want) {
				t.Errorf("no boot entry %q:\n%s", want, grepLines(console, "UEFI", "ESP", "bootloader"))
			}
		}
	}

	// 3. The disks, read from the host with sfdisk, mdadm, mtools and debugfs.
	var uuids []string
	for i, f := range []string{diskA, diskB} {
		checkRAIDHolder(t, f, geo, i)
		info := examineMember(t, f, geo.partStart, geo.partSize)
		for _, want := range []string{"Version : 1.2", "Raid Level : raid1", "Raid Devices : 2", fmt.Sprintf("Data Offset : %d sectors", geo.dataOffset),
			fmt.Sprintf("Device Role : Active device %d", i), "Array State : AA", fmt.Sprintf("Array Size : %d KiB", geo.arraySectors/2)} {
			if !strings.Contains(info, want) {
				t.Errorf("disk %d: mdadm --examine lacks %q:\n%s", i, want, info)
			}
		}
		uuids = append(uuids, field(info, "Array UUID"))
		data := readAt(t, f, (geo.partStart+geo.dataOffset)*512, len(image))
		if uefi {
			// The image's ESP was wiped once copied to the mirror.
			if !bytes.Equal(data[34*512:geo.imageESPStart], image[34*512:geo.imageESPStart]) || !bytes.Equal(data[geo.imageESPStart+geo.espLen:], image[geo.imageESPStart+geo.espLen:]) {
				t.Errorf("member %d does not hold the image at the array's data offset", i)
			}
			if !bytes.Equal(data[geo.imageESPStart:geo.imageESPStart+4096], make([]byte, 4096)) {
				t.Errorf("member %d: the image's own ESP was not wiped", i)
			}
			esp := examineMember(t, f, geo.espStart, geo.espSize)
			for _, want := range []string{"Version : 1.0", "Raid Level : raid1", "Raid Devices : 2", fmt.Sprintf("Array Size : %d KiB", geo.espArraySize)} {
				if !strings.Contains(esp, want) {
					t.Errorf("disk %d ESP: mdadm --examine lacks %q:\n%s", i, want, esp)
				}
			}
			if name := field(esp, "Name"); !strings.HasPrefix(name, "esp") && !strings.Contains(name, ":esp") {
				t.Errorf("disk %d: the ESP mirror is named %q, want esp", i, name)
			}
			// Firmware reads the member as plain FAT: the loaders are there.
			out, err := exec.Command("mtype", "-i", fmt.Sprintf("%s@@%d", f, geo.espStart*512), "::EFI/BOOT/BOOTX64.EFI").CombinedOutput()
			if err != nil || string(out) != "MZ fallback" {
				t.Errorf("disk %d: the ESP's EFI/BOOT/BOOTX64.EFI reads %q (%v)", i, out, err)
			}
		} else {
			if !bytes.Equal(data[34*512:], image[34*512:]) {
				t.Errorf("member %d does not hold the image at the array's data offset", i)
			}
			checkMarker(t, data)
		}
	}
	if uuids[0] == "" || uuids[0] != uuids[1] {
		t.Errorf("the members belong to different arrays: %q", uuids)
	}
	t.Logf("software RAID-1 (%s) through Ironic: both members hold the image at sector %d; array of %d sectors", mode, geo.partStart+geo.dataOffset, geo.arraySectors)

	// 4. Undeploy, then erase_devices_metadata and delete_configuration by
	// manual cleaning: the ramdisk assembles the arrays it finds; the
	// metadata wipe skips their members and wipes the arrays (IPA's
	// rule); delete_configuration takes them apart.
	if err := ir.Provision(ctx, uuid, "deleted", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := ir.WaitState(ctx, uuid, "available", 120*time.Second, nil); err != nil {
		t.Fatal(err)
	}
	if err := ir.Provision(ctx, uuid, "manage", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := ir.WaitState(ctx, uuid, "manageable", 60*time.Second, nil); err != nil {
		t.Fatal(err)
	}
	erase := map[string]any{"interface": "deploy", "step": "erase_devices_metadata"}
	if err := ir.Provision(ctx, uuid, "clean", map[string]any{"clean_steps": []any{erase, steps[0]}}); err != nil {
		t.Fatal(err)
	}
	if _, err := ir.WaitState(ctx, uuid, "clean wait", 60*time.Second, nil); err != nil {
		t.Fatal(err)
	}
	vm = boot()
	if _, err := ir.WaitState(ctx, uuid, "manageable", 300*time.Second, commentary(t, vm, step)); err != nil {
		t.Fatalf("manual cleaning with delete_configuration: %v", err)
	}
	step("delete_configuration done: manageable")
	vm.Kill()
	<-vm.Done()
	node.RAIDConfig, node.Properties = nil, nil // a decode merges into maps it finds
	if err := ir.Do(ctx, http.MethodGet, "/v1/nodes/"+uuid, nil, &node); err != nil {
		t.Fatal(err)
	}
	if len(node.RAIDConfig) != 0 {
		t.Errorf("Ironic kept raid_config after delete_configuration: %v", node.RAIDConfig)
	}
	console = vm.Console()
	for _, want := range [][]string{{"skipping software RAID member", "device=/dev/vda "}, {"skipping software RAID member", "device=/dev/vdb "}, {"metadata erased", "device=/dev/md0 "}} {
		if !hasLine(console, want...) {
			t.Errorf("erase_devices_metadata: no line with %q in the log:\n%s", want, grepLines(console, "erase", "metadata"))
		}
	}
	if hasLine(console, "metadata erased", "device=/dev/vda ") || hasLine(console, "metadata erased", "device=/dev/vdb ") {
		t.Error("erase_devices_metadata wiped a RAID member as a plain disk")
	}
	if n := strings.Count(console, "deleting Software RAID device"); n != 1+btoi(uefi) {
		t.Errorf("%d arrays deleted, want %d:\n%s", n, 1+btoi(uefi), grepLines(console, "RAID", "md"))
	}
	for i, f := range []string{diskA, diskB} {
		if out, _ := exec.Command("sfdisk", "--json", f).CombinedOutput(); !strings.Contains(string(out), "does not contain a recognized partition table") {
			t.Errorf("disk %d keeps a partition table after delete_configuration: %s", i, out)
		}
		if err := exec.Command("mdadm", "--examine", f).Run(); err == nil {
			t.Errorf("disk %d still carries an md superblock", i)
		}
		for _, p := range [][2]int64{{geo.partStart, geo.partSize}, {geo.espStart, geo.espSize}} {
			if p[1] == 0 {
				continue
			}
			if out, err := exec.Command("mdadm", "--examine", loopAt(t, f, p[0], p[1])).CombinedOutput(); err == nil || !strings.Contains(string(out), "No md superblock") {
				t.Errorf("disk %d: a superblock survived delete_configuration at sector %d: %s", i, p[0], out)
			}
		}
	}
}

// hasLine reports whether one line of s holds every part (a log line
// ends with a space or newline after its last attribute).
func hasLine(s string, parts ...string) bool {
	for _, l := range strings.Split(s, "\n") {
		l = strings.TrimRight(l, "\r") + " "
		ok := true
		for _, p := range parts {
			ok = ok && strings.Contains(l, p)
		}
		if ok {
			return true
		}
	}
	return false
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// loopAt is a read-only loop device over a range of a file (sectors),
// detached when the test ends.
func loopAt(t *testing.T, f string, start, size int64) string {
	t.Helper()
	out, err := exec.Command("losetup", "--find", "--show", "--read-only", "--offset", fmt.Sprint(start*512), "--sizelimit", fmt.Sprint(size*512), f).Output()
	if err != nil {
		t.Fatalf("losetup: %v", err)
	}
	loop := strings.TrimSpace(string(out))
	t.Cleanup(func() { exec.Command("losetup", "-d", loop).Run() })
	return loop
}

// checkRAIDHolder reads a holder's partition table as IPA leaves it:
// the RAID partition (MBR type 0x83, or GPT Linux filesystem named
// "primary" as parted's mkpart makes it) and, for UEFI, the ESP goipa
// added at install_bootloader (named uefi-holder-<i>).
func checkRAIDHolder(t *testing.T, f string, geo raidGeometry, i int) {
	t.Helper()
	out, err := exec.Command("sfdisk", "--json", f).Output()
	if err != nil {
		t.Fatalf("sfdisk --json %s: %v", f, err)
	}
	type part struct {
		Start, Size int64
		Type, Name  string
	}
	var d struct {
		Table struct {
			Label      string `json:"label"`
			Partitions []part `json:"partitions"`
		} `json:"partitiontable"`
	}
	if err := json.Unmarshal(out, &d); err != nil {
		t.Fatal(err)
	}
	want := []part{{geo.partStart, geo.partSize, "83", ""}}
	if geo.label == "gpt" {
		want = []part{{geo.partStart, geo.partSize, "0FC63DAF-8483-4772-8E79-3D69D8477DE4", "primary"},
			{geo.espStart, geo.espSize, "C12A7328-F81F-11D2-BA4B-00A0C93EC93B", fmt.Sprintf("uefi-holder-%d", i)}}
	}
	got := d.Table.Partitions
	if d.Table.Label != geo.label || len(got) != len(want) {
		t.Fatalf("%s: partition table %s, want %s with %v", f, out, geo.label, want)
	}
	for j := range want {
		if got[j] != want[j] {
			t.Errorf("%s partition %d: %+v, want %+v", f, j+1, got[j], want[j])
		}
	}
}

// examineMember runs mdadm --examine on a partition of a holder file
// (start and size in sectors) through a read-only loop device.
func examineMember(t *testing.T, f string, start, size int64) string {
	t.Helper()
	out, err := exec.Command("losetup", "--find", "--show", "--read-only", "--offset", fmt.Sprint(start*512),
		"--sizelimit", fmt.Sprint(size*512), f).Output()
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
			res := postCommand(t, ag.port, "clean.execute_clean_step", map[string]any{
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

// TestRAIDHolderTables writes IPA's UEFI holder layout onto a loop
// device with mdraid's go-diskfs code, then adds the ESP beside the
// RAID partition as install_bootloader does: sfdisk reads both tables,
// and the RAID partition keeps its GUID through the second write.
func TestRAIDHolderTables(t *testing.T) {
	testenv.NeedRoot(t)
	testenv.NeedCommands(t, "losetup", "sfdisk")
	ctx := context.Background()
	dev := partscanLoop(t, 2<<30)
	if _, err := mdraid.Plan("uefi", "gpt", 512, map[string]int64{dev: 2 << 30}, []mdraid.LogicalDisk{{SizeGiB: 0, Disks: []string{dev, dev + "x"}}}); err == nil {
		t.Fatal("a plan with a holder of unknown size was accepted")
	}
	l, err := mdraid.Plan("uefi", "gpt", 512, map[string]int64{dev: 2 << 30}, []mdraid.LogicalDisk{{SizeGiB: 0, Disks: []string{dev}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := mdraid.WriteTable(ctx, dev, "gpt", l.Holders[dev]); err != nil {
		t.Fatal(err)
	}
	type part struct {
		Start, Size int64
		Type, Name  string
		UUID        string
	}
	read := func() []part {
		out, err := exec.Command("sfdisk", "--json", dev).Output()
		if err != nil {
			t.Fatalf("sfdisk: %v", err)
		}
		var d struct {
			Table struct {
				Label      string `json:"label"`
				Partitions []part `json:"partitions"`
			} `json:"partitiontable"`
		}
		if err := json.Unmarshal(out, &d); err != nil || d.Table.Label != "gpt" {
			t.Fatalf("sfdisk: %v %s", err, out)
		}
		return d.Table.Partitions
	}
	first := read()
	// 2 GiB disk: from 551 MiB to the last 1 MiB boundary before the backup GPT.
	if len(first) != 1 || first[0].Start != 1128448 || first[0].Size != 4194304-1128448-2048 || first[0].Name != "primary" || first[0].Type != "0FC63DAF-8483-4772-8E79-3D69D8477DE4" {
		t.Fatalf("RAID partition: %+v", first)
	}
	if _, err := os.Stat(dev + "p1"); err != nil {
		t.Errorf("the kernel does not show the partition: %v", err)
	}
	if _, err := mdraid.AddPartition(ctx, dev, mdraid.Span{Number: 2, Start: 1 << 20, End: 551 << 20}, "C12A7328-F81F-11D2-BA4B-00A0C93EC93B", "uefi-holder-0"); err != nil {
		t.Fatal(err)
	}
	if _, err := mdraid.AddPartition(ctx, dev, mdraid.Span{Number: 3, Start: 500 << 20, End: 600 << 20}, "C12A7328-F81F-11D2-BA4B-00A0C93EC93B", "overlap"); err == nil {
		t.Error("an overlapping partition was added")
	}
	second := read()
	if len(second) != 2 || second[0] != first[0] {
		t.Fatalf("after adding the ESP: %+v (was %+v)", second, first)
	}
	if esp := second[1]; esp.Start != 2048 || esp.Size != 1126400 || esp.Name != "uefi-holder-0" || esp.Type != "C12A7328-F81F-11D2-BA4B-00A0C93EC93B" {
		t.Errorf("ESP: %+v", esp)
	}
	if _, err := os.Stat(dev + "p2"); err != nil {
		t.Errorf("the kernel does not show the ESP: %v", err)
	}
}

// TestSoftwareRAIDLevelsInQEMU drives the RAID steps through the agent
// API of a standalone ramdisk in QEMU with two 2 GiB disks: a RAID-1
// root volume and a RAID-0 volume in one create_configuration (IPA's
// two-volume shape), read back from the inventory (sizes worked out by
// hand) and from /proc/mdstat in collect_system_logs;
// apply_configuration replaces them with one mirror; delete_configuration
// leaves the disks blank.
func TestSoftwareRAIDLevelsInQEMU(t *testing.T) {
	testenv.NeedRoot(t)
	testenv.NeedCommands(t, "sfdisk", "mdadm")
	kernel, initrd := buildRamdisk(t)
	port := realironic.FreePort(t)
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	diskA, diskB := sparseFile(t, 2<<30), sparseFile(t, 2<<30)
	vm := startGuest(t, ctx, initramfs.VMOptions{Kernel: kernel, Initrd: initrd, Cmdline: "ipa-standalone=1",
		VirtioDisks: []string{diskA, diskB}, HostForward: port})
	if _, err := vm.WaitFor(ctx, "API listening", 120*time.Second); err != nil {
		t.Fatal(err)
	}
	version := map[string]any{"generic_hardware_manager": "1.1"}
	twoVolumes := map[string]any{"logical_disks": []any{
		map[string]any{"size_gb": 1, "raid_level": "1", "controller": "software", "volume_name": "root"},
		map[string]any{"size_gb": "MAX", "raid_level": "0", "controller": "software", "volume_name": "data"}}}
	run := func(kind, stepName string, node, args map[string]any) map[string]any {
		t.Helper()
		res := postCommand(t, port, kind+".execute_"+kind+"_step", map[string]any{
			"step": map[string]any{"step": stepName, "interface": "raid", "priority": 0, "args": args},
			"node": node, "ports": []any{}, kind + "_version": version})
		if res["command_status"] != "SUCCEEDED" {
			t.Fatalf("%s: %v", stepName, res)
		}
		return res["command_result"].(map[string]any)
	}
	mdDisks := func() map[string]int64 {
		t.Helper()
		res := postCommand(t, port, "poll.get_hardware_info", map[string]any{})
		out := map[string]int64{}
		for _, d := range res["command_result"].(map[string]any)["disks"].([]any) {
			m := d.(map[string]any)
			if name := m["name"].(string); strings.HasPrefix(name, "/dev/md") {
				out[name] = int64(m["size"].(float64))
			}
		}
		return out
	}
	mdstat := func() string {
		t.Helper()
		res := command(t, port, "log.collect_system_logs", map[string]any{})
		return tarMember(t, res["command_result"].(map[string]any)["system_logs"].(string), "mdstat")
	}

	res := run("clean", "create_configuration", map[string]any{"uuid": "raid-levels", "target_raid_config": twoVolumes}, map[string]any{})
	if got, _ := json.Marshal(res["clean_result"]); !strings.Contains(string(got), `"volume_name":"data"`) {
		t.Errorf("create_configuration returned %s, want the RAID config", got)
	}
	// md0: a mirror of 1 MiB..1 GiB, data at 2048 sectors; md1: a stripe of
	// 1..2 GiB on each disk, data at 4096 sectors, 512 KiB chunks.
	want := map[string]int64{"/dev/md0": 2093056 * 512, "/dev/md1": 2 * 2093056 * 512}
	if got := mdDisks(); !maps.Equal(got, want) {
		t.Errorf("inventory md devices %v, want %v", got, want)
	}
	st := mdstat()
	for _, w := range []string{"md0 : active raid1 vdb1[1] vda1[0]", "md1 : active raid0 vdb2[1] vda2[0]"} {
		if !strings.Contains(st, w) {
			t.Errorf("mdstat lacks %q:\n%s", w, st)
		}
	}

	mirror := map[string]any{"logical_disks": []any{map[string]any{"size_gb": "MAX", "raid_level": "1", "controller": "software"}}}
	run("deploy", "apply_configuration", map[string]any{"uuid": "raid-levels"}, map[string]any{"raid_config": mirror, "delete_existing": true})
	// 1 MiB to the end of the disk (4192256 sectors), data at 4096 sectors.
	if got, want := mdDisks(), map[string]int64{"/dev/md0": 4188160 * 512}; !maps.Equal(got, want) {
		t.Errorf("after apply_configuration: md devices %v, want %v", got, want)
	}
	run("clean", "delete_configuration", map[string]any{"uuid": "raid-levels"}, map[string]any{})
	if got := mdDisks(); len(got) != 0 {
		t.Errorf("md devices left after delete_configuration: %v", got)
	}
	if st := mdstat(); strings.Contains(st, "active") {
		t.Errorf("mdstat after delete_configuration:\n%s", st)
	}
	vm.Kill()
	for _, f := range []string{diskA, diskB} {
		if out, _ := exec.Command("sfdisk", "--json", f).CombinedOutput(); !strings.Contains(string(out), "does not contain a recognized partition table") {
			t.Errorf("%s keeps a partition table: %s", f, out)
		}
		for _, p := range [][2]int64{{2048, 2095104}, {2097152, 2097152}} {
			if out, err := exec.Command("mdadm", "--examine", loopAt(t, f, p[0], p[1])).CombinedOutput(); err == nil || !strings.Contains(string(out), "No md superblock") {
				t.Errorf("%s: a superblock survived at sector %d: %s", f, p[0], out)
			}
		}
	}
}
