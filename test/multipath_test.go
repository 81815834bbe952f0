package test

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/goipa/goipa/disk"
	"github.com/goipa/goipa/initramfs"
	"github.com/goipa/goipa/internal/testenv"
	"github.com/goipa/goipa/test/realironic"
)

// The LUN both paths reach: QEMU gives each scsi-hd this WWN in its VPD
// page 0x83 (an NAA IEEE Registered designator), so multipath-tools'
// WWID is "3" and its hex digits, and IPA's serial and wwn of the map
// follow from it.
const (
	mpathWWN  = "0x5000c500a1b2c3d4"
	mpathWWID = "35000c500a1b2c3d4"
	mpathSize = 256 << 20
)

// TestMultipathInQEMU: one disk image file is one LUN reached through
// two virtio-scsi HBAs (two scsi-hd devices on the same block node,
// same serial and WWN), as a SAN disk reaches a server through two
// paths. The ramdisk's init assembles a dm-multipath map from the
// paths' WWIDs through device-mapper ioctls (this host's kernel has no
// device-mapper, QEMU's guest kernel does). Through the agent's API:
// the inventory lists the map once as /dev/dm-N with IPA's serial and
// wwn for it and neither path; a write to a path is refused; erase_devices
// erases the map (the tenant's data planted in the file is gone); a
// whole-disk image written by write_image with root device hints by
// serial and wwn goes to the map and its bytes are in the file; a hint
// naming a path finds no disk; a whole-disk GPT image's config drive
// goes into a new partition through the map's partition device; a
// partition image with a config drive, deployed twice with different
// layouts, goes into the map's kpartx-style partition devices
// (/dev/mapper/<WWID>-partN: the root filesystem and the ISO at their
// partitions' offsets in the file, get_partition_uuids answering, none
// stale); the log bundle's multipath file shows the map, both paths
// and the partition devices; erase_devices_metadata removes them with
// the table.
func TestMultipathInQEMU(t *testing.T) {
	testenv.NeedRoot(t)
	kernel, initrd := buildRamdisk(t)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	port := realironic.FreePort(t)
	lun := sparseFile(t, mpathSize)
	tenant := []int64{0, 100 << 20, mpathSize - 4096}
	plantPattern(t, lun, tenant)
	vda := sparseFile(t, 64<<20)
	path := func(hba string) []string {
		return []string{"-device", "virtio-scsi-pci,id=" + hba,
			"-device", "scsi-hd,drive=lun,bus=" + hba + ".0,share-rw=on,serial=GOIPA-MPATH-1,wwn=" + mpathWWN}
	}
	args := []string{"-blockdev", "driver=file,filename=" + lun + ",node-name=lunfile,locking=off,discard=unmap",
		"-blockdev", "driver=raw,file=lunfile,node-name=lun,discard=unmap"}
	args = append(append(args, path("hba0")...), path("hba1")...)
	vm := startGuest(t, ctx, initramfs.VMOptions{Kernel: kernel, Initrd: initrd, Cmdline: "ipa-standalone=1",
		VirtioDisks: []string{vda}, MAC: "52:54:00:6a:00:31", HostForward: port, Args: args})
	if _, err := vm.WaitFor(ctx, "API listening", 240*time.Second); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(vm.Console(), "multipath map assembled") {
		t.Fatalf("init assembled no multipath map:\n%s", grepLines(vm.Console(), "multipath", "dm"))
	}

	// 1. The inventory: the map once, its paths not at all.
	inv := command(t, port, "poll.get_hardware_info", map[string]any{})["command_result"].(map[string]any)
	var mapDev string
	for _, d := range inv["disks"].([]any) {
		d := d.(map[string]any)
		name := d["name"].(string)
		switch {
		case strings.HasPrefix(name, "/dev/sd"):
			t.Errorf("the inventory lists %s, a path of the multipath map: %v", name, d)
		case strings.HasPrefix(name, "/dev/dm-"):
			if mapDev != "" {
				t.Errorf("the inventory lists a second dm device %s beside %s", name, mapDev)
			}
			mapDev = name
			if d["serial"] != mpathWWID || d["wwn"] != "0x"+mpathWWID[1:] || d["wwn"] != mpathWWN {
				t.Errorf("map %s: serial %v, wwn %v; want IPA's serial %s (the WWID) and wwn %s", name, d["serial"], d["wwn"], mpathWWID, mpathWWN)
			}
			if d["by_path"] != nil || d["hctl"] != nil || d["model"] != nil || d["vendor"] != nil {
				t.Errorf("map %s: by_path %v, hctl %v, model %v, vendor %v; IPA reports none for a dm device", name, d["by_path"], d["hctl"], d["model"], d["vendor"])
			}
			if int64(d["size"].(float64)) != mpathSize {
				t.Errorf("map %s: size %v, want %d", name, d["size"], mpathSize)
			}
		}
	}
	if mapDev == "" {
		t.Fatalf("no multipath map in the inventory: %v", inv["disks"])
	}
	t.Logf("inventory: the LUN is %s (serial %s, wwn %s)", mapDev, mpathWWID, mpathWWN)

	// 2. A write to one path is refused (the guest owns every disk, so
	// only the multipath rule can refuse it): inject_files into /dev/sda
	// on a node whose root device is the map.
	res := postCommand(t, port, "deploy.execute_deploy_step", map[string]any{
		"node":  map[string]any{"uuid": "mpath-node", "instance_info": map[string]any{"root_device": map[string]any{"name": mapDev}}},
		"ports": []any{},
		"step": map[string]any{"interface": "deploy", "step": "inject_files", "args": map[string]any{
			"files": []any{map[string]any{"path": "/etc/x", "partition": "/dev/sda", "content": "eA=="}}}}})
	if b, _ := json.Marshal(res["command_error"]); res["command_status"] != "FAILED" || !strings.Contains(string(b), "path of multipath map "+mapDev) {
		t.Errorf("inject_files into /dev/sda, a path: %v %s; want a refusal naming the map %s", res["command_status"], b, mapDev)
	}

	// 3. erase_devices erases the map.
	erase := longCommand(t, port, "clean.execute_clean_step", map[string]any{"step": map[string]any{"step": "erase_devices", "interface": "deploy"},
		"node": map[string]any{"driver_internal_info": map[string]any{"agent_erase_devices_iterations": 0}}, "ports": []any{}})
	if erase["command_status"] != "SUCCEEDED" {
		t.Fatalf("erase_devices: %v", erase)
	}
	reports, _ := erase["command_result"].(map[string]any)["clean_result"].(map[string]any)
	if _, ok := reports[mapDev]; !ok {
		t.Errorf("erase_devices did not erase the map %s: %v", mapDev, reports)
	}
	for dev := range reports {
		if strings.HasPrefix(dev, "/dev/sd") {
			t.Errorf("erase_devices erased %s, a path", dev)
		}
	}
	t.Logf("erase report of %s: %v", mapDev, reports[mapDev])
	checkNoPattern(t, lun, tenant)

	// 4. A whole-disk image by root device hints on serial and wwn.
	image := make([]byte, 32<<20)
	r := rand.New(rand.NewPCG(22, 4))
	for i := 0; i < len(image); i += 8 {
		v := r.Uint64()
		for j := 0; j < 8; j++ {
			image[i+j] = byte(v >> (8 * j))
		}
	}
	sum := sha256.Sum256(image)
	rootImg, rootFSUUID := rootfsImage(t, "goipa-multipath-partition")
	gptImg := gptImage(t, 16<<20)
	gptSum := sha256.Sum256(gptImg)
	rootSum := sha256.Sum256(rootImg)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/gpt.raw" {
			http.ServeContent(w, r, "gpt.raw", time.Time{}, bytes.NewReader(gptImg))
			return
		}
		if r.URL.Path == "/root.img" {
			http.ServeContent(w, r, "root.img", time.Time{}, bytes.NewReader(rootImg))
			return
		}
		http.ServeContent(w, r, "lun.raw", time.Time{}, bytes.NewReader(image))
	}))
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv.Listener = l
	srv.Start()
	defer srv.Close()
	// QEMU's user network shows the host's loopback to the guest as 10.0.2.2.
	imageInfo := map[string]any{"id": "mpath-image", "urls": []string{fmt.Sprintf("http://10.0.2.2:%d/lun.raw", l.Addr().(*net.TCPAddr).Port)},
		"disk_format": "raw", "os_hash_algo": "sha256", "os_hash_value": hex.EncodeToString(sum[:])}
	writeImage := func(hints map[string]any) map[string]any {
		return longCommand(t, port, "deploy.execute_deploy_step", map[string]any{
			"node": map[string]any{"uuid": "mpath-node", "instance_info": map[string]any{"root_device": hints}}, "ports": []any{},
			"deploy_version": map[string]any{"generic_hardware_manager": "1.1"},
			"step":           map[string]any{"interface": "deploy", "step": "write_image", "args": map[string]any{"image_info": imageInfo}}})
	}
	if res := writeImage(map[string]any{"name": "/dev/sda"}); res["command_status"] != "FAILED" || !strings.Contains(fmt.Sprint(res["command_error"]), "DeviceNotFound") {
		t.Errorf("write_image with a root device hint naming a path: %v %v; want DeviceNotFound", res["command_status"], res["command_error"])
	}
	res = writeImage(map[string]any{"serial": mpathWWID, "wwn": mpathWWN})
	if res["command_status"] != "SUCCEEDED" {
		t.Fatalf("write_image by serial and wwn hints: %v", res)
	}
	if msg := fmt.Sprint(res["command_result"]); !strings.Contains(msg, "written to device "+mapDev) {
		t.Errorf("write_image wrote elsewhere than the map %s: %s", mapDev, msg)
	}
	got := readHead(t, lun, len(image))
	if !bytes.Equal(got, image) {
		i := 0
		for i < len(got) && got[i] == image[i] {
			i++
		}
		t.Errorf("the LUN's file does not hold the image: first difference at byte %d", i)
	}

	// 5. A partition image onto the map, with a config drive: the
	// partitions are the map's kpartx-style devices
	// (/dev/mapper/<WWID>-partN), the root filesystem and the config
	// drive are in the LUN's file at their partitions' offsets, and
	// get_partition_uuids reports the root filesystem's UUID.
	cdDir := filepath.Join(t.TempDir(), "cd")
	if err := os.MkdirAll(filepath.Join(cdDir, "openstack", "latest"), 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(cdDir, "openstack", "latest", "meta_data.json"), []byte(`{"uuid": "mpath-node", "name": "goipa-mpath"}`), 0o644)
	iso, err := exec.Command("genisoimage", "-quiet", "-o", "-", "-V", "config-2", "-R", "-J", cdDir).Output()
	if err != nil {
		t.Fatal(err)
	}
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(iso)
	zw.Close()
	// A whole-disk image (GPT) with a config drive: the new partition is
	// the map's partition device, and the ISO is in the file at it.
	res = longCommand(t, port, "deploy.execute_deploy_step", map[string]any{
		"node": map[string]any{"uuid": "mpath-node", "instance_info": map[string]any{"root_device": map[string]any{"wwn": mpathWWN}}}, "ports": []any{},
		"deploy_version": map[string]any{"generic_hardware_manager": "1.1"},
		"step": map[string]any{"interface": "deploy", "step": "write_image", "args": map[string]any{
			"image_info": map[string]any{"id": "mpath-gpt", "urls": []string{fmt.Sprintf("http://10.0.2.2:%d/gpt.raw", l.Addr().(*net.TCPAddr).Port)},
				"disk_format": "raw", "os_hash_algo": "sha256", "os_hash_value": hex.EncodeToString(gptSum[:])},
			"configdrive": base64.StdEncoding.EncodeToString(gz.Bytes())}}})
	if res["command_status"] != "SUCCEEDED" {
		t.Fatalf("write_image of a whole-disk image with a config drive onto the map: %v\n%s", res, grepLines(vm.Console(), "config drive", "multipath", "dm"))
	}
	if want := "partition=/dev/mapper/" + mpathWWID + "-part2"; !strings.Contains(grepLines(vm.Console(), "config drive written"), want) {
		t.Errorf("the config drive went elsewhere than the map's partition device (%s):\n%s", want, grepLines(vm.Console(), "config drive"))
	}
	checkConfigDrive(t, lun, "goipa-mpath")

	// Twice, the second time with one partition fewer: re-partitioning
	// replaces the map's partition devices (the first deploy's hold the
	// map, and its last one would be left stale).
	for _, swapMiB := range []int{16, 0} {
		partInfo := map[string]any{"id": "mpath-root", "urls": []string{fmt.Sprintf("http://10.0.2.2:%d/root.img", l.Addr().(*net.TCPAddr).Port)},
			"disk_format": "raw", "os_hash_algo": "sha256", "os_hash_value": hex.EncodeToString(rootSum[:]),
			"image_type": "partition", "root_mb": 64, "swap_mb": swapMiB, "ephemeral_mb": 0, "ephemeral_format": "ext4", "preserve_ephemeral": "False"}
		res = longCommand(t, port, "deploy.execute_deploy_step", map[string]any{
			"node": map[string]any{"uuid": "mpath-node", "instance_info": map[string]any{"root_device": map[string]any{"wwn": mpathWWN}}}, "ports": []any{},
			"deploy_version": map[string]any{"generic_hardware_manager": "1.1"},
			"step": map[string]any{"interface": "deploy", "step": "write_image", "args": map[string]any{
				"image_info": partInfo, "configdrive": base64.StdEncoding.EncodeToString(gz.Bytes())}}})
		if res["command_status"] != "SUCCEEDED" {
			t.Fatalf("write_image of a partition image onto the map (swap %d MiB): %v\n%s", swapMiB, res, grepLines(vm.Console(), "partition", "multipath", "dm"))
		}
		uuids := command(t, port, "standby.get_partition_uuids", map[string]any{})["command_result"].(map[string]any)
		t.Logf("swap %d MiB: get_partition_uuids: %v", swapMiB, uuids)
		if uuids["root uuid"] != rootFSUUID {
			t.Errorf("get_partition_uuids root uuid %v, want the root filesystem's %s", uuids["root uuid"], rootFSUUID)
		}
		parts, _ := uuids["partitions"].(map[string]any)
		table, err := disk.ReadTable(lun)
		if err != nil {
			t.Fatalf("the LUN's partition table: %v", err)
		}
		wantParts := 2
		if swapMiB > 0 {
			wantParts = 3
		}
		if len(table.Partitions) != wantParts || len(parts) != wantParts {
			t.Errorf("swap %d MiB: %d partitions in the LUN's table, %d reported (%v); want %d", swapMiB, len(table.Partitions), len(parts), parts, wantParts)
		}
		partAt := func(role string) (disk.Partition, bool) {
			path, _ := parts[role].(string)
			prefix := "/dev/mapper/" + mpathWWID + "-part"
			n, err := strconv.Atoi(strings.TrimPrefix(path, prefix))
			if !strings.HasPrefix(path, prefix) || err != nil {
				t.Errorf("the %s partition is %q, want the map's partition device %sN", role, path, prefix)
				return disk.Partition{}, false
			}
			for _, p := range table.Partitions {
				if p.Number == n {
					return p, true
				}
			}
			t.Errorf("the %s partition %s is not in the LUN's table %+v", role, path, table.Partitions)
			return disk.Partition{}, false
		}
		if p, ok := partAt("root"); ok {
			if got := readAt(t, lun, p.Start, len(rootImg)); !bytes.Equal(got, rootImg) {
				t.Errorf("swap %d MiB: the LUN's file does not hold the root filesystem at the root partition's offset %d", swapMiB, p.Start)
			}
		}
		if p, ok := partAt("configdrive"); ok {
			if got := readAt(t, lun, p.Start, len(iso)); !bytes.Equal(got, iso) {
				t.Errorf("swap %d MiB: the LUN's file does not hold the config drive at its partition's offset %d", swapMiB, p.Start)
			}
		}
	}

	// 6. The log bundle's multipath file: the map and its two paths, and
	// its partition devices.
	logs := command(t, port, "log.collect_system_logs", map[string]any{})["command_result"].(map[string]any)["system_logs"].(string)
	mp := tarMember(t, logs, "multipath")
	if !strings.Contains(mp, "("+mpathWWID+") "+strings.TrimPrefix(mapDev, "/dev/")) || !strings.Contains(mp, " sda ") || !strings.Contains(mp, " sdb ") {
		t.Errorf("the bundle's multipath file:\n%s\nwant the map %s (%s) over sda and sdb", mp, mapDev, mpathWWID)
	}
	// The map's partition devices, as the last deploy left them: kpartx's
	// names and UUIDs over the map, none stale from the first deploy.
	for n := 1; n <= 2; n++ {
		want := fmt.Sprintf("%s-part%d (uuid %q) on %s", mpathWWID, n, fmt.Sprintf("part%d-mpath-%s", n, mpathWWID), strings.TrimPrefix(mapDev, "/dev/"))
		if !strings.Contains(mp, want) {
			t.Errorf("the bundle's multipath file:\n%s\nwant the map's partition device %q", mp, want)
		}
	}
	if strings.Contains(mp, mpathWWID+"-part3") {
		t.Errorf("the first deploy's third partition device is still there:\n%s", mp)
	}

	// 7. erase_devices_metadata of the map: its partition devices hold it,
	// so they go first; the table is gone from the file, and so are they.
	wipe := longCommand(t, port, "clean.execute_clean_step", map[string]any{"step": map[string]any{"step": "erase_devices_metadata", "interface": "deploy"},
		"node": map[string]any{}, "ports": []any{}})
	if wipe["command_status"] != "SUCCEEDED" {
		t.Fatalf("erase_devices_metadata with the map's partition devices present: %v", wipe)
	}
	if table, err := disk.ReadTable(lun); err == nil && len(table.Partitions) > 0 {
		t.Errorf("erase_devices_metadata left the partition table on the LUN: %+v", table.Partitions)
	}
	logs = command(t, port, "log.collect_system_logs", map[string]any{})["command_result"].(map[string]any)["system_logs"].(string)
	if mp := tarMember(t, logs, "multipath"); strings.Contains(mp, mpathWWID+"-part") {
		t.Errorf("partition devices of the map outlive the wiped table:\n%s", mp)
	}
}

// longCommand is postCommand for commands that take minutes under TCG
// (erasing, writing an image).
func longCommand(t *testing.T, port int, name string, params any) map[string]any {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"name": name, "params": params})
	client := &http.Client{Timeout: 10 * time.Minute}
	resp, err := client.Post(fmt.Sprintf("http://127.0.0.1:%d/v1/commands/?wait=true", port), "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	defer resp.Body.Close()
	var out map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return out
}
