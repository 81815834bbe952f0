package disk

import (
	"bytes"
	"context"
	"crypto/aes"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/goipa/goipa/internal/testenv"
)

func TestEraseOptionsFrom(t *testing.T) {
	o, err := EraseOptionsFrom(nil)
	require.NoError(t, err)
	assert.Equal(t, EraseOptions{EnableNVMeSecureErase: true, EnableATASecureErase: true, Iterations: 1, Zeroize: true}, o, "IPA's defaults")

	o, err = EraseOptionsFrom(map[string]any{
		"agent_enable_nvme_secure_erase": false, "agent_continue_if_ata_erase_failed": true,
		"agent_erase_devices_iterations": 3.0, "agent_erase_devices_zeroize": "false", "disk_erasure_concurrency": 4.0,
		"agent_erase_skip_read_only": true,
	})
	require.NoError(t, err)
	assert.False(t, o.EnableNVMeSecureErase)
	assert.True(t, o.ContinueIfSecureEraseFailed, "the ATA flag stands in when the general one is absent")
	assert.Equal(t, 3, o.Iterations)
	assert.False(t, o.Zeroize)
	assert.Equal(t, 4, o.Concurrency)
	assert.True(t, o.SkipReadOnly)

	o, _ = EraseOptionsFrom(map[string]any{"agent_continue_if_secure_erase_failed": false, "agent_continue_if_ata_erase_failed": true})
	assert.False(t, o.ContinueIfSecureEraseFailed, "the general flag wins when present")

	_, err = EraseOptionsFrom(map[string]any{"agent_erase_devices_iterations": "two", "agent_erase_devices_zeroize": 5.0})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "agent_erase_devices_iterations")
	assert.Contains(t, err.Error(), "agent_erase_devices_zeroize")
}

func TestParseIdentifyControllerAndFormatCommand(t *testing.T) {
	id := make([]byte, 4096)
	c, err := ParseIdentifyController(id)
	require.NoError(t, err)
	assert.Equal(t, NVMeController{}, c)
	binary.LittleEndian.PutUint16(id[256:], 0x0017) // OACS: security, format, firmware, ns mgmt
	id[524] = 0x04                                  // FNA: crypto erase supported
	c, err = ParseIdentifyController(id)
	require.NoError(t, err)
	assert.Equal(t, NVMeController{FormatSupported: true, CryptoErase: true}, c)
	_, err = ParseIdentifyController(id[:100])
	assert.Error(t, err)
	// Format NVM dword 10: LBAF in bits 3:0, SES in bits 11:9.
	assert.Equal(t, uint32(0x400), FormatCdw10(0, 2))
	assert.Equal(t, uint32(0x201), FormatCdw10(1, 1))
}

func FuzzParseIdentifyController(f *testing.F) {
	f.Add(make([]byte, 4096))
	f.Add([]byte{1, 2, 3})
	f.Fuzz(func(t *testing.T, b []byte) {
		ParseIdentifyController(b)
	})
}

func TestKeystreamIsSeekable(t *testing.T) {
	block, _ := aes.NewCipher(make([]byte, 16))
	nonce := [16]byte{0: 1, 15: 0xff}
	whole := make([]byte, 1<<20)
	keystream(block, nonce, 0, whole)
	part := make([]byte, 4096)
	keystream(block, nonce, 512<<10, part)
	assert.Equal(t, whole[512<<10:512<<10+4096], part, "any chunk regenerates the same stream")
	assert.False(t, bytes.Equal(part, make([]byte, 4096)))
}

// TestOverwriteLeavesNoPlantedByte plants a pattern over a loop device,
// overwrites it (a random pass and a zero pass), and reads every byte back.
func TestOverwriteLeavesNoPlantedByte(t *testing.T) {
	testenv.NeedRoot(t)
	testenv.NeedCommands(t, "losetup")
	dev, backing := loop(t, 40<<20)
	pattern := bytes.Repeat([]byte("TENANT-SECRET-"), (40<<20)/14+1)[:40<<20]
	require.NoError(t, os.WriteFile(backing, pattern, 0o644))
	var last int64
	require.NoError(t, Overwrite(context.Background(), dev, 1, true, func(done, total int64) {
		assert.GreaterOrEqual(t, done, last)
		last = done
		assert.Equal(t, int64(80<<20), total)
	}))
	assert.Equal(t, int64(80<<20), last)
	got, err := os.ReadFile(backing)
	require.NoError(t, err)
	assert.False(t, bytes.Contains(got, []byte("TENANT")), "a planted byte survived")
	assert.Equal(t, make([]byte, 40<<20), got, "the zero pass leaves zeros")

	// Random only: no pattern, not zero.
	require.NoError(t, os.WriteFile(backing, pattern, 0o644))
	require.NoError(t, Overwrite(context.Background(), dev, 1, false, nil))
	got, _ = os.ReadFile(backing)
	assert.False(t, bytes.Contains(got, []byte("TENANT")))
	assert.False(t, bytes.Equal(got[:4096], make([]byte, 4096)))
}

