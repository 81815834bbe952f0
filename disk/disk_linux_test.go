package disk

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/goipa/goipa/internal/testenv"
)

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	require.NoError(t, err, "%s %v: %s", name, args, out)
	return string(out)
}

// loop makes a loop device (with partition scanning) over a file in
// /dev/shm and detaches it when the test ends.
func loop(t *testing.T, size int64) (dev, backing string) {
	t.Helper()
	f, err := os.CreateTemp("/dev/shm", "goipa-disk-test-")
	require.NoError(t, err)
	backing = f.Name()
	f.Close()
	t.Cleanup(func() { os.Remove(backing) })
	require.NoError(t, os.Truncate(backing, size))
	dev = strings.TrimSpace(run(t, "losetup", "--find", "--show", "--partscan", backing))
	t.Cleanup(func() { exec.Command("losetup", "--detach", dev).Run() })
	return dev, backing
}

func waitFor(t *testing.T, path string) {
	t.Helper()
	for i := 0; i < 100; i++ {
		if _, err := os.Stat(path); err == nil {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s did not appear", path)
}

func TestParseTableMadeBySgdiskAndSfdisk(t *testing.T) {
	testenv.NeedCommands(t, "sgdisk", "sfdisk")
	img := filepath.Join(t.TempDir(), "gpt.img")
	require.NoError(t, os.WriteFile(img, nil, 0o644))
	require.NoError(t, os.Truncate(img, 64<<20))
	run(t, "sgdisk", "-n", "1:2048:+8M", "-t", "1:ef00", "-n", "2:0:0", "-t", "2:8300", img)
	head := make([]byte, 34*512)
	f, err := os.Open(img)
	require.NoError(t, err)
	_, err = f.ReadAt(head, 0)
	f.Close()
	require.NoError(t, err)
	tab, err := ParseTable(head, 512)
	require.NoError(t, err)
	assert.Equal(t, "gpt", tab.Kind)
	require.Len(t, tab.Partitions, 2)
	assert.Equal(t, int64(2048*512), tab.Partitions[0].Start)
	assert.Equal(t, int64(8<<20), tab.Partitions[0].Size)
	assert.Equal(t, "C12A7328-F81F-11D2-BA4B-00A0C93EC93B", tab.Partitions[0].TypeGUID, "the ESP type GUID")
	assert.Equal(t, "0FC63DAF-8483-4772-8E79-3D69D8477DE4", tab.Partitions[1].TypeGUID)

	mbr := filepath.Join(t.TempDir(), "mbr.img")
	require.NoError(t, os.WriteFile(mbr, nil, 0o644))
	require.NoError(t, os.Truncate(mbr, 64<<20))
	cmd := exec.Command("sfdisk", mbr)
	cmd.Stdin = strings.NewReader("label: dos\nstart=2048, size=20480, type=83\nstart=22528, type=82\n")
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)
	f, _ = os.Open(mbr)
	f.ReadAt(head[:512], 0)
	f.Close()
	tab, err = ParseTable(head[:512], 512)
	require.NoError(t, err)
	assert.Equal(t, "mbr", tab.Kind)
	require.Len(t, tab.Partitions, 2)
	assert.Equal(t, byte(0x82), tab.Partitions[1].MBRType)
	assert.Equal(t, int64(22528*512), tab.Partitions[1].Start)
}

func TestMetadataExtentsClipAndCoverBothEnds(t *testing.T) {
	size := int64(100 << 20)
	ex := MetadataExtents(size, Table{Kind: "gpt", Partitions: []Partition{
		{Start: 1 << 20, Size: 10 << 20},
		{Start: 90 << 20, Size: 50 << 20}, // runs past the end: clipped
		{Start: 200 << 20, Size: 1 << 20}, // wholly past the end: ignored
		{Start: 50 << 20, Size: 4096},     // smaller than the span
	}})
	assert.Contains(t, ex, Extent{0, 1 << 20})
	assert.Contains(t, ex, Extent{99 << 20, 1 << 20})
	assert.Contains(t, ex, Extent{10 << 20, 1 << 20})
	assert.Contains(t, ex, Extent{50 << 20, 4096})
	for _, e := range ex {
		assert.LessOrEqual(t, e.Start+e.Length, size)
	}
}

func FuzzParseTable(f *testing.F) {
	seed := make([]byte, 34*512)
	seed[510], seed[511] = 0x55, 0xaa
	seed[446+4] = 0xee
	copy(seed[512:], gptSignature)
	f.Add(seed, 512)
	f.Add(make([]byte, 512), 4096)
	f.Fuzz(func(t *testing.T, head []byte, sector int) {
		tab, err := ParseTable(head, sector%8192)
		if err != nil {
			return
		}
		for _, p := range tab.Partitions {
			if p.Size < 0 {
				t.Fatalf("negative partition size: %+v", p)
			}
		}
	})
}

// TestWipeMetadataOnLoopDevices plants what a previous tenant leaves
// (GPT, ext4 and vfat in partitions, an LVM physical volume) and checks
// that blkid, wipefs and sgdisk find nothing afterwards. (md superblocks
// need the kernel's md driver to plant, which this CI host's kernel
// lacks; they sit at 4 KiB or in the last 64 KiB, inside the wiped MiB.)
func TestWipeMetadataOnLoopDevices(t *testing.T) {
	testenv.NeedRoot(t)
	testenv.NeedCommands(t, "losetup", "partx", "sgdisk", "mkfs.ext4", "mkfs.vfat", "wipefs", "blkid", "pvcreate")
	ctx := context.Background()
	dev, _ := loop(t, 96<<20)
	run(t, "sgdisk", "-n", "1:2048:+16M", "-t", "1:ef00", "-n", "2:0:+40M", "-n", "3:0:0", dev)
	run(t, "partx", "--add", dev)
	waitFor(t, dev+"p3")
	run(t, "mkfs.vfat", dev+"p1")
	run(t, "mkfs.ext4", "-q", "-F", dev+"p2")
	run(t, "pvcreate", "-ff", "-y", "--devicesfile", "", dev+"p3")
	require.NotEmpty(t, strings.TrimSpace(run(t, "wipefs", "--no-act", dev+"p2")), "ext4 planted")
	require.Contains(t, run(t, "blkid", "-p", dev+"p3"), "LVM2_member", "LVM planted")

	start := time.Now()
	require.NoError(t, WipeMetadata(ctx, dev))
	t.Logf("metadata wipe took %s", time.Since(start))

	out, _ := exec.Command("wipefs", "--no-act", dev).CombinedOutput()
	assert.Empty(t, strings.TrimSpace(string(out)), "wipefs still finds signatures on the device")
	_, err := os.Stat("/sys/class/block/" + filepath.Base(dev) + "p1")
	assert.True(t, os.IsNotExist(err), "the kernel still shows partitions after the re-read")
	out, _ = exec.Command("sgdisk", "--print", dev).CombinedOutput()
	assert.NotContains(t, string(out), "EF00", "sgdisk still finds the GPT")
	// The old partitions' areas hold no signature either.
	for _, off := range []int64{2048 * 512, (2048 + 16*2048) * 512, (2048 + 56*2048) * 512} {
		cmd := exec.Command("blkid", "--probe", "--offset", fmt.Sprint(off), dev)
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		assert.True(t, errors.As(err, &ee) && ee.ExitCode() == 2, "blkid at offset %d: %s (%v)", off, out, err)
	}
}

func TestWipeRefusesMountedDevice(t *testing.T) {
	testenv.NeedRoot(t)
	testenv.NeedCommands(t, "losetup", "mkfs.ext4", "mount", "umount")
	dev, _ := loop(t, 32<<20)
	run(t, "mkfs.ext4", "-q", "-F", dev)
	mnt := t.TempDir()
	run(t, "mount", dev, mnt)
	t.Cleanup(func() { exec.Command("umount", mnt).Run() })
	err := WipeMetadata(context.Background(), dev)
	var iu *InUseError
	require.True(t, errors.As(err, &iu), "got %v", err)
	assert.Contains(t, err.Error(), "mounted on "+mnt)
	// and nothing was written
	out := run(t, "blkid", "-p", dev)
	assert.Contains(t, out, "ext4")
}
