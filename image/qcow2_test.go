package image

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/goipa/goipa/internal/testenv"
)

func qemuImg(t *testing.T, args ...string) {
	t.Helper()
	out, err := exec.Command("qemu-img", args...).CombinedOutput()
	require.NoError(t, err, "qemu-img %v: %s", args, out)
}

// sparseRaw makes a 24 MiB raw image with data islands and holes, the
// shape of a real OS image.
func sparseRaw(t *testing.T, dir string) string {
	raw := filepath.Join(dir, "src.raw")
	img := make([]byte, 24<<20)
	for _, r := range [][2]int{{0, 2 << 20}, {5 << 20, 1<<20 + 4096}, {11<<20 + 512, 3 << 20}, {(24 << 20) - 70000, 70000}} {
		rand.Read(img[r[0] : r[0]+r[1]])
	}
	img[510], img[511] = 0x55, 0xaa
	require.NoError(t, os.WriteFile(raw, img, 0o644))
	return raw
}

func TestQcow2ShapesMatchQemuImg(t *testing.T) {
	testenv.NeedRoot(t)
	testenv.NeedCommands(t, "qemu-img", "qemu-io", "losetup")
	dir := t.TempDir()
	raw := sparseRaw(t, dir)
	want, err := os.ReadFile(raw)
	require.NoError(t, err)
	shapes := map[string][]string{
		"default":                     {},
		"v2":                          {"-o", "compat=0.10"},
		"cluster-512":                 {"-o", "cluster_size=512"},
		"cluster-2M":                  {"-o", "cluster_size=2M"},
		"zlib-compressed":             {"-c"},
		"zstd-compressed":             {"-c", "-o", "compression_type=zstd"},
		"prealloc-meta":               {"-o", "preallocation=metadata"},
		"prealloc-full":               {"-o", "preallocation=full"},
		"lazy-refcounts":              {"-o", "lazy_refcounts=on"},
		"compressed-4k":               {"-c", "-o", "cluster_size=4k"},
		"extended-l2":                 {"-o", "extended_l2=on"},
		"extended-l2-zstd-compressed": {"-c", "-o", "extended_l2=on,compression_type=zstd"},
	}
	for name, opts := range shapes {
		t.Run(name, func(t *testing.T) {
			q := filepath.Join(dir, name+".qcow2")
			qemuImg(t, append(append([]string{"convert", "-O", "qcow2"}, opts...), raw, q)...)
			checkQcow2(t, q, want)
		})
	}
	t.Run("qemu-io-random-order", func(t *testing.T) {
		q := filepath.Join(dir, "io.qcow2")
		qemuImg(t, "create", "-f", "qcow2", q, "24M")
		exp := make([]byte, 24<<20)
		var cmds []string
		for i, off := range []int{17 << 20, 3 << 20, 22<<20 + 65536, 0, 9 << 20, 1 << 20} {
			pat := byte(0x11 * (i + 1))
			cmds = append(cmds, "-c", fmt.Sprintf("write -P %d %d 65536", pat, off))
			copy(exp[off:], bytes.Repeat([]byte{pat}, 65536))
		}
		out, err := exec.Command("qemu-io", append(append([]string{"-f", "qcow2"}, cmds...), q)...).CombinedOutput()
		require.NoError(t, err, "%s", out)
		checkQcow2(t, q, exp)
	})
}

func checkQcow2(t *testing.T, q string, want []byte) {
	t.Helper()
	body, err := os.ReadFile(q)
	require.NoError(t, err)
	dev := loopDev(t, 32<<20)
	fill(t, dev, 32<<20) // old data everywhere: holes must come out zero
	r := Request{URLs: []string{"file://" + q}, Device: dev, Checksum: ChecksumSpec{OSHashAlgo: "sha256", OSHashValue: shaHex(body)},
		PermittedFormats: []string{"raw", "qcow2"}}
	res, err := Write(context.Background(), r)
	require.NoError(t, err)
	assert.Equal(t, "qcow2", res.Format)
	assert.Equal(t, int64(len(want)), res.Written)
	got := readBack(t, dev, 0, int64(len(want)))
	if !bytes.Equal(got, want) {
		for i := range got {
			if got[i] != want[i] {
				t.Fatalf("device differs from qemu-img's conversion at byte %d", i)
			}
		}
	}
}

