package image

import (
	"encoding/binary"
	"errors"
	"io"
	"runtime"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// qcow2Header3 builds a version 3 qcow2 header cluster.
func qcow2Header3(clusterBits uint32, virtual uint64, l1Size uint32, l1Off uint64) []byte {
	h := make([]byte, 512)
	copy(h, "QFI\xfb")
	be := binary.BigEndian
	be.PutUint32(h[4:], 3)
	be.PutUint32(h[20:], clusterBits)
	be.PutUint64(h[24:], virtual)
	be.PutUint32(h[36:], l1Size)
	be.PutUint64(h[40:], l1Off)
	be.PutUint32(h[96:], 4) // refcount order
	be.PutUint32(h[100:], 104)
	return h
}

// scatteredQcow2 is a crafted image read as a stream, made on the fly:
// a header, an L1 table at cluster 1 and `tables` full L2 tables of
// 64 KiB clusters after it, whose entries map guest cluster g to file
// cluster first+2g, so that no two entries make one run. The stream ends
// after the tables; a decoder that holds them all takes memory in
// proportion to them.
type scatteredQcow2 struct {
	tables int64
	off    int64
	cl     []byte
}

const scatterBits = 16

func (s *scatteredQcow2) header() []byte {
	perL2 := int64(1<<scatterBits) / 8
	return qcow2Header3(scatterBits, uint64(s.tables*perL2)<<scatterBits, uint32(s.tables), 1<<scatterBits)
}

func (s *scatteredQcow2) Read(p []byte) (int, error) {
	const cs = 1 << scatterBits
	end := (2 + s.tables) * cs
	if s.off >= end {
		return 0, io.EOF
	}
	if s.cl == nil {
		s.cl = make([]byte, cs)
	}
	idx, in := s.off/cs, s.off%cs
	be := binary.BigEndian
	switch {
	case idx == 0:
		clear(s.cl)
		copy(s.cl, s.header())
	case idx == 1: // the L1 table
		clear(s.cl)
		for t := int64(0); t < s.tables; t++ {
			be.PutUint64(s.cl[t*8:], uint64(2+t)<<scatterBits|flagCopied)
		}
	default: // L2 table idx-2
		first := 2 + s.tables
		for j := int64(0); j < cs/8; j++ {
			g := (idx-2)*(cs/8) + j
			be.PutUint64(s.cl[j*8:], uint64(first+2*g)<<scatterBits|flagCopied)
		}
	}
	n := copy(p, s.cl[in:])
	s.off += int64(n)
	return n, nil
}

// allocatedDuring reports the bytes f allocates on the heap in all: an
// upper bound on its peak heap.
func allocatedDuring(f func()) uint64 {
	var m0, m1 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&m0)
	f()
	runtime.ReadMemStats(&m1)
	return m1.TotalAlloc - m0.TotalAlloc
}

// TestQcow2MemoryBounded: crafted images that would make the decoder
// hold more than MaxQcow2Metadata of tables are refused with a
// *LimitError, and the decoder allocates a bounded amount on the way
// (measured around the decode, whatever the image claims); an L1 table
// larger than the virtual size needs costs only the entries that map it.
func TestQcow2MemoryBounded(t *testing.T) {
	discard := func(Extent) error { return nil }
	t.Run("L1-size-beyond-limit", func(t *testing.T) {
		// 2^26 entries: 512 MiB of L1 for a 1 MiB disk.
		head := qcow2Header3(16, 1<<20, 1<<26, 1<<16)
		var err error
		alloc := allocatedDuring(func() { _, err = decodeQcow2(head, io.LimitReader(zeroReader{}, 1<<30), discard) })
		var le *LimitError
		require.True(t, errors.As(err, &le), "%v", err)
		assert.Equal(t, "qcow2 L1 table", le.What)
		assert.Less(t, alloc, uint64(1<<20))
	})
	t.Run("virtual-size-needs-L1-beyond-limit", func(t *testing.T) {
		// 512-byte clusters map 32 KiB per L1 entry: 1 PiB needs 256 GiB of L1.
		head := qcow2Header3(9, 1<<50, 1<<31, 1<<16)
		_, err := ParseQcow2Header(head)
		var le *LimitError
		require.True(t, errors.As(err, &le), "%v", err)
	})
	t.Run("large-L1-small-disk", func(t *testing.T) {
		// qemu's largest L1 (32 MiB) in front of a 1 MiB disk: the
		// entries past the first are never kept.
		head := qcow2Header3(16, 1<<20, 1<<22, 1<<16)
		stream := io.MultiReader(io.LimitReader(zeroReader{}, 1<<16-512), io.LimitReader(zeroReader{}, 32<<20))
		var err error
		var zeros int64
		alloc := allocatedDuring(func() {
			_, err = decodeQcow2(head, stream, func(e Extent) error { zeros += e.Zeros; return nil })
		})
		require.NoError(t, err)
		assert.Equal(t, int64(1<<20), zeros, "the disk reads as zeros")
		assert.Less(t, alloc, uint64(4<<20), "the L1 entries past the virtual size are not kept")
	})
	t.Run("L2-tables-beyond-limit", func(t *testing.T) {
		// 1024 L2 tables of 8192 scattered entries: 8 Mi runs, far over
		// the limit if held.
		g := &scatteredQcow2{tables: 1024}
		head := make([]byte, 512)
		_, err := io.ReadFull(g, head)
		require.NoError(t, err)
		alloc := allocatedDuring(func() { _, err = decodeQcow2(head, g, discard) })
		var le *LimitError
		require.True(t, errors.As(err, &le), "%v", err)
		assert.Equal(t, "qcow2 metadata", le.What)
		assert.Less(t, alloc, uint64(5*MaxQcow2Metadata/2), "allocated in all while refusing")
		assert.Less(t, g.off, int64(512<<20), "refused once the limit was reached, not at the end")
		t.Logf("%v after %d MiB of the stream, %d MiB allocated", err, g.off>>20, alloc>>20)
	})
	t.Run("data-before-tables-beyond-limit", func(t *testing.T) {
		// The L1 table 96 MiB into the file: what comes before it may
		// be data it maps, kept up to 64 MiB.
		head := qcow2Header3(16, 256<<20, 1, 96<<20)
		var err error
		alloc := allocatedDuring(func() { _, err = decodeQcow2(head, io.LimitReader(zeroReader{}, 128<<20), discard) })
		var qe *Qcow2Error
		require.True(t, errors.As(err, &qe), "%v", err)
		assert.ErrorContains(t, err, "more than 64 MiB of data precede the tables")
		assert.Less(t, alloc, uint64(maxEarly+8<<20))
	})
	t.Run("L2-tables-within-limit", func(t *testing.T) {
		// 128 such tables (1 Mi runs, 32 MiB) are within it: the image
		// is only refused for ending before its data.
		g := &scatteredQcow2{tables: 128}
		head := make([]byte, 512)
		_, err := io.ReadFull(g, head)
		require.NoError(t, err)
		_, err = decodeQcow2(head, g, discard)
		var le *LimitError
		require.False(t, errors.As(err, &le), "%v", err)
		assert.ErrorContains(t, err, "ended before")
	})
}

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) { clear(p); return len(p), nil }
