package test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/goipa/goipa/initramfs"
	"github.com/goipa/goipa/internal/testenv"
	"github.com/goipa/goipa/test/realironic"
)

// TestVirtualMediaBootWithoutDHCP boots goipa with boot_method=vmedia and
// a CD laid out as Ironic's boot ISO (volume label config-2, made with
// mkisofs's flags as Ironic makes it): no DHCP is run on the NICs
// network_data.json configures. The NIC the host reaches gets its static
// address and route from network_data.json, and the agent listens on the
// port a configuration file on the CD sets; two more NICs become an
// active-backup bond with a VLAN on top and a static address (this
// host's kernel has neither bonding nor 8021q, the guest's has).
func TestVirtualMediaBootWithoutDHCP(t *testing.T) {
	testenv.NeedRoot(t)
	testenv.NeedCommands(t, "genisoimage")
	kernel, initrd := buildRamdisk(t)

	tree := t.TempDir()
	for p, c := range vmediaFiles(t) {
		if err := os.MkdirAll(filepath.Join(tree, filepath.Dir(p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(tree, p), []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	iso := filepath.Join(t.TempDir(), "vmedia.iso")
	if out, err := exec.Command("genisoimage", "-quiet", "-r", "-V", "config-2", "-J", "-l", "-o", iso, tree).CombinedOutput(); err != nil {
		t.Fatalf("genisoimage: %v: %s", err, out)
	}
	checkVirtualMediaBoot(t, initramfs.VMOptions{Kernel: kernel, Initrd: initrd, Cmdline: "boot_method=vmedia ipa-standalone=1",
		Args: []string{"-device", "virtio-scsi-pci,id=vmscsi", "-drive", "file=" + iso + ",if=none,id=vmcd,media=cdrom,readonly=on", "-device", "scsi-cd,drive=vmcd,bus=vmscsi.0"}})
}

// TestVirtualMediaBootFromIronicsISO boots, through the firmware, the ISO
// Debian's Ironic 21.4 builds itself for the redfish-virtual-media boot
// interface (its create_boot_iso with its inject_files, the kernel
// parameters as its prepare_deploy_iso composes them: `nofb`, `text`
// and `--`, which the kernel hands to /init): ISOLINUX on SeaBIOS, and
// on OVMF the GRUB ESP goipa-build esp makes, which finds Ironic's
// grub.cfg (linuxefi) on the CD. The assertions are
// TestVirtualMediaBootWithoutDHCP's.
func TestVirtualMediaBootFromIronicsISO(t *testing.T) {
	testenv.NeedRoot(t)
	testenv.NeedCommands(t, "mkisofs", "mkfs.vfat", "mcopy", "/usr/bin/python3")
	if _, err := os.Stat("/usr/lib/ISOLINUX/isolinux.bin"); err != nil {
		t.Fatalf("Ironic's BIOS ISO needs Debian's isolinux (test/install-deps.sh installs it): %v", err)
	}
	kernel, initrd := buildRamdisk(t)
	esp := filepath.Join(t.TempDir(), "esp.img")
	if _, err := initramfs.BuildESP(context.Background(), initramfs.ESPOptions{Output: esp}); err != nil {
		t.Fatal(err)
	}
	// Ironic reads file:// sources from the folders it is allowed, and
	// copies them: one folder for the three.
	src := t.TempDir()
	for name, from := range map[string]string{"kernel": kernel, "initrd": initrd, "esp.img": esp} {
		if err := os.Link(from, filepath.Join(src, name)); err != nil {
			if err := copyFileForTest(from, filepath.Join(src, name)); err != nil {
				t.Fatal(err)
			}
		}
	}
	files := map[string]string{}
	for p, c := range vmediaFiles(t) {
		files[c] = p // Ironic's inject_files: content -> path on the ISO
	}
	for _, mode := range []struct {
		name string
		uefi bool
	}{{"uefi", true}, {"bios", false}} {
		t.Run(mode.name, func(t *testing.T) {
			iso := filepath.Join(t.TempDir(), "boot.iso")
			o := realironic.BootISO{Output: iso, Kernel: filepath.Join(src, "kernel"), Initrd: filepath.Join(src, "initrd"), UEFI: mode.uefi,
				// [redfish] kernel_append_params' default, the serial console, ir_pub_id, the agent's parameters.
				KernelParams: "nofb nomodeset vga=normal console=ttyS0 ir_pub_id=3c5a51ab-ironic boot_method=vmedia ipa-standalone=1",
				Files:        files, PublisherID: "3c5a51ab-ironic"}
			if mode.uefi {
				o.ESP = filepath.Join(src, "esp.img")
			}
			realironic.CreateBootISO(t, o)
			console := checkVirtualMediaBoot(t, initramfs.VMOptions{ISO: iso, UEFI: mode.uefi})
			if !strings.Contains(console, "are no command, ignored") {
				t.Errorf("the kernel handed /init no bare words: is this Ironic's command line?")
			}
		})
	}
}

func copyFileForTest(from, to string) error {
	b, err := os.ReadFile(from)
	if err != nil {
		return err
	}
	return os.WriteFile(to, b, 0o644)
}

// vmediaFiles is what the virtual CD carries besides the kernel: the CA
// and ironic-tls.conf Ironic adds with [agent] api_ca_file, an
// operator's configuration file, and the node's network_data.json.
func vmediaFiles(t *testing.T) map[string]string {
	return map[string]string{
		"etc/ironic-python-agent/ironic.crt":         selfSignedCA(t),
		"etc/ironic-python-agent.d/ironic-tls.conf":  "[DEFAULT]\ncafile = /etc/ironic-python-agent/ironic.crt\n",
		"etc/ironic-python-agent.d/zz-operator.conf": "[DEFAULT]\nlisten_port = 9998\nmd5_enabled = false\n",
		"openstack/latest/network_data.json": `{
  "links": [
    {"id": "prov", "type": "phy", "ethernet_mac_address": "52:54:00:6b:00:01", "mtu": 1400},
    {"id": "nic1", "type": "phy", "ethernet_mac_address": "52:54:00:6b:00:02"},
    {"id": "nic2", "type": "phy", "ethernet_mac_address": "52:54:00:6b:00:03"},
    {"id": "bond0", "type": "bond", "bond_links": ["nic1", "nic2"], "bond_mode": "active-backup", "bond_miimon": 100,
     "ethernet_mac_address": "52:54:00:6b:00:02"},
    {"id": "vlan42", "type": "vlan", "vlan_link": "bond0", "vlan_id": 42, "vlan_mac_address": "52:54:00:6b:00:02"}
  ],
  "networks": [
    {"id": "p", "type": "ipv4", "link": "prov", "ip_address": "10.0.2.15", "netmask": "255.255.255.0",
     "routes": [{"network": "0.0.0.0", "netmask": "0.0.0.0", "gateway": "10.0.2.2"}]},
    {"id": "v", "type": "ipv4", "link": "vlan42", "ip_address": "192.168.42.5", "netmask": "255.255.255.0"}
  ],
  "services": [{"type": "dns", "address": "10.0.2.3"}]
}`,
	}
}

// checkVirtualMediaBoot boots o (with the CD, by its kernel or by the
// firmware) on a NIC the host reaches and two more for the bond, and
// checks that network_data.json and the CD's configuration files were
// applied with no DHCP at all. It returns the console.
func checkVirtualMediaBoot(t *testing.T, o initramfs.VMOptions) string {
	t.Helper()
	port := realironic.FreePort(t)
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	o.MAC, o.HostForward, o.GuestPort = "52:54:00:6b:00:01", port, 9998
	o.Args = append(o.Args,
		"-netdev", "user,id=b1,restrict=on", "-device", "virtio-net-pci,netdev=b1,mac=52:54:00:6b:00:02,romfile=",
		"-netdev", "user,id=b2,restrict=on", "-device", "virtio-net-pci,netdev=b2,mac=52:54:00:6b:00:03,romfile=")
	vm := startGuest(t, ctx, o)
	toAPI, err := vm.WaitFor(ctx, "API listening", 5*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("QEMU start to API %.2f s", toAPI.Seconds())

	client := &http.Client{Timeout: 20 * time.Second}
	var resp *http.Response
	for end := time.Now().Add(30 * time.Second); ; time.Sleep(500 * time.Millisecond) {
		resp, err = client.Get(fmt.Sprintf("http://127.0.0.1:%d/v1/status", port))
		if err == nil || time.Now().After(end) {
			break
		}
	}
	if err != nil {
		t.Fatalf("the agent is not reachable on the static address and the port from the CD's config: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}

	console := vm.Console()
	for _, want := range []string{
		`msg="virtual media configuration" device=/dev/sr\d label=config-2`,
		`configuration file overrides a kernel parameter" parameter=ipa-listen-port value=9998`,
		`parameter=ipa-cafile value=/etc/ironic-python-agent/ironic.crt`,
		`option=md5_enabled`, // an unknown option is logged, not fatal
		`msg="network_data.json link" id=prov name=eth\d kind=phy mtu=1400`,
		`msg="network_data.json link" id=bond0 name=bond0 kind=bond mtu=0 members="\[eth\d eth\d\]"`,
		`msg="network_data.json link" id=vlan42 name=bond0.42 kind=vlan mtu=0 members=\[\] parent=bond0`,
		`msg="network_data.json address" link=eth\d address=10.0.2.15/24`,
		`msg="network_data.json address" link=bond0.42 address=192.168.42.5/24`,
		`msg="network_data.json route" link=eth\d to=0.0.0.0/0 via=10.0.2.2`,
		`bond0: \(slave eth\d\): Enslaving as a backup interface`,
	} {
		if !regexp.MustCompile(want).MatchString(console) {
			t.Errorf("console lacks %q", want)
		}
	}
	for _, unwanted := range []string{"link not set up", "address not set", "route not set", "DHCP lease", "no DHCP lease yet", "rescue shell"} {
		if strings.Contains(console, unwanted) {
			t.Errorf("console has %q", unwanted)
		}
	}
	if t.Failed() {
		t.Logf("console:\n%s", tail(console, 120))
	}
	return console
}

// selfSignedCA is a CA certificate in PEM, as Ironic's api_ca_file.
func selfSignedCA(t *testing.T) string {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "ironic-ca"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}
