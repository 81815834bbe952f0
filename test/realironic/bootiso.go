package realironic

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// BootISO is what Ironic's prepare_deploy_iso hands its ISO builder.
type BootISO struct {
	Output         string
	Kernel, Initrd string // local files
	// ESP is the bootloader image for UEFI (goipa-build esp); UEFI
	// builds Ironic's grub/linuxefi ISO, otherwise ISOLINUX for BIOS.
	ESP  string
	UEFI bool
	// KernelParams is the command line as Ironic composes it
	// ([redfish] kernel_append_params, ir_pub_id, then the agent's).
	KernelParams string
	// Files are put on the ISO: content -> path on the ISO (Ironic's
	// inject_files: network_data.json, the CA and ironic-tls.conf).
	Files map[string]string
	// PublisherID is the ISO's publisher, as Ironic's ir_pub_id.
	PublisherID string
}

// createBootISO is Ironic's own ISO builder run with the settings
// WithVirtualMedia gives the conductor.
const createBootISO = `
import json, sys
from ironic.common import context, images
from ironic.conf import CONF
args = json.load(open(sys.argv[2]))
CONF(['--config-file', sys.argv[1]], project='ironic')
files = {content.encode('utf-8'): dest for content, dest in args['files'].items()}
images.create_boot_iso(context.get_admin_context(), args['output'],
    'file://' + args['kernel'], 'file://' + args['initrd'],
    esp_image_href=('file://' + args['esp']) if args['esp'] else None,
    kernel_params=args['params'], boot_mode='uefi' if args['uefi'] else 'bios',
    inject_files=files, publisher_id=args['publisher'])
`

// CreateBootISO builds a boot ISO with Debian's Ironic's own code
// (ironic.common.images.create_boot_iso, mkisofs, ISOLINUX or the given
// ESP), configured as WithVirtualMedia configures the conductor: the ISO
// that the redfish-virtual-media boot interface would insert.
func CreateBootISO(t testing.TB, o BootISO) {
	t.Helper()
	dir := t.TempDir()
	conf := filepath.Join(dir, "ironic.conf")
	// Ironic reads file:// sources only from the folders it is told.
	allowed := map[string]bool{}
	for _, f := range []string{o.Kernel, o.Initrd, o.ESP} {
		if f != "" {
			allowed[filepath.Dir(f)] = true
		}
	}
	dirs := make([]string, 0, len(allowed))
	for d := range allowed {
		dirs = append(dirs, d)
	}
	text := fmt.Sprintf("[DEFAULT]\ntempdir = %s\nisolinux_bin = /usr/lib/ISOLINUX/isolinux.bin\nuse_stderr = true\n\n[conductor]\nfile_url_allowed_paths = %s\n",
		dir, strings.Join(dirs, ","))
	if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	args, err := json.Marshal(map[string]any{"output": o.Output, "kernel": o.Kernel, "initrd": o.Initrd, "esp": o.ESP, "uefi": o.UEFI,
		"params": o.KernelParams, "files": o.Files, "publisher": o.PublisherID})
	if err != nil {
		t.Fatal(err)
	}
	argsPath := filepath.Join(dir, "args.json")
	if err := os.WriteFile(argsPath, args, 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if out, err := exec.CommandContext(ctx, "/usr/bin/python3", "-c", createBootISO, conf, argsPath).CombinedOutput(); err != nil {
		t.Fatalf("Ironic's create_boot_iso: %v\n%s", err, out)
	}
}