func TestQcow2Refusals(t *testing.T) {
	testenv.NeedCommands(t, "qemu-img")
	dir := t.TempDir()
	raw := filepath.Join(dir, "base.raw")
	require.NoError(t, os.WriteFile(raw, make([]byte, 1<<20), 0o644))
	backed := filepath.Join(dir, "backed.qcow2")
	qemuImg(t, "create", "-f", "qcow2", "-F", "raw", "-b", raw, backed)
	for name, want := range map[string]string{backed: "backing file"} {
		b, err := os.ReadFile(name)
		require.NoError(t, err)
		_, err = decodeQcow2(b[:512], bytes.NewReader(b[512:]), func(Extent) error { return nil })
		var qe *Qcow2Error
		require.True(t, errors.As(err, &qe), "%s: %v", name, err)
		assert.Contains(t, err.Error(), want)
	}
}

func TestQcow2Truncated(t *testing.T) {
	testenv.NeedCommands(t, "qemu-img")
	dir := t.TempDir()
	raw := sparseRaw(t, dir)
	q := filepath.Join(dir, "t.qcow2")
	qemuImg(t, "convert", "-O", "qcow2", raw, q)
	b, _ := os.ReadFile(q)
	cut := b[:len(b)/2]
	_, err := decodeQcow2(cut[:512], bytes.NewReader(cut[512:]), func(Extent) error { return nil })
	require.Error(t, err)
	assert.Contains(t, err.Error(), "ended before")
}

func FuzzQcow2(f *testing.F) {
	hdr := make([]byte, 512)
	copy(hdr, "QFI\xfb\x00\x00\x00\x03")
	hdr[23] = 16   // cluster_bits
	hdr[29] = 0x10 // virtual size 1 MiB
	hdr[39] = 1    // l1_size
	hdr[46] = 1    // l1 offset 64 KiB
	hdr[103] = 112 // header length
	f.Add(hdr)
	ext := bytes.Clone(hdr)
	ext[79] = 16 // incompatible features: extended L2 entries
	f.Add(ext)
	f.Add([]byte("QFI\xfb"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) < 512 {
			b = append(b, make([]byte, 512-len(b))...)
		}
		h, herr := ParseQcow2Header(b[:512])
		var total int64
		decodeQcow2(b[:512], bytes.NewReader(b[512:]), func(e Extent) error {
			total += int64(len(e.Data))
			if e.Offset < 0 || total > 1<<40 {
				t.Fatalf("bad extent at %d", e.Offset)
			}
			if herr == nil && e.Offset+int64(len(e.Data))+e.Zeros > int64(h.VirtualSize) {
				t.Fatalf("extent at %d (%d bytes, %d zeros) past the virtual size %d", e.Offset, len(e.Data), e.Zeros, h.VirtualSize)
			}
			return nil
		})
	})
}

func TestQcow2ClusterMappedTwice(t *testing.T) {
	testenv.NeedCommands(t, "qemu-img", "qemu-io")
	q := filepath.Join(t.TempDir(), "dup.qcow2")
	qemuImg(t, "create", "-f", "qcow2", q, "1M")
	out, err := exec.Command("qemu-io", "-f", "qcow2", "-c", "write -P 1 0 64k", "-c", "write -P 2 64k 64k", q).CombinedOutput()
	require.NoError(t, err, "%s", out)
	b, err := os.ReadFile(q)
	require.NoError(t, err)
	// Point the second L2 entry at the first entry's cluster.
	be := binary.BigEndian
	l1 := be.Uint64(b[40:48])
	l2 := be.Uint64(b[l1:]) & l2OffsetMask
	copy(b[l2+8:l2+16], b[l2:l2+8])
	_, err = decodeQcow2(b[:512], bytes.NewReader(b[512:]), func(Extent) error { return nil })
	var qe *Qcow2Error
	require.True(t, errors.As(err, &qe), "%v", err)
	assert.Contains(t, err.Error(), "mapped twice")
}

// decodeToMemory decodes a qcow2 file as the writer does, into a buffer
// that starts full of old bytes (0xcc): holes must come out zero.
func decodeToMemory(t *testing.T, q string) []byte {
	t.Helper()
	b, err := os.ReadFile(q)
	require.NoError(t, err)
	h, err := ParseQcow2Header(b[:512])
	require.NoError(t, err)
	img := bytes.Repeat([]byte{0xcc}, int(h.VirtualSize))
	_, err = decodeQcow2(b[:512], bytes.NewReader(b[512:]), func(e Extent) error {
		if e.Data != nil {
			copy(img[e.Offset:], e.Data)
		} else {
			clear(img[e.Offset : e.Offset+e.Zeros])
		}
		return nil
	})
	require.NoError(t, err)
	return img
}

