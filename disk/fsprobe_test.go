package disk

import (
	"bytes"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestProbeFilesystemMatchesBlkid makes real filesystems in files and
// compares what ProbeFilesystem reads with what blkid says.
func TestProbeFilesystemMatchesBlkid(t *testing.T) {
	for _, tool := range []string{"blkid", "mkfs.ext4", "mkfs.vfat", "mkswap"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is needed (test/install-deps.sh installs it): %v", tool, err)
		}
	}
	dir := t.TempDir()
	for _, tc := range []struct {
		typ  string
		mkfs []string
	}{
		{"ext4", []string{"mkfs.ext4", "-q", "-L", "root-fs"}},
		{"vfat", []string{"mkfs.vfat", "-F", "32", "-n", "EFI-PART"}},
		{"vfat", []string{"mkfs.vfat", "-F", "16", "-n", "SMALL"}},
		{"swap", []string{"mkswap", "-L", "swap1"}},
	} {
		t.Run(strings.Join(tc.mkfs, " "), func(t *testing.T) {
			img := filepath.Join(dir, "fs.img")
			require.NoError(t, os.WriteFile(img, nil, 0o644))
			require.NoError(t, os.Truncate(img, 64<<20))
			out, err := exec.Command(tc.mkfs[0], append(tc.mkfs[1:], img)...).CombinedOutput()
			require.NoError(t, err, "%s", out)
			uuid, _ := exec.Command("blkid", "-o", "value", "-s", "UUID", img).Output()
			label, _ := exec.Command("blkid", "-o", "value", "-s", "LABEL", img).Output()
			f, err := os.Open(img)
			require.NoError(t, err)
			defer f.Close()
			fs, err := ProbeFilesystem(f, 0)
			require.NoError(t, err)
			assert.Equal(t, tc.typ, fs.Type)
			assert.Equal(t, strings.TrimSpace(string(uuid)), fs.UUID)
			assert.Equal(t, strings.TrimSpace(string(label)), fs.Label)
		})
	}
	fs, err := ProbeFilesystem(bytes.NewReader(make([]byte, 8192)), 0)
	require.NoError(t, err)
	assert.Equal(t, Filesystem{}, fs, "zeros are no filesystem")
}

func FuzzProbeFilesystem(f *testing.F) {
	f.Add(make([]byte, 2048))
	f.Fuzz(func(t *testing.T, b []byte) {
		_ = probeBytes(b)
	})
}

// TestReadFATEveryFlavour reads files back from ESP-like filesystems
// that mkfs.vfat and mtools made, in each FAT width.
func TestReadFATEveryFlavour(t *testing.T) {
	for _, tool := range []string{"mkfs.vfat", "mmd", "mcopy"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is needed (test/install-deps.sh installs it): %v", tool, err)
		}
	}
	for _, bits := range []string{"12", "16", "32"} {
		t.Run("FAT"+bits, func(t *testing.T) {
			dir := t.TempDir()
			img := filepath.Join(dir, "esp.img")
			const off = 1 << 20 // the filesystem sits in a partition, not at byte 0
			require.NoError(t, os.WriteFile(img, nil, 0o644))
			require.NoError(t, os.Truncate(img, off+48<<20))
			part := filepath.Join(dir, "part.img")
			require.NoError(t, os.WriteFile(part, nil, 0o644))
			require.NoError(t, os.Truncate(part, 48<<20))
			out, err := exec.Command("mkfs.vfat", "-F", bits, part).CombinedOutput()
			require.NoError(t, err, "%s", out)
			loader := filepath.Join(dir, "shimx64.efi")
			require.NoError(t, os.WriteFile(loader, []byte("MZ loader"), 0o644))
			for _, c := range [][]string{{"mmd", "-i", part, "::EFI", "::EFI/debian"}, {"mcopy", "-i", part, loader, "::EFI/debian/shimx64.efi"}} {
				out, err := exec.Command(c[0], c[1:]...).CombinedOutput()
				require.NoError(t, err, "%v: %s", c, out)
			}
			body, err := os.ReadFile(part)
			require.NoError(t, err)
			f, err := os.OpenFile(img, os.O_RDWR, 0)
			require.NoError(t, err)
			defer f.Close()
			_, err = f.WriteAt(body, off)
			require.NoError(t, err)
			fsys, err := ReadFAT(f, Partition{Number: 1, Start: off, Size: 48 << 20}, 512)
			require.NoError(t, err)
			got, err := fs.ReadFile(fsys, "EFI/debian/shimx64.efi")
			require.NoError(t, err)
			assert.Equal(t, "MZ loader", string(got))
		})
	}
	f, err := os.Open("/dev/zero")
	require.NoError(t, err)
	defer f.Close()
	_, err = ReadFAT(f, Partition{Number: 2, Start: 0, Size: 1 << 20}, 512)
	assert.ErrorContains(t, err, "partition 2 holds no FAT filesystem")
}