func TestEraseDevicesInParallelWithReport(t *testing.T) {
	testenv.NeedRoot(t)
	testenv.NeedCommands(t, "losetup", "mkfs.ext4", "mount", "umount")
	var targets []Target
	for i := 0; i < 3; i++ {
		dev, backing := loop(t, 24<<20)
		require.NoError(t, os.WriteFile(backing, bytes.Repeat([]byte{0xab}, 24<<20), 0o644))
		targets = append(targets, Target{Path: dev, Serial: "S" + dev, Size: 24 << 20})
	}
	// One device is mounted: it fails, the others still finish.
	busy, _ := loop(t, 24<<20)
	run(t, "mkfs.ext4", "-q", "-F", busy)
	mnt := t.TempDir()
	run(t, "mount", busy, mnt)
	t.Cleanup(func() { exec.Command("umount", mnt).Run() })
	targets = append(targets, Target{Path: busy, Size: 24 << 20}, Target{Path: "/dev/ro-fake", ReadOnly: true})

	opts, _ := EraseOptionsFrom(map[string]any{"agent_erase_skip_read_only": true})
	opts.NoDiscard = true // loop devices discard; this test is about the overwrite
	reports, err := EraseDevices(context.Background(), targets, opts, nil, nil)
	require.Error(t, err)
	assert.Contains(t, err.Error(), busy)
	assert.NotContains(t, err.Error(), targets[0].Path+":")
	require.Len(t, reports, 5)
	for _, r := range reports[:3] {
		assert.Empty(t, r.Error)
		assert.Equal(t, []string{"overwrite-random", "overwrite-zero"}, r.Methods)
		assert.Contains(t, r.Verification, "zeros")
		assert.False(t, r.End.Before(r.Start))
		assert.Equal(t, "S"+r.Device, r.Serial)
	}
	assert.Contains(t, reports[3].Error, "mounted")
	assert.Equal(t, "read-only device", reports[4].Skipped)
}

// TestEraseDevicesPrefersDiscardWithZeros: loop devices guarantee zeros
// after a discard (write-zeroes punches holes in the file), so both
// erase_devices and erase_devices_express count the discard as the erase;
// with agent_enable_ata_secure_erase the ATA and SCSI probes run first
// and find nothing to use.
func TestEraseDevicesPrefersDiscardWithZeros(t *testing.T) {
	testenv.NeedRoot(t)
	testenv.NeedCommands(t, "losetup")
	for _, express := range []bool{false, true} {
		dev, backing := loop(t, 32<<20)
		require.NoError(t, os.WriteFile(backing, bytes.Repeat([]byte("TENANT-SECRET-"), (32<<20)/14+1)[:32<<20], 0o644))
		opts, _ := EraseOptionsFrom(nil)
		opts.Express = express
		var last int64
		reports, err := EraseDevices(context.Background(), []Target{{Path: dev, Size: 32 << 20}}, opts,
			func(_ string, done, total int64) { last = done }, nil)
		require.NoError(t, err)
		require.Len(t, reports, 1)
		assert.Equal(t, []string{"discard"}, reports[0].Methods, "express %v", express)
		require.NotEmpty(t, reports[0].PassedOver)
		assert.Contains(t, reports[0].PassedOver[0], "ata: ATA security erase is not supported", "the ATA probe ran first")
		if !express {
			require.Len(t, reports[0].PassedOver, 2)
			assert.Contains(t, reports[0].PassedOver[1], "scsi sanitize: ", "then the SCSI probe")
		} else {
			assert.Len(t, reports[0].PassedOver, 1, "express does not sanitize SCSI disks")
		}
		assert.Contains(t, reports[0].Verification, "zeros")
		assert.Equal(t, int64(64<<20), last, "progress covers the discard and the zero-out")
		got, _ := os.ReadFile(backing)
		assert.False(t, bytes.Contains(got, []byte("TENANT")), "a planted byte survived (express %v)", express)
	}
}

func TestOverwriteStopsWhenCancelled(t *testing.T) {
	testenv.NeedRoot(t)
	testenv.NeedCommands(t, "losetup")
	dev, _ := loop(t, 256<<20)
	ctx, cancel := context.WithCancel(context.Background())
	start := time.Now()
	err := Overwrite(ctx, dev, 20, true, func(done, total int64) {
		if done > 32<<20 {
			cancel()
		}
	})
	require.Error(t, err)
	assert.True(t, errors.Is(err, context.Canceled), "got %v", err)
	assert.Less(t, time.Since(start), 10*time.Second)
}

