package image

import (
	"bytes"
	"compress/flate"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sort"

	"github.com/klauspost/compress/zstd"
)

// Qcow2Header is the part of a qcow2 header the decoder needs.
type Qcow2Header struct {
	Version         uint32
	ClusterBits     uint32
	VirtualSize     uint64
	L1Size          uint32
	L1Offset        uint64
	HeaderLength    uint32
	CompressionZstd bool
	ExtendedL2      bool
}

// Qcow2Error is a malformed or unsupported qcow2 image.
type Qcow2Error struct{ Msg string }

func (e *Qcow2Error) Error() string { return "qcow2: " + e.Msg }

func qerr(format string, a ...any) error { return &Qcow2Error{Msg: fmt.Sprintf(format, a...)} }

// ParseQcow2Header validates a qcow2 header (versions 2 and 3): backing
// files, encryption, external data files and dirty images are refused.
func ParseQcow2Header(b []byte) (Qcow2Header, error) {
	if len(b) < 72 || string(b[:4]) != "QFI\xfb" {
		return Qcow2Header{}, qerr("not a qcow2 header")
	}
	be := binary.BigEndian
	h := Qcow2Header{
		Version:     be.Uint32(b[4:8]),
		ClusterBits: be.Uint32(b[20:24]),
		VirtualSize: be.Uint64(b[24:32]),
		L1Size:      be.Uint32(b[36:40]),
		L1Offset:    be.Uint64(b[40:48]),
	}
	if h.Version != 2 && h.Version != 3 {
		return h, qerr("version %d is not supported", h.Version)
	}
	if be.Uint64(b[8:16]) != 0 {
		return h, qerr("images with a backing file are not supported: goipa writes self-contained images")
	}
	if be.Uint32(b[32:36]) != 0 {
		return h, qerr("encrypted images are not supported")
	}
	if h.ClusterBits < 9 || h.ClusterBits > 21 {
		return h, qerr("cluster_bits %d out of range 9-21", h.ClusterBits)
	}
	if h.VirtualSize > 1<<50 {
		return h, qerr("virtual size %d is implausible", h.VirtualSize)
	}
	csize := uint64(1) << h.ClusterBits
	need := (h.VirtualSize + csize*(csize/8) - 1) / (csize * (csize / 8))
	if uint64(h.L1Size) < need || h.L1Size > 1<<26 {
		return h, qerr("L1 table of %d entries cannot map %d bytes", h.L1Size, h.VirtualSize)
	}
	h.HeaderLength = 72
	if h.Version == 3 {
		if len(b) < 104 {
			return h, qerr("short version 3 header")
		}
		incompat := be.Uint64(b[72:80])
		h.HeaderLength = be.Uint32(b[100:104])
		if incompat&1 != 0 {
			return h, qerr("the image is marked dirty (not closed cleanly); run qemu-img check -r all")
		}
		if incompat&2 != 0 {
			return h, qerr("the image is marked corrupt")
		}
		if incompat&4 != 0 {
			return h, qerr("images with an external data file are not supported")
		}
		if incompat&8 != 0 {
			if len(b) < 105 || h.HeaderLength < 105 {
				return h, qerr("compression type bit set but no compression type field")
			}
			switch b[104] {
			case 0:
			case 1:
				h.CompressionZstd = true
			default:
				return h, qerr("unknown compression type %d", b[104])
			}
		}
		if incompat&16 != 0 {
			h.ExtendedL2 = true
		}
		if incompat&^uint64(31) != 0 {
			return h, qerr("unknown incompatible features %#x", incompat)
		}
	}
	return h, nil
}

// Extent is a piece of the guest disk: Data at Offset, or (Data nil)
// Zeros bytes that read as zeros.
type Extent struct {
	Offset int64
	Data   []byte
	Zeros  int64
}

// qcow2Sink takes the decoded guest disk. A data cluster is read
// straight into the bytes buffer returns, then committed; parts that read
// as zeros are named by zero.
type qcow2Sink interface {
	buffer(off int64, n int) ([]byte, error)
	commit(off int64, b []byte) error
	zero(off, n int64) error
}

// lender is a stream that can hand out its next bytes in place (the
// pipe from the download): a run of data clusters then goes to the
// device from the buffer it was downloaded into, with no copy.
type lender interface {
	avail() int
	borrow(n int) (b []byte, release func())
}

