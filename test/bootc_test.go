package test

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"log"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
	"unicode/utf16"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/klauspost/compress/gzip"

	"github.com/goipa/goipa/disk"
	"github.com/goipa/goipa/efi"
	"github.com/goipa/goipa/initramfs"
	"github.com/goipa/goipa/internal/testenv"
	"github.com/goipa/goipa/test/realironic"
)

// tarEntry is one entry of a test image layer.
type tarEntry struct {
	name, link string
	body       []byte
	typ        byte
	mode       int64
	uid, gid   int
}

var bootcMtime = time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC)

// gzipLayer writes the entries (and, if bigSize > 0, a file of that many
// random bytes at bigName) as a gzipped tar into dir and returns the layer
// and the big file's sha256. The layer streams from the file: the test
// never holds it in memory either.
func gzipLayer(t *testing.T, dir string, ents []tarEntry, bigName string, bigSize int64) (v1.Layer, string) {
	t.Helper()
	f, err := os.CreateTemp(dir, "layer-*.tar.gz")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zw, _ := gzip.NewWriterLevel(f, gzip.BestSpeed)
	tw := tar.NewWriter(zw)
	for _, e := range ents {
		typ := e.typ
		if typ == 0 {
			typ = tar.TypeReg
		}
		mode := e.mode
		if mode == 0 {
			mode = 0o644
			if typ == tar.TypeDir {
				mode = 0o755
			}
		}
		h := &tar.Header{Name: e.name, Linkname: e.link, Typeflag: typ, Mode: mode, Uid: e.uid, Gid: e.gid, ModTime: bootcMtime, Format: tar.FormatPAX}
		if typ == tar.TypeReg {
			h.Size = int64(len(e.body))
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(e.body); err != nil {
			t.Fatal(err)
		}
	}
	var sum string
	if bigSize > 0 {
		if err := tw.WriteHeader(&tar.Header{Name: bigName, Typeflag: tar.TypeReg, Mode: 0o644, Size: bigSize, ModTime: bootcMtime}); err != nil {
			t.Fatal(err)
		}
		h := sha256.New()
		rng := rand.NewChaCha8([32]byte{'g', 'o', 'i', 'p', 'a'})
		buf := make([]byte, 1<<20)
		for left := bigSize; left > 0; {
			n := min(int64(len(buf)), left)
			rng.Read(buf[:n])
			h.Write(buf[:n])
			if _, err := tw.Write(buf[:n]); err != nil {
				t.Fatal(err)
			}
			left -= n
		}
		sum = hex.EncodeToString(h.Sum(nil))
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	l, err := tarball.LayerFromFile(f.Name())
	if err != nil {
		t.Fatal(err)
	}
	return l, sum
}

func utf16CSV(s string) []byte {
	b := []byte{0xff, 0xfe}
	for _, u := range utf16.Encode([]rune(s)) {
		b = binary.LittleEndian.AppendUint16(b, u)
	}
	return b
}

const bootcKernel = "6.12.9-200.goipa.x86_64"

const bootcSSHKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGoipaGoipaGoipaGoipaGoipaGoipaGoipaGoipaGoipa tenant@example"

// bootcBase is the first layer: what a bootc image carries that matters
// to the install (kernel, initramfs, bootupd's EFI payload with shim's
// CSV, kargs.d, os-release) and a tree with every kind of entry.
func bootcBase() []tarEntry {
	mod := "usr/lib/modules/" + bootcKernel + "/"
	efiDir := "usr/lib/bootupd/updates/EFI/"
	return []tarEntry{
		{name: "etc/", typ: tar.TypeDir},
		{name: "etc/hosts", body: []byte("127.0.0.1 base\n")},
		{name: "etc/gone", body: []byte("removed by a whiteout\n")},
		{name: "etc/selinux/config", body: []byte("SELINUX=enforcing\n")},
		{name: "usr/", typ: tar.TypeDir},
		{name: "usr/bin/", typ: tar.TypeDir},
		{name: "usr/bin/su", body: []byte("#!setuid\n"), mode: 0o4755},
		{name: "usr/bin/newgrp", typ: tar.TypeLink, link: "usr/bin/su"},
		{name: "usr/bin/write", body: []byte("setgid\n"), mode: 0o2755, gid: 5},
		{name: "bin", typ: tar.TypeSymlink, link: "usr/bin"},
		{name: "usr/lib/os-release", body: []byte("NAME=Goipa\nPRETTY_NAME=\"Goipa bootc test\"\n")},
		{name: "usr/lib/bootc/kargs.d/10-console.toml", body: []byte("kargs = [\"console=ttyS0,115200n8\"]\n")},
		{name: mod + "vmlinuz", body: []byte("MZ fake kernel " + bootcKernel)},
		{name: mod + "initramfs.img", body: []byte("fake initramfs")},
		{name: efiDir + "BOOT/BOOTX64.EFI", body: []byte("MZ shim fallback")},
		{name: efiDir + "BOOT/fbx64.efi", body: []byte("MZ fallback")},
		{name: efiDir + "fedora/shimx64.efi", body: []byte("MZ shim")},
		{name: efiDir + "fedora/grubx64.efi", body: []byte("MZ grub")},
		{name: efiDir + "fedora/BOOTX64.CSV", body: utf16CSV("shimx64.efi,Goipa bootc,,This is the boot entry for Goipa\n")},
		{name: "opt/app/", typ: tar.TypeDir},
		{name: "opt/app/old", body: []byte("hidden by an opaque dir\n")},
		{name: "opt/app/sub/", typ: tar.TypeDir},
		{name: "opt/app/sub/old", body: []byte("also hidden\n")},
		{name: "home/", typ: tar.TypeDir},
		{name: "home/user/", typ: tar.TypeDir, mode: 0o700, uid: 1000, gid: 1000},
		{name: "home/user/.profile", body: []byte("export A=1\n"), uid: 1000, gid: 1000, mode: 0o600},
		{name: "var/tmp/", typ: tar.TypeDir, mode: 0o1777},
	}
}

// bootcTop is the last layer: a whiteout, an opaque directory with new
// content, a replaced file.
func bootcTop() []tarEntry {
	return []tarEntry{
		{name: "etc/.wh.gone"},
		{name: "etc/hosts", body: []byte("127.0.0.1 top\n")},
		{name: "opt/app/", typ: tar.TypeDir},
		{name: "opt/app/.wh..wh..opq"},
		{name: "opt/app/new", body: []byte("from the top layer\n")},
	}
}

// wantTree is the tree the deploy must leave: "path mode uid:gid [->
// target | = sha256-prefix]", as listTree renders it. The ESP mount
// point, fstab and .autorelabel are the install's own.
func wantTree(bigSum string) []string {
	mod := "usr/lib/modules/" + bootcKernel
	efiDir := "usr/lib/bootupd/updates/EFI"
	return []string{
		".autorelabel -rw-r--r-- 0:0",
		"bin Lrwxrwxrwx 0:0 -> usr/bin",
		"boot drwxr-xr-x 0:0",
		"boot/efi drwxr-xr-x 0:0",
		"etc drwxr-xr-x 0:0",
		"etc/fstab -rw-r--r-- 0:0",
		"etc/hosts -rw-r--r-- 0:0 = 127.0.0.1 top\n",
		"etc/selinux drwxr-xr-x 0:0",
		"etc/selinux/config -rw-r--r-- 0:0 = SELINUX=enforcing\n",
		"etc/tmpfiles.d drwxr-xr-x 0:0",
		"etc/tmpfiles.d/bootc-root-ssh.conf -rw-r--r-- 0:0 = # written by goipa's execute_bootc_install (bootc_authorized_keys)\nd /root/.ssh 0700 root root -\nf~ /root/.ssh/authorized_keys 0600 root root - " +
			base64.StdEncoding.EncodeToString([]byte(bootcSSHKey+"\n")) + "\n",
		"home drwxr-xr-x 0:0",
		"home/user drwx------ 1000:1000",
		"home/user/.profile -rw------- 1000:1000 = export A=1\n",
		"lost+found drwx------ 0:0",
		"opt drwxr-xr-x 0:0",
		"opt/app drwxr-xr-x 0:0",
		"opt/app/new -rw-r--r-- 0:0 = from the top layer\n",
		"usr drwxr-xr-x 0:0",
		"usr/bin drwxr-xr-x 0:0",
		"usr/bin/newgrp urwxr-xr-x 0:0 = #!setuid\n",
		"usr/bin/su urwxr-xr-x 0:0 = #!setuid\n",
		"usr/bin/write grwxr-xr-x 0:5 = setgid\n",
		"usr/lib drwxr-xr-x 0:0",
		"usr/lib/bootc drwxr-xr-x 0:0",
		"usr/lib/bootc/kargs.d drwxr-xr-x 0:0",
		"usr/lib/bootc/kargs.d/10-console.toml -rw-r--r-- 0:0 = kargs = [\"console=ttyS0,115200n8\"]\n",
		"usr/lib/bootupd drwxr-xr-x 0:0",
		"usr/lib/bootupd/updates drwxr-xr-x 0:0",
		efiDir + " drwxr-xr-x 0:0",
		efiDir + "/BOOT drwxr-xr-x 0:0",
		efiDir + "/BOOT/BOOTX64.EFI -rw-r--r-- 0:0 = MZ shim fallback",
		efiDir + "/BOOT/fbx64.efi -rw-r--r-- 0:0 = MZ fallback",
		efiDir + "/fedora drwxr-xr-x 0:0",
		efiDir + "/fedora/BOOTX64.CSV -rw-r--r-- 0:0",
		efiDir + "/fedora/grubx64.efi -rw-r--r-- 0:0 = MZ grub",
		efiDir + "/fedora/shimx64.efi -rw-r--r-- 0:0 = MZ shim",
		"usr/lib/modules drwxr-xr-x 0:0",
		mod + " drwxr-xr-x 0:0",
		mod + "/initramfs.img -rw-r--r-- 0:0 = fake initramfs",
		mod + "/vmlinuz -rw-r--r-- 0:0 = MZ fake kernel " + bootcKernel,
		"usr/lib/os-release -rw-r--r-- 0:0 = NAME=Goipa\nPRETTY_NAME=\"Goipa bootc test\"\n",
		"usr/share drwxr-xr-x 0:0",
		"usr/share/blob -rw-r--r-- 0:0 sha256 " + bigSum,
		"var drwxr-xr-x 0:0",
		"var/tmp dtrwxrwxrwx 0:0",
	}
}

// listTree renders a mounted tree as wantTree does: small files by
// content, the big one by digest, the CSV (binary) by nothing.
func listTree(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if rel == "." {
			return nil
		}
		st, err := os.Lstat(p)
		if err != nil {
			return err
		}
		s := st.Sys().(*syscall.Stat_t)
		line := fmt.Sprintf("%s %v %d:%d", rel, st.Mode(), s.Uid, s.Gid)
		switch {
		case st.Mode()&fs.ModeSymlink != 0:
			l, _ := os.Readlink(p)
			line += " -> " + l
		case st.Mode().IsRegular() && rel == "usr/share/blob":
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			h := sha256.New()
			io.Copy(h, f)
			f.Close()
			line += " sha256 " + hex.EncodeToString(h.Sum(nil))
		case st.Mode().IsRegular() && st.Size() > 0 && !strings.HasSuffix(rel, ".CSV") && rel != "etc/fstab":
			b, _ := os.ReadFile(p)
			line += " = " + string(b)
		}
		if !st.IsDir() && !st.Mode().IsRegular() && st.Mode()&fs.ModeSymlink == 0 {
			line += " (special)"
		}
		if st.Mode().IsRegular() && rel != "usr/share/blob" && !st.ModTime().Equal(bootcMtime) && rel != "etc/fstab" && rel != ".autorelabel" && rel != "etc/tmpfiles.d/bootc-root-ssh.conf" {
			line += " (mtime " + st.ModTime().UTC().String() + ")"
		}
		out = append(out, line)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(out)
	return out
}

// pushImage makes a linux/amd64 image of layers and pushes it.
func pushImage(t *testing.T, host, repo string, auth authn.Authenticator, layers ...v1.Layer) string {
	t.Helper()
	base, err := mutate.ConfigFile(empty.Image, &v1.ConfigFile{Architecture: "amd64", OS: "linux"})
	if err != nil {
		t.Fatal(err)
	}
	img, err := mutate.AppendLayers(base, layers...)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := name.ParseReference(host + "/" + repo)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img, remote.WithAuth(auth)); err != nil {
		t.Fatalf("pushing %s: %v", ref, err)
	}
	return "oci://" + ref.String()
}

// bootcStep posts deploy.execute_deploy_step for execute_bootc_install
// as Ironic master's BootcAgentDeploy does, waits for it and returns the
// command result (SUCCEEDED or FAILED).
func bootcStep(t *testing.T, port int, node map[string]any, args map[string]any) map[string]any {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"name": "deploy.execute_deploy_step", "params": map[string]any{
		"step":  map[string]any{"interface": "deploy", "step": "execute_bootc_install", "args": args},
		"node":  node,
		"ports": []any{}, "deploy_version": map[string]any{"generic_hardware_manager": "1.1"},
	}})
	client := &http.Client{Timeout: 10 * time.Minute}
	resp, err := client.Post(fmt.Sprintf("http://127.0.0.1:%d/v1/commands/?wait=true", port), "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var res map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&res); err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 {
		t.Fatalf("execute_deploy_step: HTTP %d: %v", resp.StatusCode, res)
	}
	return res
}