// TestQcow2ExtendedL2MatchesQemuImg: images with extended L2 entries
// (subclusters), made by qemu-img and qemu-io, decode byte for byte as
// `qemu-img convert -O raw` converts them: allocated, zero and
// unallocated subclusters (over old bytes in their host cluster),
// compressed clusters, and whole images converted with extended_l2=on.
func TestQcow2ExtendedL2MatchesQemuImg(t *testing.T) {
	testenv.NeedCommands(t, "qemu-img", "qemu-io")
	dir := t.TempDir()
	raw := sparseRaw(t, dir)
	for _, tc := range []struct {
		name string
		make func(q string)
	}{
		{"convert-64k", func(q string) {
			qemuImg(t, "convert", "-O", "qcow2", "-o", "extended_l2=on", raw, q)
		}},
		{"convert-2M", func(q string) {
			qemuImg(t, "convert", "-O", "qcow2", "-o", "extended_l2=on,cluster_size=2M", raw, q)
		}},
		{"convert-16k", func(q string) {
			qemuImg(t, "convert", "-O", "qcow2", "-o", "extended_l2=on,cluster_size=16k", raw, q)
		}},
		{"compressed-zlib", func(q string) {
			qemuImg(t, "convert", "-c", "-O", "qcow2", "-o", "extended_l2=on", raw, q)
		}},
		{"compressed-zstd", func(q string) {
			qemuImg(t, "convert", "-c", "-O", "qcow2", "-o", "extended_l2=on,compression_type=zstd", raw, q)
		}},
		{"prealloc-metadata", func(q string) {
			qemuImg(t, "convert", "-O", "qcow2", "-o", "extended_l2=on,preallocation=metadata", raw, q)
		}},
		{"subclusters", func(q string) {
			qemuImg(t, "create", "-f", "qcow2", "-o", "extended_l2=on,cluster_size=64k", q, "4M")
			out, err := exec.Command("qemu-io", "-f", "qcow2",
				"-c", "write -P 0xaa 0 64k", // a whole cluster of data...
				"-c", "write -z 2k 2k", // ...one subcluster made zero over it
				"-c", "write -z 32k 6k", // ...three more
				"-c", "write -P 0xbb 100k 2k", // one subcluster allocated, the rest not
				"-c", "write -P 0xcc 1M 200k", // clusters with a partial one at the end
				"-c", "write -z 1100k 10k",
				"-c", "write -P 0xdd 3M 4k",
				"-c", "write -z -u 3M 2k", // unmapped: a zero subcluster
				q).CombinedOutput()
			require.NoError(t, err, "%s", out)
		}},
		{"subclusters-compressed-mix", func(q string) {
			qemuImg(t, "create", "-f", "qcow2", "-o", "extended_l2=on,cluster_size=64k", q, "4M")
			out, err := exec.Command("qemu-io", "-f", "qcow2",
				"-c", "write -c -P 0x11 0 64k", // a compressed cluster
				"-c", "write -P 0x22 64k 2k",
				"-c", "write -c -P 0x33 128k 64k",
				"-c", "write -P 0x44 2M 64k",
				"-c", "write -z 2052k 2k",
				q).CombinedOutput()
			require.NoError(t, err, "%s", out)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q := filepath.Join(dir, tc.name+".qcow2")
			tc.make(q)
			out, err := exec.Command("qemu-img", "info", q).CombinedOutput()
			require.NoError(t, err)
			require.Contains(t, string(out), "extended l2: true", "%s", out)
			want := filepath.Join(dir, tc.name+".raw")
			qemuImg(t, "convert", "-O", "raw", q, want)
			wantB, err := os.ReadFile(want)
			require.NoError(t, err)
			got := decodeToMemory(t, q)
			require.Equal(t, len(wantB), len(got))
			for i := range got {
				if got[i] != wantB[i] {
					t.Fatalf("differs from qemu-img convert -O raw at byte %d: %#x, qemu-img %#x", i, got[i], wantB[i])
				}
			}
		})
	}
}
