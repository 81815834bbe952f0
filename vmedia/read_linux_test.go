package vmedia

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/goipa/goipa/internal/testenv"
)

const (
	testCA      = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
	testTLSConf = "[DEFAULT]\ncafile = /etc/ironic-python-agent/ironic.crt\n"
	testNetData = `{"links": [], "networks": [], "services": []}`
)

// makeIronicISO lays out what Ironic's prepare_deploy_iso injects and
// runs mkisofs (genisoimage) with the flags Ironic's images.py uses:
// -r -l always, -J for the BIOS ISO.
func makeIronicISO(t *testing.T, label string, joliet bool) string {
	testenv.NeedCommands(t, "genisoimage")
	tree := t.TempDir()
	files := map[string]string{
		"etc/ironic-python-agent/ironic.crt":         testCA,
		"etc/ironic-python-agent.d/ironic-tls.conf":  testTLSConf,
		"openstack/latest/network_data.json":         testNetData,
		"vmlinuz":                                    "kernel",
		"etc/ironic-python-agent.d/sub/ignored.conf": "[DEFAULT]\n",
	}
	for p, c := range files {
		require.NoError(t, os.MkdirAll(filepath.Join(tree, filepath.Dir(p)), 0o755))
		require.NoError(t, os.WriteFile(filepath.Join(tree, p), []byte(c), 0o644))
	}
	iso := filepath.Join(t.TempDir(), "boot.iso")
	args := []string{"-quiet", "-r", "-V", label, "-l", "-o", iso}
	if joliet {
		args = append(args, "-J")
	}
	out, err := exec.Command("genisoimage", append(args, tree)...).CombinedOutput()
	require.NoError(t, err, "%s", out)
	return iso
}

// loopDevice attaches file read-only to a free loop device, detached at
// cleanup whatever the test's outcome.
func loopDevice(t *testing.T, file string) string {
	testenv.NeedRoot(t)
	testenv.NeedCommands(t, "losetup")
	out, err := exec.Command("losetup", "--find", "--show", "--read-only", file).CombinedOutput()
	require.NoError(t, err, "%s", out)
	dev := strings.TrimSpace(string(out))
	t.Cleanup(func() {
		if out, err := exec.Command("losetup", "--detach", dev).CombinedOutput(); err != nil {
			t.Errorf("detaching %s: %v: %s", dev, err, out)
		}
	})
	return dev
}

func TestCopyConfigFromLoopISO(t *testing.T) {
	for _, joliet := range []bool{true, false} {
		name := "uefi-flags"
		if joliet {
			name = "bios-flags"
		}
		t.Run(name, func(t *testing.T) {
			dev := loopDevice(t, makeIronicISO(t, "config-2", joliet))
			f, err := os.Open(dev)
			require.NoError(t, err)
			label, fstype := ReadLabel(f)
			f.Close()
			require.Equal(t, "config-2", label)
			require.Equal(t, FSISO9660, fstype)

			etc := t.TempDir()
			res, err := CopyConfig(context.Background(), Device{Name: filepath.Base(dev), Path: dev, Label: label, FSType: fstype}, etc, slogf(t))
			require.NoError(t, err)
			assert.ElementsMatch(t, []string{
				filepath.Join(etc, "ironic-python-agent", "ironic.crt"),
				filepath.Join(etc, "ironic-python-agent.d", "ironic-tls.conf"),
			}, res.Copied)
			b, err := os.ReadFile(filepath.Join(etc, "ironic-python-agent", "ironic.crt"))
			require.NoError(t, err)
			assert.Equal(t, testCA, string(b))
			b, err = os.ReadFile(filepath.Join(etc, "ironic-python-agent.d", "ironic-tls.conf"))
			require.NoError(t, err)
			assert.Equal(t, testTLSConf, string(b))
			assert.JSONEq(t, testNetData, string(res.NetworkData))
			assert.NoDirExists(t, filepath.Join(etc, "ironic-python-agent.d", "sub"), "directories are not copied, as in IPA")
		})
	}
}

// TestLoad runs the whole start-up step on a recorded sysfs tree whose
// SATA CD holds a real Ironic-style ISO (the image file stands in for
// /dev/sr0): the CA and TLS file land in /etc, the TLS file's cafile
// becomes ipa-cafile, and network_data.json comes back.
func TestLoad(t *testing.T) {
	iso, err := os.ReadFile(makeIronicISO(t, "config-2", true))
	require.NoError(t, err)
	f := buildTree(t, []fakeDev{instanceDisk, instanceCfgPart, sataCD("x"), usbDisk("sdb", 2880, fatImage("ir-vfd-dev", false))})
	require.NoError(t, os.WriteFile(filepath.Join(f.DevRoot, "sr0"), iso, 0o644))
	etc := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(etc, "ironic-python-agent.conf"), []byte("[DEFAULT]\ncafile=/old\nlisten_port=9998\nunknown_thing=1\n"), 0o644))

	res := Load(context.Background(), map[string]string{"boot_method": "vmedia"}, Options{SysRoot: f.SysRoot, DevRoot: f.DevRoot, EtcRoot: etc})
	assert.Equal(t, filepath.Join(f.DevRoot, "sr0"), res.Device)
	assert.JSONEq(t, testNetData, string(res.NetworkData))
	assert.FileExists(t, filepath.Join(etc, "ironic-python-agent", "ironic.crt"))
	assert.Equal(t, []string{"--ipa-cafile=/etc/ironic-python-agent/ironic.crt", "--ipa-listen-port=9998"}, Flags(res.Overrides),
		"the config directory's file overrides the default file")
	// The floppy stub has no filesystem behind its boot sector: it is
	// found, fails to mount on this host, and nothing else suffers.
	assert.Nil(t, res.Params)

	// Not booted from virtual media: nothing is copied.
	etc2 := t.TempDir()
	res = Load(context.Background(), map[string]string{}, Options{SysRoot: f.SysRoot, DevRoot: f.DevRoot, EtcRoot: etc2})
	assert.Empty(t, res.Device)
	assert.Nil(t, res.NetworkData)
	assert.NoFileExists(t, filepath.Join(etc2, "ironic-python-agent", "ironic.crt"))
}