// agentPID is the goipa process under startAgent's unshare.
func agentPID(t *testing.T, p *agentProcess) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", p.cmd.Process.Pid, p.cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(b))
	if len(f) != 1 {
		t.Fatalf("unshare has children %q, want the agent alone", f)
	}
	pid, _ := strconv.Atoi(f[0])
	return pid
}

// statusKiB reads a VmHWM-like field of /proc/<pid>/status.
func statusKiB(t *testing.T, pid int, field string) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return n
		}
	}
	t.Fatalf("no %s in /proc/%d/status", field, pid)
	return 0
}

// blank checks that a failed install left no partition table behind
// (nothing a firmware could boot half of).
func blank(t *testing.T, dev string) {
	t.Helper()
	tbl, err := disk.ReadTable(dev)
	if err != nil {
		t.Fatal(err)
	}
	if tbl.Kind != "" || len(tbl.Partitions) != 0 {
		t.Errorf("%s holds a %s table with %d partitions after a failed install", dev, tbl.Kind, len(tbl.Partitions))
	}
}

// TestBootcInstallFromRegistry deploys a container image from an
// in-process registry (basic auth) with execute_bootc_install, shaped as
// Ironic master sends it, onto a loop device through a host `goipa
// agent`, and reads the disk back: GPT with an ESP, a root filesystem
// that e2fsck passes holding exactly the image's tree after whiteouts
// and an opaque directory, the loaders, kernel and boot configuration on
// the ESP, the config drive in the last 64 MiB, a Boot#### entry; the
// agent's peak RSS stays bounded while ~500 MB of layers pass. Bad input
// first: not oci://, a missing image, no pull secret, a device too
// small, a layer escaping the root, each a clear failure that leaves no
// partition table.
func TestBootcInstallFromRegistry(t *testing.T) {
	testenv.NeedRoot(t)
	testenv.NeedCommands(t, "unshare", "losetup", "e2fsck", "mount", "umount", "genisoimage", "go")
	dir := t.TempDir()
	bigSize := int64(480 << 20)
	if testing.Short() {
		bigSize = 32 << 20
	}
	base, _ := gzipLayer(t, dir, bootcBase(), "", 0)
	big, bigSum := gzipLayer(t, dir, []tarEntry{{name: "usr/share/", typ: tar.TypeDir}}, "usr/share/blob", bigSize)
	top, _ := gzipLayer(t, dir, bootcTop(), "", 0)
	escape, _ := gzipLayer(t, dir, []tarEntry{{name: "etc/ok", body: []byte("x")}, {name: "../../escaped", body: []byte("out")}}, "", 0)

	const user, pass = "ironic", "s3cret"
	if err := os.Mkdir(filepath.Join(dir, "blobs"), 0o755); err != nil {
		t.Fatal(err)
	}
	reg := registry.New(registry.WithBlobHandler(registry.NewDiskBlobHandler(filepath.Join(dir, "blobs"))), registry.Logger(log.New(io.Discard, "", 0)))
	bigDigest, _ := big.Digest()
	bigBlobSize, _ := big.Size()
	extra, _ := gzipLayer(t, dir, []tarEntry{{name: "usr/share/extra", body: bytes.Repeat([]byte("corrupt me "), 4096)}}, "", 0)
	extraDigest, _ := extra.Digest()
	extraSize, _ := extra.Size()
	var cuts atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); !ok || u != user || p != pass {
			w.Header().Set("WWW-Authenticate", `Basic realm="goipa"`)
			http.Error(w, `{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`, http.StatusUnauthorized)
			return
		}
		if r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/blobs/"+bigDigest.String()) {
			if rg := r.Header.Get("Range"); strings.HasSuffix(rg, "-") {
				// go-containerregistry's test registry reads closed
				// ranges only; distribution and quay take "bytes=N-".
				r.Header.Set("Range", fmt.Sprintf("%s%d", rg, bigBlobSize-1))
			} else if rg == "" && cuts.Add(1) == 1 {
				// The first download of the big layer breaks halfway.
				w = &cutWriter{ResponseWriter: w, left: bigBlobSize / 2}
			}
		}
		if r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/blobs/"+extraDigest.String()) {
			w = &flipWriter{ResponseWriter: w, at: extraSize / 2}
		}
		reg.ServeHTTP(w, r)
	}))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	auth := &authn.Basic{Username: user, Password: pass}
	good := pushImage(t, host, "goipa/bootc:test", auth, base, big, top)
	bad := pushImage(t, host, "goipa/escape:test", auth, base, escape)
	corrupt := pushImage(t, host, "goipa/corrupt:test", auth, base, extra)
	// Ironic: base64 of the docker config's auth value for the registry.
	secret := base64.StdEncoding.EncodeToString([]byte(base64.StdEncoding.EncodeToString([]byte(user + ":" + pass))))

	loop := partscanLoop(t, 2<<30)
	small := partscanLoop(t, 600<<20)
	efivars := t.TempDir()
	agent := startAgent(t, "--ipa-standalone=1", "--goipa-devices="+loop+","+small, "--goipa-efivars="+efivars, "--ipa-image-download-connection-retry-interval=1")
	waitAPI(t, agent.port)
	node := func(dev string) map[string]any {
		return map[string]any{"uuid": "bootc-node", "instance_info": map[string]any{"root_device": map[string]any{"name": dev}}}
	}

	steps := command(t, agent.port, "deploy.get_deploy_steps", map[string]any{"node": node(loop), "ports": []any{}})
	if !strings.Contains(fmt.Sprint(steps["command_result"]), "execute_bootc_install") {
		t.Errorf("deploy steps lack execute_bootc_install: %v", steps["command_result"])
	}
	svc := command(t, agent.port, "service.get_service_steps", map[string]any{"node": node(loop), "ports": []any{}})
	if !strings.Contains(fmt.Sprint(svc["command_result"]), "execute_bootc_install") {
		t.Errorf("service steps lack execute_bootc_install: %v", svc["command_result"])
	}

	for _, tc := range []struct {
		name, dev string
		args      map[string]any
		want      string
		node      map[string]any
	}{
		{"not oci", loop, map[string]any{"image_source": "http://" + host + "/disk.qcow2", "configdrive": nil, "oci_pull_secret": nil}, "is not an oci:// container image reference", nil},
		{"missing image", loop, map[string]any{"image_source": "oci://" + host + "/goipa/nothing:here", "configdrive": nil, "oci_pull_secret": secret}, "ImageDownloadError", nil},
		{"no pull secret", loop, map[string]any{"image_source": good, "configdrive": nil, "oci_pull_secret": nil}, "UNAUTHORIZED", nil},
		{"device too small", small, map[string]any{"image_source": good, "configdrive": nil, "oci_pull_secret": secret}, "is too small for", nil},
		{"layer escapes the root", loop, map[string]any{"image_source": bad, "configdrive": nil, "oci_pull_secret": secret}, `"../../escaped" escapes the root`, nil},
		{"corrupted layer", loop, map[string]any{"image_source": corrupt, "configdrive": nil, "oci_pull_secret": secret}, "layer 2 of 2", nil},
		{"tpm2 luks asked for", loop, map[string]any{"image_source": good, "configdrive": nil, "oci_pull_secret": secret}, "bootc_tpm2_luks",
			map[string]any{"instance_info": map[string]any{"root_device": map[string]any{"name": loop}, "bootc_tpm2_luks": true}}},
	} {
		n := tc.node
		if n == nil {
			n = node(tc.dev)
		}
		res := bootcStep(t, agent.port, n, tc.args)
		if res["command_status"] != "FAILED" || !strings.Contains(fmt.Sprint(res["command_error"]), tc.want) {
			t.Errorf("%s: %v %v; want FAILED with %q", tc.name, res["command_status"], res["command_error"], tc.want)
		} else {
			t.Logf("%s: %v", tc.name, res["command_error"])
		}
		blank(t, tc.dev)
	}
	if _, err := os.Stat("/escaped"); err == nil {
		t.Error("the escaping layer wrote /escaped")
	}

	// The config drive, as Ironic sends it: base64 of a gzipped ISO.
	cdDir := filepath.Join(dir, "cd", "openstack", "latest")
	if err := os.MkdirAll(cdDir, 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(cdDir, "meta_data.json"), []byte(`{"uuid": "bootc-node", "name": "goipa-bootc"}`), 0o644)
	iso, err := exec.Command("genisoimage", "-quiet", "-o", "-", "-V", "config-2", "-R", "-J", filepath.Join(dir, "cd")).Output()
	if err != nil {
		t.Fatal(err)
	}
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(iso)
	zw.Close()

	pid := agentPID(t, agent)
	before := statusKiB(t, pid, "VmHWM")
	start := time.Now()
	deployNode := node(loop)
	deployNode["instance_info"].(map[string]any)["bootc_authorized_keys"] = bootcSSHKey
	res := bootcStep(t, agent.port, deployNode, map[string]any{"image_source": good, "configdrive": base64.StdEncoding.EncodeToString(gz.Bytes()), "oci_pull_secret": secret})
	took := time.Since(start)
	if res["command_status"] != "SUCCEEDED" {
		t.Fatalf("execute_bootc_install: %v %v", res["command_status"], res["command_error"])
	}
	hwm := statusKiB(t, pid, "VmHWM")
	t.Logf("deployed %d MiB of layers in %v; agent VmHWM %d KiB before, %d KiB after", bigSize>>20, took.Round(time.Millisecond), before, hwm)
	if cuts.Load() < 1 || countLines(agent.Log(), "layer download broke; resuming", bigDigest.String()) != 1 {
		t.Errorf("the big layer's download was cut %d times; the agent logged %d resumes", cuts.Load(), countLines(agent.Log(), "layer download broke; resuming"))
	}
	result, _ := res["command_result"].(map[string]any)
	dr, _ := result["deploy_result"].(map[string]any)
	if want := fmt.Sprintf("execute_bootc_install: Container image (%s) written to device %s", good, loop); dr["result"] != want {
		t.Errorf("deploy_result %v, want result %q", result["deploy_result"], want)
	}
	if ds, _ := result["deploy_step"].(map[string]any); ds["step"] != "execute_bootc_install" {
		t.Errorf("deploy_step %v not echoed", result["deploy_step"])
	}
	// Memory must not follow the image: IPA needs about 10 GB for a
	// 600 MB bootc image.
	if hwm > 160<<10 {
		t.Errorf("agent peak RSS %d KiB for %d MiB of layers; want under 160 MiB", hwm, bigSize>>20)
	}

	// The disk: GPT, ESP first, the root, the config drive at the end.
	tbl, err := disk.ReadTable(loop)
	if err != nil {
		t.Fatal(err)
	}
	if tbl.Kind != "gpt" || len(tbl.Partitions) != 3 {
		t.Fatalf("partition table %+v; want GPT with ESP, root and config drive", tbl)
	}
	esp, root, cd := tbl.Partitions[0], tbl.Partitions[1], tbl.Partitions[2]
	if !strings.EqualFold(esp.TypeGUID, "C12A7328-F81F-11D2-BA4B-00A0C93EC93B") || esp.Size != 512<<20 {
		t.Errorf("partition 1 %+v is not a 512 MiB ESP", esp)
	}
	if size := int64(2 << 30); cd.Start < size-disk.ConfigDriveSize-(1<<20) || cd.Start+cd.Size > size {
		t.Errorf("config drive partition %+v is not in the last 64 MiB", cd)
	}
	f, err := os.Open(loop)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	head := make([]byte, len(iso))
	if _, err := f.ReadAt(head, cd.Start); err != nil || !bytes.Equal(head, iso) {
		t.Errorf("the config drive partition does not hold the ISO (%v)", err)
	}

	rootDev := disk.PartitionPath(loop, root.Number)
	if err := disk.EnsurePartitionNodes(context.Background(), loop); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("e2fsck", "-fn", rootDev).CombinedOutput(); err != nil {
		t.Errorf("e2fsck -fn %s: %v\n%s", rootDev, err, out)
	}
	fsys, err := disk.ProbeDevice(rootDev)
	if err != nil || fsys.Type != "ext4" {
		t.Fatalf("root partition: %+v, %v", fsys, err)
	}
	mnt := t.TempDir()
	if out, err := exec.Command("mount", "-o", "ro", "-t", "ext4", rootDev, mnt).CombinedOutput(); err != nil {
		t.Fatalf("mount: %v: %s", err, out)
	}
	defer exec.Command("umount", mnt).Run()
	got, want := listTree(t, mnt), wantTree(bigSum)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("root tree differs:\nonly on disk: %q\nonly expected: %q", missing(got, want), missing(want, got))
	}
	a, _ := os.Stat(filepath.Join(mnt, "usr/bin/su"))
	b2, _ := os.Stat(filepath.Join(mnt, "usr/bin/newgrp"))
	if !os.SameFile(a, b2) {
		t.Error("usr/bin/newgrp is not a hard link of usr/bin/su")
	}
	espFS, err := disk.ProbeDevice(disk.PartitionPath(loop, esp.Number))
	if err != nil {
		t.Fatal(err)
	}
	fstab, _ := os.ReadFile(filepath.Join(mnt, "etc/fstab"))
	for _, w := range []string{"UUID=" + fsys.UUID + "	/	ext4", "UUID=" + espFS.UUID + "	/boot/efi	vfat"} {
		if !strings.Contains(string(fstab), w) {
			t.Errorf("fstab lacks %q:\n%s", w, fstab)
		}
	}

	// The ESP, read in Go (this host has no vfat).
	fat, err := disk.ReadFAT(f, esp, 512)
	if err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]string{
		"EFI/fedora/shimx64.efi":                        "MZ shim",
		"EFI/fedora/grubx64.efi":                        "MZ grub",
		"EFI/BOOT/BOOTX64.EFI":                          "MZ shim fallback",
		"vmlinuz-" + bootcKernel:                        "MZ fake kernel " + bootcKernel,
		"initramfs-" + bootcKernel + ".img":             "fake initramfs",
		"EFI/fedora/grub.cfg":                           "linux /vmlinuz-" + bootcKernel + " root=UUID=" + fsys.UUID + " rw console=ttyS0,115200n8",
		"loader/entries/bootc-" + bootcKernel + ".conf": "options root=UUID=" + fsys.UUID + " rw console=ttyS0,115200n8",
	} {
		b, err := fs.ReadFile(fat, p)
		if err != nil || !strings.Contains(string(b), want) {
			t.Errorf("ESP %s: %q, %v; want it to hold %q", p, b, err, want)
		}
	}

	// The boot entry, from shim's CSV, first in BootOrder.
	vars := efi.Vars{Dir: efivars}
	ents, err := vars.BootEntries()
	if err != nil {
		t.Fatal(err)
	}
	order, _ := vars.BootOrder()
	if len(ents) != 1 || ents[0].Description != "Goipa bootc" || !strings.Contains(ents[0].Path.String(), `\EFI\fedora\shimx64.efi`) || len(order) == 0 || order[0] != ents[0].Num {
		t.Errorf("boot entries %v, order %v; want one for \\EFI\\fedora\\shimx64.efi first", ents, order)
	}
}