// borrowSink is a sink that writes bytes it does not own, calling
// release once they are written (devWriter).
type borrowSink interface {
	submitBorrowed(off int64, b []byte, release func()) error
}

// put gives the sink a copy of b.
func put(s qcow2Sink, off int64, b []byte) error {
	dst, err := s.buffer(off, len(b))
	if err != nil {
		return err
	}
	copy(dst, b)
	return s.commit(off, dst)
}

// emitSink hands extents to a function (tests, fuzzing); Data is only
// valid during the call.
type emitSink struct {
	emit    func(Extent) error
	scratch []byte
}

func (e *emitSink) buffer(off int64, n int) ([]byte, error) {
	if cap(e.scratch) < n {
		e.scratch = make([]byte, n)
	}
	return e.scratch[:n], nil
}

func (e *emitSink) commit(off int64, b []byte) error { return e.emit(Extent{Offset: off, Data: b}) }
func (e *emitSink) zero(off, n int64) error          { return e.emit(Extent{Offset: off, Zeros: n}) }

// qcow2Stream decodes a qcow2 image read front to back, emitting data
// extents as their clusters pass by. Metadata must come before the data
// it maps (as qemu-img and qemu write it); data met before its L2 table
// is buffered up to a bound.
type qcow2Stream struct {
	r       io.Reader
	h       Qcow2Header
	csize   int64
	pos     int64 // file offset of the next byte of r
	l1      []uint64
	l2want  map[int64]int64  // host offset of an L2 table -> first guest offset it maps
	data    map[int64]int64  // host offset of a data cluster -> guest offset
	comp    []compressedRef  // compressed clusters, sorted by host offset when needed
	early   map[int64][]byte // clusters read before anything mapped them
	early_n int64
	tail    []byte // recent bytes, for compressed clusters that straddle clusters
	tailAt  int64  // file offset of tail[0]
	zstd    *zstd.Decoder
	sink    qcow2Sink
	scratch []byte // the cluster being read, unless it goes straight to the sink

	// lend and lendSink are set when clusters can go to the sink in
	// place: r's bytes from headLen on come from lend.
	lend     lender
	lendSink borrowSink
	headLen  int64
}

type compressedRef struct {
	host, length, guest int64
}

const maxEarly = 64 << 20

// decodeQcow2 streams a qcow2 image from r (positioned after head, the
// bytes already read) and calls emit for every allocated cluster and
// every range that reads as zeros. It returns the virtual size.
func decodeQcow2(head []byte, r io.Reader, emit func(Extent) error) (int64, error) {
	return decodeQcow2To(head, r, &emitSink{emit: emit})
}

// decodeQcow2To streams a qcow2 image into sink: every guest byte up to
// the virtual size is either committed as data or named as zeros.
func decodeQcow2To(head []byte, r io.Reader, sink qcow2Sink) (int64, error) {
	h, err := ParseQcow2Header(head)
	if err != nil {
		return 0, err
	}
	if h.ExtendedL2 {
		return 0, qerr("extended L2 entries (subclusters) are not supported")
	}
	s := &qcow2Stream{r: io.MultiReader(bytes.NewReader(head), r), h: h, csize: 1 << h.ClusterBits,
		l2want: map[int64]int64{}, data: map[int64]int64{}, early: map[int64][]byte{}, sink: sink}
	s.scratch = make([]byte, s.csize)
	if l, ok := r.(lender); ok {
		if bs, ok := sink.(borrowSink); ok {
			s.lend, s.lendSink, s.headLen = l, bs, int64(len(head))
		}
	}
	if h.CompressionZstd {
		if s.zstd, err = zstd.NewReader(nil); err != nil {
			return 0, err
		}
		defer s.zstd.Close()
	}
	if err := s.run(); err != nil {
		return 0, err
	}
	return int64(h.VirtualSize), nil
}

// readCluster reads the cluster at s.pos: a data cluster already mapped
// goes straight into the sink's buffer (direct), anything else into
// scratch, which the next read reuses.
func (s *qcow2Stream) readCluster() (b []byte, direct bool, err error) {
	b = s.scratch
	if guest, ok := s.data[s.pos]; ok && int64(s.h.VirtualSize)-guest >= s.csize && !s.isTable(s.pos) {
		if b, err = s.sink.buffer(guest, int(s.csize)); err != nil {
			return nil, false, err
		}
		direct = true
	}
	n, err := io.ReadFull(s.r, b)
	if err == io.ErrUnexpectedEOF {
		b = b[:n] // the last cluster of a file may be short
		err = nil
	}
	if n == 0 && err == nil {
		err = io.EOF
	}
	return b, direct, err
}

