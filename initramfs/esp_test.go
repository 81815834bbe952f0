package initramfs

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/goipa/goipa/internal/testenv"
)

// TestBuildESP builds the GRUB ESP from Debian's packages and checks what
// Ironic and the firmware need of it: a FAT file system fsck accepts,
// small enough for El Torito's 16-bit sector count, holding
// EFI/BOOT/BOOTX64.EFI, an x86-64 PE image with linuxefi and the
// configuration that finds Ironic's grub.cfg. (It boots in
// test/vmedia_test.go, from an ISO Ironic's own code built.)
func TestBuildESP(t *testing.T) {
	testenv.NeedCommands(t, "mkfs.vfat", "mcopy", "fsck.vfat", "apt-get", "dpkg-deb")
	out := filepath.Join(t.TempDir(), "esp.img")
	res, err := BuildESP(context.Background(), ESPOptions{Output: out})
	require.NoError(t, err)
	assert.Equal(t, out, res.Path)
	assert.Less(t, res.Size, int64(65535*512), "El Torito's sector count is 16 bits")
	assert.Len(t, res.SHA256, 64)

	fsck, err := exec.Command("fsck.vfat", "-n", out).CombinedOutput()
	require.NoError(t, err, "%s", fsck)

	efi := filepath.Join(t.TempDir(), "BOOTX64.EFI")
	cmd := exec.Command("mcopy", "-i", out, "::/EFI/BOOT/BOOTX64.EFI", efi)
	cmd.Env = append(os.Environ(), "MTOOLS_SKIP_CHECK=1")
	b, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", b)
	img, err := os.ReadFile(efi)
	require.NoError(t, err)
	require.Greater(t, len(img), 0x100)
	assert.Equal(t, "MZ", string(img[:2]), "a PE image")
	pe := int(img[0x3c]) | int(img[0x3d])<<8
	require.Less(t, pe+6, len(img))
	assert.Equal(t, "PE\x00\x00", string(img[pe:pe+4]))
	assert.Equal(t, []byte{0x64, 0x86}, img[pe+4:pe+6], "machine x86-64")
	for _, want := range []string{"linuxefi", "iso9660", "--hint=cd0 /EFI/BOOT/grub.cfg", "configfile ($root)/EFI/BOOT/grub.cfg"} {
		assert.True(t, bytes.Contains(img, []byte(want)), "BOOTX64.EFI holds %q", want)
	}
}

// TestBuildESPRefusesConfigPathGrubWouldSplit: the path goes into GRUB's
// script unquoted.
func TestBuildESPRefusesConfigPathGrubWouldSplit(t *testing.T) {
	_, err := BuildESP(context.Background(), ESPOptions{Output: filepath.Join(t.TempDir(), "esp.img"), GrubConfigPath: "/EFI/my boot/grub.cfg"})
	require.ErrorContains(t, err, "no blanks")
}