// cutWriter breaks the connection after left bytes of the body.
type cutWriter struct {
	http.ResponseWriter
	left int64
}

func (w *cutWriter) Write(p []byte) (int, error) {
	if int64(len(p)) <= w.left {
		w.left -= int64(len(p))
		return w.ResponseWriter.Write(p)
	}
	w.ResponseWriter.Write(p[:w.left])
	w.ResponseWriter.(http.Flusher).Flush()
	panic(http.ErrAbortHandler)
}

// flipWriter serves the body with one byte changed.
type flipWriter struct {
	http.ResponseWriter
	at, n int64
}

func (w *flipWriter) Write(p []byte) (int, error) {
	if w.at >= w.n && w.at < w.n+int64(len(p)) {
		q := append([]byte(nil), p...)
		q[w.at-w.n] ^= 0x55
		p = q
	}
	w.n += int64(len(p))
	return w.ResponseWriter.Write(p)
}

// missing lists the lines of a that b lacks.
func missing(a, b []string) []string {
	in := map[string]bool{}
	for _, l := range b {
		in[l] = true
	}
	var out []string
	for _, l := range a {
		if !in[l] {
			out = append(out, l)
		}
	}
	return out
}

// waitAPI waits (bounded) until the agent answers.
func waitAPI(t *testing.T, port int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/v1/status", port))
		if err == nil {
			resp.Body.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the agent's API did not answer within 30 s: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestBootcInstallBootsInVM deploys a bootc image from the host's
// registry inside the QEMU guest (UEFI, the ramdisk's real efivarfs and
// ext4 module) onto its virtio disk, then boots that disk with no kernel
// given: OVMF finds the ESP's loader (the image's systemd-boot), which
// reads goipa's BLS entry and starts the image's kernel and initramfs
// (here the goipa ramdisk itself, whose API answering is the proof) with
// the root UUID and the image's kargs.d on its command line.
func TestBootcInstallBootsInVM(t *testing.T) {
	testenv.NeedCommands(t, "qemu-system-x86_64", "go")
	ctx := context.Background()
	kernel, initrd := buildRamdisk(t)
	pkg, err := initramfs.FetchDebianPackage(ctx, filepath.Join(initramfs.CacheDir(), "packages"), "systemd-boot-efi")
	if err != nil {
		t.Fatal(err)
	}
	read := func(p string) []byte {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	const kver = "6.1.0-goipa-bootc"
	dir := t.TempDir()
	layer, _ := gzipLayer(t, dir, []tarEntry{
		{name: "usr/lib/modules/" + kver + "/vmlinuz", body: read(kernel)},
		{name: "usr/lib/modules/" + kver + "/initramfs.img", body: read(initrd)},
		{name: "usr/lib/systemd/boot/efi/systemd-bootx64.efi", body: read(filepath.Join(pkg, "usr/lib/systemd/boot/efi/systemd-bootx64.efi"))},
		{name: "usr/lib/bootc/kargs.d/10-goipa.toml", body: []byte(`kargs = ["console=ttyS0", "panic=-1", "ipa-standalone=1", "goipa.bootc=deployed"]` + "\n")},
		{name: "usr/lib/os-release", body: []byte("PRETTY_NAME=\"goipa bootc VM test\"\n")},
	}, "", 0)
	if err := os.Mkdir(filepath.Join(dir, "blobs"), 0o755); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(registry.New(registry.WithBlobHandler(registry.NewDiskBlobHandler(filepath.Join(dir, "blobs"))), registry.Logger(log.New(io.Discard, "", 0))))
	defer srv.Close()
	port := strings.TrimPrefix(srv.URL, "http://127.0.0.1:")
	pushImage(t, "127.0.0.1:"+port, "goipa/vm:1", authn.Anonymous, layer)
	// QEMU's user network shows the host's loopback to the guest as 10.0.2.2.
	source := "oci://10.0.2.2:" + port + "/goipa/vm:1"

	diskFile := sparseFile(t, 5<<30) // the default install-disk rule wants 4 GiB
	api := realironic.FreePort(t)
	vm := startGuest(t, ctx, initramfs.VMOptions{Kernel: kernel, Initrd: initrd, Cmdline: "ipa-standalone=1", UEFI: true, VirtioDisks: []string{diskFile}, HostForward: api, GuestPort: 9999})
	toAPI1, err := vm.WaitFor(ctx, "API listening", 5*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	res := bootcStep(t, api, map[string]any{"uuid": "bootc-vm"}, map[string]any{"image_source": source, "configdrive": nil, "oci_pull_secret": nil})
	if res["command_status"] != "SUCCEEDED" {
		t.Fatalf("execute_bootc_install in the guest: %v %v", res["command_status"], res["command_error"])
	}
	t.Logf("ramdisk to API %.1f s, bootc install in the guest %.1f s (TCG)", toAPI1.Seconds(), time.Since(start).Seconds())
	for _, line := range strings.Split(vm.Console(), "\n") {
		if strings.Contains(line, "bootc") || strings.Contains(line, "UEFI boot entry") {
			t.Log(strings.TrimSpace(line))
		}
	}
	// The boot entry went to the guest's real efivarfs.
	if !strings.Contains(vm.Console(), "UEFI boot entry added") {
		t.Errorf("the guest agent logged no UEFI boot entry:\n%s", tail(vm.Console(), 30))
	}
	vm.Kill()

	api2 := realironic.FreePort(t)
	vm2 := startGuest(t, ctx, initramfs.VMOptions{UEFI: true, VirtioDisks: []string{diskFile}, HostForward: api2, GuestPort: 9999})
	toAPI, err := vm2.WaitFor(ctx, "API listening", 5*time.Minute)
	if err != nil {
		t.Fatalf("the deployed disk did not boot to the agent: %v", err)
	}
	console := vm2.Console()
	if !strings.Contains(console, "goipa.bootc=deployed") || !strings.Contains(console, "root=UUID=") {
		t.Errorf("the deployed boot's kernel command line lacks the BLS entry's options:\n%s", tail(console, 40))
	}
	waitAPI(t, api2)
	t.Logf("the deployed disk booted through OVMF and systemd-boot to the API in %.1f s", toAPI.Seconds())
}
