package disk

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/goipa/goipa/internal/testenv"
)

// fakeISO is enough of an ISO9660 image for the label check.
func fakeISO(label string) []byte {
	iso := make([]byte, 40<<10)
	iso[32768] = 1
	copy(iso[32769:], "CD001")
	copy(iso[32768+40:], label+strings.Repeat(" ", 32-len(label)))
	copy(iso[36<<10:], "meta_data.json contents")
	return iso
}

func TestConfigDriveOnGPTImageSmallerThanDisk(t *testing.T) {
	testenv.NeedRoot(t)
	testenv.NeedCommands(t, "losetup", "sgdisk")
	dev, backing := loop(t, 200<<20)
	// The "image": a 40 MiB GPT disk with one partition, written to the
	// start of a 200 MiB disk, so its backup table sits mid-disk.
	img := backing + ".img"
	require.NoError(t, os.WriteFile(img, nil, 0o644))
	defer os.Remove(img)
	require.NoError(t, os.Truncate(img, 40<<20))
	run(t, "sgdisk", "-n", "1:2048:0", "-c", "1:root", img)
	data, err := os.ReadFile(img)
	require.NoError(t, err)
	f, err := os.OpenFile(dev, os.O_WRONLY, 0)
	require.NoError(t, err)
	_, err = f.Write(data)
	require.NoError(t, err)
	f.Close()

	iso := fakeISO("config-2")
	part, err := WriteConfigDrive(context.Background(), dev, iso)
	require.NoError(t, err)
	assert.Equal(t, dev+"p2", part)

	out := run(t, "sgdisk", "--verify", dev)
	assert.Contains(t, out, "No problems found", "the GPT is valid, backup at the end")
	out = run(t, "sgdisk", "--print", dev)
	assert.Contains(t, out, "config-2")
	info := run(t, "sgdisk", "--info=2", dev)
	assert.Contains(t, info, "0FC63DAF-8483-4772-8E79-3D69D8477DE4")
	// The ISO sits in the last 64 MiB.
	got := make([]byte, len(iso))
	rf, _ := os.Open(dev)
	defer rf.Close()
	start := int64(200<<20) - ConfigDriveSize - (1 << 20) // aligned below the backup table
	found := false
	for off := start; off <= int64(200<<20)-int64(len(iso)); off += 1 << 20 {
		rf.ReadAt(got, off)
		if bytes.Equal(got, iso) {
			found = true
		}
	}
	assert.True(t, found, "the config drive bytes are on the disk's last 64 MiB")

	// Again: the config-2 partition is found and reused, not added twice.
	part2, err := WriteConfigDrive(context.Background(), dev, fakeISO("config-2"))
	require.NoError(t, err)
	assert.Equal(t, part, part2)
	assert.Equal(t, 2, countParts(run(t, "sgdisk", "--print", dev)), "root and config-2, nothing more")
}

func countParts(sgdiskPrint string) int {
	n := 0
	for _, l := range strings.Split(sgdiskPrint, "\n") {
		f := strings.Fields(l)
		if len(f) > 5 && f[0] != "Number" && strings.TrimLeft(f[0], "0123456789") == "" {
			n++
		}
	}
	return n
}

func TestConfigDriveOnMBRImage(t *testing.T) {
	testenv.NeedRoot(t)
	testenv.NeedCommands(t, "losetup", "sfdisk")
	dev, _ := loop(t, 128<<20)
	cmd := exec.Command("sfdisk", dev)
	cmd.Stdin = strings.NewReader("label: dos\nstart=2048, size=40960, type=83\n")
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)
	part, err := WriteConfigDrive(context.Background(), dev, fakeISO("config-2"))
	require.NoError(t, err)
	assert.Equal(t, dev+"p2", part)
	dump := run(t, "sfdisk", "--dump", dev)
	assert.Contains(t, dump, "type=83")
	assert.Equal(t, 2, strings.Count(dump, "type=83"))
}

func TestConfigDriveErrors(t *testing.T) {
	testenv.NeedRoot(t)
	testenv.NeedCommands(t, "losetup")
	dev, _ := loop(t, 32<<20)
	_, err := WriteConfigDrive(context.Background(), dev, fakeISO("config-2"))
	assert.ErrorContains(t, err, "no partition table")
	_, err = WriteConfigDrive(context.Background(), dev, make([]byte, ConfigDriveSize+1))
	assert.ErrorContains(t, err, "64 MiB")
}