// isDirect says whether the cluster at host offset at is a whole data
// cluster already mapped to guest: its bytes can go to the sink as they
// are.
func (s *qcow2Stream) isDirect(at, guest int64) bool {
	g, ok := s.data[at]
	return ok && g == guest && int64(s.h.VirtualSize)-guest >= s.csize && !s.isTable(at)
}

// lendRun sends the run of mapped data clusters at s.pos, contiguous in
// the file and on the guest disk and all within the lender's current
// buffer, to the sink in place: one write of up to a whole buffer, and
// no copy. It reports false when there is no such run here (the cluster
// is metadata, unmapped, or straddles buffers): the copying path reads
// it.
func (s *qcow2Stream) lendRun() (bool, error) {
	if s.lend == nil || s.pos < s.headLen {
		return false, nil
	}
	guest, ok := s.data[s.pos]
	if !ok || !s.isDirect(s.pos, guest) {
		return false, nil
	}
	avail := int64(s.lend.avail())
	if avail < s.csize {
		return false, nil
	}
	k := int64(1)
	for (k+1)*s.csize <= avail && s.isDirect(s.pos+k*s.csize, guest+k*s.csize) {
		k++
	}
	b, release := s.lend.borrow(int(k * s.csize))
	for i := int64(0); i < k; i++ {
		at := s.pos + i*s.csize
		delete(s.data, at)
		// Compressed clusters still to come may need these bytes' neighbours.
		if err := s.handleCompressed(at, b[i*s.csize:(i+1)*s.csize]); err != nil {
			release()
			return false, err
		}
	}
	s.pos += k * s.csize
	return true, s.lendSink.submitBorrowed(guest, b, release)
}

// isTable says whether the cluster at host offset at holds (part of) the
// L1 table or an awaited L2 table.
func (s *qcow2Stream) isTable(at int64) bool {
	if _, ok := s.l2want[at]; ok {
		return true
	}
	l1 := int64(s.h.L1Offset)
	return at+s.csize > l1 && at < l1+int64(s.h.L1Size)*8
}

const (
	l2OffsetMask = 0x00fffffffffffe00
	flagCopied   = uint64(1) << 63
	flagCompress = uint64(1) << 62
	flagZero     = uint64(1)
)

func (s *qcow2Stream) run() error {
	l1Start := int64(s.h.L1Offset)
	l1Bytes := int64(s.h.L1Size) * 8
	var l1buf []byte
	for {
		if done, err := s.lendRun(); err != nil {
			return err
		} else if done {
			continue
		}
		clusterAt := s.pos
		b, direct, err := s.readCluster()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		s.pos += int64(len(b))
		// The L1 table may span clusters.
		if l1Bytes > 0 && clusterAt+int64(len(b)) > l1Start && clusterAt < l1Start+l1Bytes && s.l1 == nil {
			lo := max(l1Start-clusterAt, 0)
			hi := min(l1Start+l1Bytes-clusterAt, int64(len(b)))
			l1buf = append(l1buf, b[lo:hi]...)
			if int64(len(l1buf)) == l1Bytes {
				if err := s.parseL1(l1buf); err != nil {
					return err
				}
				if err := s.replayEarly(); err != nil {
					return err
				}
			}
		}
		if err := s.handle(clusterAt, b, direct); err != nil {
			return err
		}
		if err := s.handleCompressed(clusterAt, b); err != nil {
			return err
		}
	}
	if s.l1 == nil {
		return qcowTruncated("the L1 table")
	}
	if len(s.l2want) > 0 {
		return qcowTruncated(fmt.Sprintf("%d L2 tables", len(s.l2want)))
	}
	if len(s.data) > 0 || len(s.comp) > 0 {
		return qcowTruncated(fmt.Sprintf("%d data clusters", len(s.data)+len(s.comp)))
	}
	return nil
}

func qcowTruncated(what string) error {
	return qerr("the image ended before %s it refers to (truncated, or entries point past the end of the file)", what)
}

