package image

import (
	"bytes"
	"crypto/rand"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/goipa/goipa/internal/testenv"
)

// lendSink records what the decoder gives it into img, counting the bytes
// it got in place (borrowed) apart from those it was asked to buffer.
type lendSink struct {
	img      []byte
	borrowed int64
	scratch  []byte
}

func (s *lendSink) buffer(off int64, n int) ([]byte, error) {
	if cap(s.scratch) < n {
		s.scratch = make([]byte, n)
	}
	return s.scratch[:n], nil
}

func (s *lendSink) commit(off int64, b []byte) error { copy(s.img[off:], b); return nil }

func (s *lendSink) zero(off, n int64) error { clear(s.img[off : off+n]); return nil }

func (s *lendSink) submitBorrowed(off int64, b []byte, release func()) error {
	copy(s.img[off:], b)
	s.borrowed += int64(len(b))
	release()
	return nil
}

// TestQcow2LendsClustersInPlace: from the download pipe, qcow2 data
// clusters reach the sink in place (no copy) for nearly all of a dense
// image, in every cluster size, and the result is still the raw image;
// every pipe buffer goes back to the producer.
func TestQcow2LendsClustersInPlace(t *testing.T) {
	testenv.NeedCommands(t, "qemu-img")
	dir := t.TempDir()
	raw := make([]byte, 6<<20+64<<10)
	rand.Read(raw)
	clear(raw[3<<20 : 3<<20+256<<10]) // a hole: the writer zeroes it, nothing lent
	rawPath := filepath.Join(dir, "src.raw")
	require.NoError(t, os.WriteFile(rawPath, raw, 0o644))
	for _, cs := range []string{"512", "64k", "2M"} {
		t.Run(cs, func(t *testing.T) {
			q := filepath.Join(dir, cs+".qcow2")
			qemuImg(t, "convert", "-O", "qcow2", "-o", "cluster_size="+cs, rawPath, q)
			body, err := os.ReadFile(q)
			require.NoError(t, err)
			p := newBufPipe(4)
			// The producer lends chunks from a pool of four, as the
			// download does.
			free := make(chan []byte, 4)
			for range 4 {
				free <- alignedChunk()
			}
			go func() {
				r := bytes.NewReader(body)
				for {
					b := <-free
					n, err := io.ReadFull(r, b)
					if n == 0 {
						free <- b
					} else if p.send(pipeBuf{b: b[:n], release: func() { free <- b }}) != nil {
						return
					}
					if err != nil {
						p.closeWrite(io.EOF)
						return
					}
				}
			}()
			head := make([]byte, 512)
			_, err = io.ReadFull(p, head)
			require.NoError(t, err)
			s := &lendSink{img: bytes.Repeat([]byte{0xcc}, len(raw))}
			_, err = decodeQcow2To(head, p, s)
			require.NoError(t, err)
			require.True(t, bytes.Equal(raw, s.img), "decoded image differs from the raw one")
			// 2 MiB clusters hold the hole with data around it: they are lent
			// whole; a cluster cut short by the virtual size is copied.
			data := int64(len(raw) - 256<<10)
			assert.Greater(t, s.borrowed, data*9/10, "most data clusters should go in place")
			assert.LessOrEqual(t, s.borrowed, int64(len(raw)))
			io.Copy(io.Discard, p)
			assert.Len(t, free, 4, "every buffer goes back to the producer")
		})
	}
}
