package image

import (
	"context"
	"crypto/rand"
	"log/slog"
	"math/big"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/goipa/goipa/internal/testenv"
)

func randN(t *testing.T, n int64) int64 {
	v, err := rand.Int(rand.Reader, big.NewInt(n))
	require.NoError(t, err)
	return v.Int64()
}

// TestDevWriterUnalignedExtentsInAnyOrder feeds the writer pipeline
// extents of random 512-byte-multiple lengths, data and zeros, in random
// order, over a device full of old bytes: neighbours share 4 KiB blocks,
// so this checks that concurrent direct writes, offloads and cached
// edge writes never undo each other, and that the first MiB is held.
func TestDevWriterUnalignedExtentsInAnyOrder(t *testing.T) {
	testenv.NeedRoot(t)
	testenv.NeedCommands(t, "losetup")
	const size = 24 << 20
	dev := loopDev(t, size+(1<<20))
	fill(t, dev, size+(1<<20))
	want := make([]byte, size)
	type ext struct {
		off, n int64
		zero   bool
	}
	var exts []ext
	for off := int64(0); off < size; {
		n := min(size-off, 512*(1+randN(t, 600)))
		if randN(t, 5) == 0 {
			n = min(size-off, 512*(1+randN(t, 12000))) // some longer than a chunk
		}
		e := ext{off: off, n: n, zero: randN(t, 3) == 0}
		if !e.zero {
			rand.Read(want[off : off+n])
			if randN(t, 4) == 0 { // data that is all zeros: found by the writers
				clear(want[off : off+n])
			}
		}
		exts = append(exts, e)
		off += n
	}
	for i := len(exts) - 1; i > 0; i-- {
		j := randN(t, int64(i+1))
		exts[i], exts[j] = exts[j], exts[i]
	}
	// Runs of neighbours in order too, so batches fill and span chunks.
	for i := 0; i+8 < len(exts); i += 40 {
		group := exts[i : i+8]
		for a := range group {
			for b := a + 1; b < len(group); b++ {
				if group[b].off < group[a].off {
					group[a], group[b] = group[b], group[a]
				}
			}
		}
	}

	f, err := os.OpenFile(dev, os.O_WRONLY, 0)
	require.NoError(t, err)
	defer f.Close()
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	var werr error
	w := newDevWriter(ctx, func(err error) { werr = err; cancel(err) }, f, Request{Device: dev, Progress: &Progress{}, Log: slog.Default()})
	for _, e := range exts {
		if e.zero {
			require.NoError(t, w.zero(e.off, e.n))
			continue
		}
		require.NoError(t, put(w, e.off, want[e.off:e.off+e.n]))
	}
	w.close()
	require.NoError(t, werr)
	require.NoError(t, f.Sync())
	assert.Equal(t, 0xcc, int(readBack(t, dev, 0, 1)[0]), "the first MiB is held back, not written")
	_, err = f.WriteAt(w.held, 0)
	require.NoError(t, err)
	require.NoError(t, f.Sync())
	got := readBack(t, dev, 0, size)
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("device differs at byte %d: %#x, want %#x", i, got[i], want[i])
		}
	}
	assert.Equal(t, 0xcc, int(readBack(t, dev, size, 1)[0]), "nothing written past the image")
}

// TestSparseAndQcow2WithParallelRanges: images large enough for parallel
// range requests, whose chunks go to the writers (raw) or the qcow2
// decoder as fetched, over a device full of old bytes.
func TestSparseAndQcow2WithParallelRanges(t *testing.T) {
	testenv.NeedRoot(t)
	testenv.NeedCommands(t, "losetup", "qemu-img")
	img := sparseImage(t, parallelMin+2*rangeChunk+3*4096+512, 640<<10) // 10% data, an unaligned tail
	dir := t.TempDir()
	rawPath := filepath.Join(dir, "img.raw")
	require.NoError(t, os.WriteFile(rawPath, img, 0o644))
	q := filepath.Join(dir, "img.qcow2")
	out, err := exec.Command("qemu-img", "convert", "-O", "qcow2", "-o", "preallocation=metadata", rawPath, q).CombinedOutput()
	require.NoError(t, err, "%s", out)
	qb, err := os.ReadFile(q)
	require.NoError(t, err)
	for name, body := range map[string][]byte{"raw": img, "qcow2": qb} {
		t.Run(name, func(t *testing.T) {
			if len(body) < parallelMin {
				// preallocation=metadata keeps the qcow2 as large as the image
				t.Fatalf("%s is %d bytes, too small for parallel ranges", name, len(body))
			}
			s := &rangeServer{img: body}
			srv := httptest.NewServer(s)
			defer srv.Close()
			dev := loopDev(t, int64(len(img))+1<<20)
			fill(t, dev, int64(len(img))+1<<20)
			r := req(dev, srv.URL+"/img", shaHex(body))
			r.PermittedFormats = []string{"raw", "qcow2"}
			res, err := Write(context.Background(), r)
			require.NoError(t, err)
			assert.Equal(t, name, res.Format)
			assert.Greater(t, s.ranges.Load(), int32(2), "fetched in ranges")
			assert.Equal(t, shaHex(img), shaHex(readBack(t, dev, 0, int64(len(img)))), "old bytes survived, or data went astray")
		})
	}
}