func (s *qcow2Stream) parseL1(b []byte) error {
	s.l1 = make([]uint64, s.h.L1Size)
	entriesPerL2 := s.csize / 8
	for i := range s.l1 {
		e := binary.BigEndian.Uint64(b[i*8:])
		s.l1[i] = e
		off := int64(e & l2OffsetMask)
		if off == 0 {
			// No L2 table: all it would map reads as zeros.
			if guest := int64(i) * entriesPerL2 * s.csize; guest < int64(s.h.VirtualSize) {
				if err := s.sink.zero(guest, min(entriesPerL2*s.csize, int64(s.h.VirtualSize)-guest)); err != nil {
					return err
				}
			}
			continue
		}
		if off%s.csize != 0 {
			return qerr("L1 entry %d points to an unaligned L2 table at %d", i, off)
		}
		if _, kept := s.early[off]; off < s.pos-s.csize && !kept {
			return qerr("L2 table at %d comes before the L1 table and was not kept; convert the image with qemu-img first", off)
		}
		s.l2want[off] = int64(i) * entriesPerL2 * s.csize
	}
	return nil
}

// replayEarly handles clusters that passed before the L1 table.
func (s *qcow2Stream) replayEarly() error {
	hosts := make([]int64, 0, len(s.early))
	for h := range s.early {
		hosts = append(hosts, h)
	}
	sort.Slice(hosts, func(i, j int) bool { return hosts[i] < hosts[j] })
	early := s.early
	s.early, s.early_n = map[int64][]byte{}, 0
	for _, h := range hosts {
		if err := s.handle(h, early[h], false); err != nil {
			return err
		}
	}
	return nil
}

// handle routes one cluster: an L2 table, mapped data, or (until we know)
// an early cluster kept aside. direct says b is in the sink's buffer.
func (s *qcow2Stream) handle(at int64, b []byte, direct bool) error {
	if guest, ok := s.l2want[at]; ok {
		delete(s.l2want, at)
		if err := s.parseL2(at, b, guest); err != nil {
			return err
		}
		return s.replayEarly()
	}
	if guest, ok := s.data[at]; ok {
		delete(s.data, at)
		want := min(s.csize, int64(s.h.VirtualSize)-guest)
		if want <= 0 {
			return nil
		}
		n := min(int64(len(b)), want)
		var err error
		if direct {
			err = s.sink.commit(guest, b[:n])
		} else {
			err = put(s.sink, guest, b[:n])
		}
		if err == nil && n < want {
			// A cluster cut short by the end of the file reads as zeros
			// past it, as qemu reads it.
			err = s.sink.zero(guest+n, want-n)
		}
		return err
	}
	if s.l1 == nil || len(s.l2want) > 0 {
		// Not known yet what this is: it may be data of an L2 table
		// still to come. Keep it, within a bound.
		if s.early_n+int64(len(b)) > maxEarly {
			return qerr("more than %d MiB of data precede the tables that map them; convert the image with qemu-img first", maxEarly>>20)
		}
		s.early[at] = bytes.Clone(b)
		s.early_n += int64(len(b))
	}
	return nil
}

func (s *qcow2Stream) parseL2(at int64, b []byte, guestBase int64) error {
	if int64(len(b)) < s.csize {
		return qcowTruncated("an L2 table")
	}
	for i := int64(0); i < s.csize/8; i++ {
		e := binary.BigEndian.Uint64(b[i*8:])
		guest := guestBase + i*s.csize
		if guest >= int64(s.h.VirtualSize) {
			break
		}
		if e&flagCompress != 0 {
			x := 62 - (s.h.ClusterBits - 8)
			host := int64(e & (1<<x - 1))
			sectors := int64((e&^flagCopied&^flagCompress)>>x) + 1
			end := (host &^ 511) + sectors*512
			s.comp = append(s.comp, compressedRef{host: host, length: end - host, guest: guest})
			continue
		}
		host := int64(e & l2OffsetMask)
		if (s.h.Version == 3 && e&flagZero != 0) || host == 0 {
			// Reads as zeros (a zero cluster, or unallocated).
			if err := s.sink.zero(guest, min(s.csize, int64(s.h.VirtualSize)-guest)); err != nil {
				return err
			}
			continue
		}
		if host%s.csize != 0 {
			return qerr("L2 entry points to an unaligned cluster at %d", host)
		}
		if _, kept := s.early[host]; host < s.pos && !kept {
			return qerr("data cluster at %d comes before the L2 table at %d that maps it and was not kept; convert the image with qemu-img first", host, at)
		}
		if _, dup := s.data[host]; dup {
			// qemu never maps one cluster twice in the active tables; the
			// decoder writes each cluster once as it passes.
			return qerr("data cluster at %d is mapped twice; convert the image with qemu-img first", host)
		}
		s.data[host] = guest
	}
	sort.Slice(s.comp, func(i, j int) bool { return s.comp[i].host < s.comp[j].host })
	return nil
}