// BenchmarkOverwrite compares one zero pass with dd of zeros (O_DIRECT,
// same block size) to the same loop device in /dev/shm.
func BenchmarkOverwrite(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("needs root for loop devices")
	}
	const size = 512 << 20
	f, _ := os.CreateTemp("/dev/shm", "goipa-bench-")
	f.Close()
	defer os.Remove(f.Name())
	os.Truncate(f.Name(), size)
	out, err := exec.Command("losetup", "--find", "--show", f.Name()).Output()
	require.NoError(b, err)
	dev := strings.TrimSpace(string(out))
	defer exec.Command("losetup", "--detach", dev).Run()
	b.Run("limit-dd-zero", func(b *testing.B) {
		b.SetBytes(size)
		for i := 0; i < b.N; i++ {
			require.NoError(b, exec.Command("dd", "if=/dev/zero", "of="+dev, "bs=8M", "count=64", "oflag=direct", "status=none").Run())
		}
	})
	b.Run("goipa-zero-pass", func(b *testing.B) {
		b.SetBytes(size)
		for i := 0; i < b.N; i++ {
			require.NoError(b, Overwrite(context.Background(), dev, 0, true, nil))
		}
	})
	b.Run("goipa-random-pass", func(b *testing.B) {
		b.SetBytes(size)
		for i := 0; i < b.N; i++ {
			require.NoError(b, Overwrite(context.Background(), dev, 1, false, nil))
		}
	})
	b.Run("goipa-metadata", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			require.NoError(b, WipeMetadata(context.Background(), dev))
		}
	})
}

// BenchmarkEraseParallel is the parallel-erase goal (decisions.md): four
// loop devices over files in /dev/shm, each erased by overwrite (one
// random pass and a zero pass, discard off) by EraseDevices all at once
// and then one after another (concurrency 1). The limit, measured in the
// same run, is dd writing the same bytes (two passes of zeros, O_DIRECT,
// 8 MiB blocks) to the four devices at once and one after another: the
// speed-up the backing store (memory bandwidth, cores) allows. Overwrite
// already runs several writers per device, so where one device uses
// every core the sequential run is close to the parallel one; dd, one
// writer per device, shows what parallelism across devices alone buys.
func BenchmarkEraseParallel(b *testing.B) {
	testenv.NeedRoot(b)
	testenv.NeedCommands(b, "losetup", "dd")
	const (
		devices = 4
		size    = 256 << 20
		passes  = 2 // one random, one zero
	)
	var targets []Target
	for i := 0; i < devices; i++ {
		f, err := os.CreateTemp("/dev/shm", "goipa-bench-")
		require.NoError(b, err)
		defer os.Remove(f.Name())
		// Allocated up front, so no run pays tmpfs's first touch.
		require.NoError(b, unix.Fallocate(int(f.Fd()), 0, 0, size))
		f.Close()
		out, err := exec.Command("losetup", "--find", "--show", f.Name()).Output()
		require.NoError(b, err)
		dev := strings.TrimSpace(string(out))
		defer exec.Command("losetup", "--detach", dev).Run()
		targets = append(targets, Target{Path: dev, Size: size})
	}
	erase := func(concurrency int) time.Duration {
		opts, err := EraseOptionsFrom(nil) // IPA's defaults: one random pass, a zero pass
		require.NoError(b, err)
		opts.NoDiscard = true // loop devices discard; this measures the overwrite
		opts.Concurrency = concurrency
		start := time.Now()
		reports, err := EraseDevices(context.Background(), targets, opts, nil, slog.New(slog.DiscardHandler))
		d := time.Since(start)
		require.NoError(b, err)
		for _, r := range reports {
			require.Equal(b, []string{"overwrite-random", "overwrite-zero"}, r.Methods, r.Device)
		}
		return d
	}
	dd := func(concurrency int) time.Duration {
		sem := make(chan struct{}, concurrency)
		errs := make(chan error, devices)
		start := time.Now()
		for _, t := range targets {
			go func() {
				sem <- struct{}{}
				defer func() { <-sem }()
				var err error
				for p := 0; p < passes && err == nil; p++ {
					err = exec.Command("dd", "if=/dev/zero", "of="+t.Path, "bs=8M", fmt.Sprint("count=", size/(8<<20)), "oflag=direct", "status=none").Run()
				}
				errs <- err
			}()
		}
		for range targets {
			require.NoError(b, <-errs)
		}
		return time.Since(start)
	}
	var seq, par, ddSeq, ddPar time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		ddSeq += dd(1)
		ddPar += dd(devices)
		seq += erase(1)
		par += erase(0)
	}
	n := float64(b.N)
	written := float64(devices*size*passes) / 1e6
	b.ReportMetric(0, "ns/op") // the sum of four runs says nothing
	b.ReportMetric(seq.Seconds()/n, "sequential-s/op")
	b.ReportMetric(par.Seconds()/n, "parallel-s/op")
	b.ReportMetric(float64(seq)/float64(par), "speedup-x")
	b.ReportMetric(written*n/par.Seconds(), "parallel-MB/s")
	b.ReportMetric(ddSeq.Seconds()/n, "dd-sequential-s/op")
	b.ReportMetric(ddPar.Seconds()/n, "dd-parallel-s/op")
	b.ReportMetric(float64(ddSeq)/float64(ddPar), "dd-speedup-x")
	b.ReportMetric(written*n/ddPar.Seconds(), "dd-parallel-MB/s")
}