// handleCompressed decodes every compressed cluster whose bytes have all
// been read. Compressed clusters are packed and may straddle cluster
// boundaries, so recent bytes are kept in tail; ones that came before
// their L2 table are found among the early clusters.
func (s *qcow2Stream) handleCompressed(at int64, b []byte) error {
	if len(s.comp) == 0 && len(s.tail) == 0 {
		return nil
	}
	s.tail = append(s.tail, b...)
	s.tailAt = at + int64(len(b)) - int64(len(s.tail))
	done := 0
	for _, c := range s.comp {
		raw, ok, err := s.gather(c.host, c.length)
		if err != nil {
			return err
		}
		if !ok {
			break // not all of it read yet
		}
		out, err := s.sink.buffer(c.guest, int(s.csize))
		if err != nil {
			return err
		}
		if err := s.inflate(raw, out); err != nil {
			return qerr("compressed cluster for guest offset %d: %v", c.guest, err)
		}
		n := min(int64(len(out)), int64(s.h.VirtualSize)-c.guest)
		if err := s.sink.commit(c.guest, out[:n]); err != nil {
			return err
		}
		done++
	}
	s.comp = s.comp[done:]
	// Keep only what a pending compressed cluster may still need.
	keepFrom := at + int64(len(b)) - 2*s.csize
	if len(s.comp) > 0 {
		keepFrom = min(keepFrom, s.comp[0].host)
	}
	if cut := keepFrom - s.tailAt; cut > 0 && cut <= int64(len(s.tail)) {
		s.tail = append([]byte(nil), s.tail[cut:]...)
		s.tailAt += cut
	}
	return nil
}

// gather returns the file bytes [host, host+n): ok is false when they
// have not all been read yet.
func (s *qcow2Stream) gather(host, n int64) ([]byte, bool, error) {
	end := host + n
	if end > s.pos {
		return nil, false, nil
	}
	if host >= s.tailAt && end <= s.tailAt+int64(len(s.tail)) {
		return s.tail[host-s.tailAt : end-s.tailAt], true, nil
	}
	out := make([]byte, 0, n)
	for off := host; off < end; {
		cl := off / s.csize * s.csize
		var src []byte
		if c, ok := s.early[cl]; ok {
			src = c
		} else if off >= s.tailAt && off < s.tailAt+int64(len(s.tail)) {
			src, cl = s.tail, s.tailAt
		} else {
			return nil, false, qerr("compressed data at %d passed before its L2 table and was not kept; convert the image with qemu-img first", host)
		}
		k := min(end, cl+int64(len(src))) - off
		if k <= 0 {
			return nil, false, qcowTruncated("a compressed cluster")
		}
		out = append(out, src[off-cl:off-cl+k]...)
		off += k
	}
	return out, true, nil
}

// inflate decompresses one cluster into out (csize bytes).
func (s *qcow2Stream) inflate(raw, out []byte) error {
	var zr io.Reader
	if s.zstd != nil {
		// qemu stops decoding once the cluster is full: padding after the
		// frame is not an error.
		d, err := zstd.NewReader(bytes.NewReader(raw), zstd.WithDecoderConcurrency(1))
		if err != nil {
			return err
		}
		defer d.Close()
		zr = d
	} else {
		fr := flate.NewReader(bytes.NewReader(raw))
		defer fr.Close()
		zr = fr
	}
	n, err := io.ReadFull(zr, out)
	if err != nil && err != io.ErrUnexpectedEOF {
		return err
	}
	if int64(n) != s.csize {
		return errors.New("decompressed cluster is short")
	}
	return nil
}
