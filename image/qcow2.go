package image

import (
	"bytes"
	"compress/flate"
	"container/heap"
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
	if h.ExtendedL2 && h.ClusterBits < 14 {
		return h, qerr("extended L2 entries need clusters of at least 16 KiB, not %d bytes", 1<<h.ClusterBits)
	}
	need := h.l1Need()
	if need*8 > MaxQcow2Metadata {
		return h, &LimitError{What: "qcow2 L1 table", Limit: MaxQcow2Metadata, Need: int64(need) * 8}
	}
	if uint64(h.L1Size) < need {
		return h, qerr("L1 table of %d entries cannot map %d bytes", h.L1Size, h.VirtualSize)
	}
	if int64(h.L1Size)*8 > MaxQcow2Metadata {
		// qemu makes none above 32 MiB; the entries past the virtual
		// size are never read, but the stream would have to pass them.
		return h, &LimitError{What: "qcow2 L1 table", Limit: MaxQcow2Metadata, Need: int64(h.L1Size) * 8}
	}
	return h, nil
}

// l2Entry is the size of an L2 entry: 16 bytes with extended L2 entries
// (the standard entry and a subcluster bitmap), 8 without.
func (h Qcow2Header) l2Entry() uint64 {
	if h.ExtendedL2 {
		return 16
	}
	return 8
}

// l1Need is the number of L1 entries that map the virtual size.
func (h Qcow2Header) l1Need() uint64 {
	csize := uint64(1) << h.ClusterBits
	perL2 := csize * (csize / h.l2Entry())
	return (h.VirtualSize + perL2 - 1) / perL2
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
//
// Memory does not grow with the image: an L2 table is read as it passes
// and turned into runs of data clusters (contiguous in the file and on
// the guest disk: one run per table, or fewer, for what qemu-img
// writes), kept in a heap by file offset until the stream reaches them.
// Everything held for the tables (the L2 tables to come, the runs, the
// compressed clusters to come) is bounded by MaxQcow2Metadata.
type qcow2Stream struct {
	r       io.Reader
	h       Qcow2Header
	csize   int64
	entry   int64 // bytes per L2 entry
	sub     int64 // bytes per subcluster (extended L2)
	pos     int64 // file offset of the next byte of r
	at      int64 // file offset of the cluster being handled
	l1Done  bool
	l2s     []l2Ref // awaited L2 tables, by file offset
	l2i     int     // the next of l2s to come
	runs    runHeap
	comp    compHeap
	early   map[int64][]byte // clusters read before anything mapped them
	early_n int64
	tail    []byte // recent bytes, for compressed clusters that straddle clusters
	tailAt  int64  // file offset of tail[0]
	sink    qcow2Sink
	scratch []byte // the cluster being read, unless it goes straight to the sink

	// lend and lendSink are set when clusters can go to the sink in
	// place: r's bytes from headLen on come from lend.
	lend     lender
	lendSink borrowSink
	headLen  int64
}

// l2Ref is an L2 table to come: its file offset and the first guest
// offset it maps.
type l2Ref struct{ host, guest int64 }

// allSubclusters is a run's mask when every byte of its clusters is
// data (always so without extended L2 entries).
const allSubclusters = ^uint32(0)

// dataRun is n data clusters at file offset host mapped to guest, both
// contiguous. mask names the subclusters that hold data; the others
// read as zeros (a run with a partial mask is one cluster).
type dataRun struct {
	host, guest, n int64
	mask           uint32
}

// runHeap and compHeap are min-heaps by file offset. They go through
// container/heap's Fix only, never its Push and Pop, which would box
// every entry in an interface (an allocation each).
type runHeap []dataRun

func (h runHeap) Len() int           { return len(h) }
func (h runHeap) Less(i, j int) bool { return h[i].host < h[j].host }
func (h runHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *runHeap) Push(x any)        { panic("use add") }
func (h *runHeap) Pop() any          { panic("use removeFirst") }

func (h *runHeap) add(r dataRun) {
	*h = append(*h, r)
	heap.Fix(h, len(*h)-1)
}

func (h *runHeap) removeFirst() {
	n := len(*h) - 1
	(*h)[0] = (*h)[n]
	*h = (*h)[:n]
	if n > 0 {
		heap.Fix(h, 0)
	}
}

type compressedRef struct {
	host, length, guest int64
}

type compHeap []compressedRef

func (h compHeap) Len() int           { return len(h) }
func (h compHeap) Less(i, j int) bool { return h[i].host < h[j].host }
func (h compHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *compHeap) Push(x any)        { panic("use add") }
func (h *compHeap) Pop() any          { panic("use removeFirst") }

func (h *compHeap) add(c compressedRef) {
	*h = append(*h, c)
	heap.Fix(h, len(*h)-1)
}

func (h *compHeap) removeFirst() {
	n := len(*h) - 1
	(*h)[0] = (*h)[n]
	*h = (*h)[:n]
	if n > 0 {
		heap.Fix(h, 0)
	}
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
	s := &qcow2Stream{r: io.MultiReader(bytes.NewReader(head), r), h: h, csize: 1 << h.ClusterBits,
		entry: int64(h.l2Entry()), early: map[int64][]byte{}, sink: sink}
	s.sub = s.csize / 32
	s.scratch = make([]byte, s.csize)
	if l, ok := r.(lender); ok {
		if bs, ok := sink.(borrowSink); ok {
			s.lend, s.lendSink, s.headLen = l, bs, int64(len(head))
		}
	}
	if err := s.run(); err != nil {
		return 0, err
	}
	return int64(h.VirtualSize), nil
}

// nextRun is the mapped data cluster the stream reaches first.
func (s *qcow2Stream) nextRun() (dataRun, bool) {
	if len(s.runs) == 0 {
		return dataRun{}, false
	}
	return s.runs[0], true
}

// takeCluster consumes the first cluster of the first run, which is at
// file offset at; a run that also maps it (qemu never maps a cluster
// twice in the active tables) is an error.
func (s *qcow2Stream) takeCluster(at int64) error {
	r := &s.runs[0]
	r.host += s.csize
	r.guest += s.csize
	r.n--
	if r.n == 0 {
		s.runs.removeFirst()
	} else {
		heap.Fix(&s.runs, 0)
	}
	if len(s.runs) > 0 && s.runs[0].host <= at {
		return qerr("data cluster at %d is mapped twice; convert the image with qemu-img first", at)
	}
	return nil
}

// isDirect says whether the cluster at file offset at is a whole data
// cluster, all of it data, mapped next: its bytes can go to the sink as
// they are.
func (s *qcow2Stream) isDirect(at int64) (guest int64, ok bool) {
	r, ok := s.nextRun()
	if !ok || r.host != at || r.mask != allSubclusters || int64(s.h.VirtualSize)-r.guest < s.csize || s.isTable(at) {
		return 0, false
	}
	return r.guest, true
}

// readCluster reads the cluster at s.pos: a data cluster already mapped
// goes straight into the sink's buffer (direct), anything else into
// scratch, which the next read reuses.
func (s *qcow2Stream) readCluster() (b []byte, direct bool, err error) {
	b = s.scratch
	if guest, ok := s.isDirect(s.pos); ok {
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

// lendRun sends the mapped data clusters at s.pos, contiguous in the
// file and on the guest disk and all within the lender's current buffer,
// to the sink in place: one write of up to a whole buffer, and no copy.
// It reports false when there is no such run here (the cluster is
// metadata, unmapped, partly data, or straddles buffers): the copying
// path reads it.
func (s *qcow2Stream) lendRun() (bool, error) {
	if s.lend == nil || s.pos < s.headLen {
		return false, nil
	}
	guest, ok := s.isDirect(s.pos)
	if !ok {
		return false, nil
	}
	avail := int64(s.lend.avail())
	if avail < s.csize {
		return false, nil
	}
	k := int64(0)
	for (k+1)*s.csize <= avail {
		at := s.pos + k*s.csize
		g, ok := s.isDirect(at)
		if !ok || g != guest+k*s.csize {
			break
		}
		if err := s.takeCluster(at); err != nil {
			return false, err
		}
		k++
	}
	b, release := s.lend.borrow(int(k * s.csize))
	for i := int64(0); i < k; i++ {
		// Compressed clusters still to come may need these bytes' neighbours.
		if err := s.handleCompressed(s.pos+i*s.csize, b[i*s.csize:(i+1)*s.csize]); err != nil {
			release()
			return false, err
		}
	}
	s.pos += k * s.csize
	return true, s.lendSink.submitBorrowed(guest, b, release)
}

// isTable says whether the cluster at file offset at holds (part of) the
// L1 table or the next awaited L2 table.
func (s *qcow2Stream) isTable(at int64) bool {
	if s.l2i < len(s.l2s) && s.l2s[s.l2i].host == at {
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
	// Only the entries that map the virtual size are kept.
	l1Bytes := int64(s.h.l1Need()) * 8
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
		s.at = clusterAt
		// The L1 table may span clusters.
		if !s.l1Done && clusterAt+int64(len(b)) > l1Start && clusterAt < l1Start+l1Bytes {
			lo := max(l1Start-clusterAt, 0)
			hi := min(l1Start+l1Bytes-clusterAt, int64(len(b)))
			l1buf = append(l1buf, b[lo:hi]...)
		}
		if !s.l1Done && int64(len(l1buf)) == l1Bytes && clusterAt+int64(len(b)) > l1Start {
			if err := s.parseL1(l1buf); err != nil {
				return err
			}
			l1buf = nil
			if err := s.catchUp(); err != nil {
				return err
			}
		}
		if err := s.handle(clusterAt, b, direct); err != nil {
			return err
		}
		if err := s.handleCompressed(clusterAt, b); err != nil {
			return err
		}
	}
	if !s.l1Done {
		return qcowTruncated("the L1 table")
	}
	if n := len(s.l2s) - s.l2i; n > 0 {
		return qcowTruncated(fmt.Sprintf("%d L2 tables", n))
	}
	if len(s.runs) > 0 || len(s.comp) > 0 {
		return qcowTruncated(fmt.Sprintf("%d runs of data clusters", len(s.runs)+len(s.comp)))
	}
	return nil
}

func qcowTruncated(what string) error {
	return qerr("the image ended before %s it refers to (truncated, or entries point past the end of the file)", what)
}

// Bytes per entry of the tables the decoder holds.
const (
	l2RefBytes   = 16
	dataRunBytes = 32
	compRefBytes = 24
)

// metaBytes is the memory the tables to come take.
func (s *qcow2Stream) metaBytes() int64 {
	return int64(cap(s.l2s))*l2RefBytes + int64(cap(s.runs))*dataRunBytes + int64(cap(s.comp))*compRefBytes
}

func (s *qcow2Stream) checkMeta() error {
	if n := s.metaBytes(); n > MaxQcow2Metadata {
		return &LimitError{What: "qcow2 metadata", Limit: MaxQcow2Metadata, Need: n}
	}
	return nil
}

// growFor doubles a full table of entries of size bytes (currently of
// capacity c), or grows it as far as the limit leaves room for: the room
// is checked before it is allocated, and doubling keeps what all the
// growing allocates under about twice the final table.
func (s *qcow2Stream) growFor(c int, size int64) (int, error) {
	n := max(2*c, 1024)
	if room := (MaxQcow2Metadata - s.metaBytes()) / size; int64(n-c) > room {
		if room < int64(c/8+1) { // not worth a copy
			return 0, &LimitError{What: "qcow2 metadata", Limit: MaxQcow2Metadata}
		}
		n = c + int(room)
	}
	return n, nil
}

func (s *qcow2Stream) pushRun(r dataRun) error {
	if len(s.runs) == cap(s.runs) {
		n, err := s.growFor(cap(s.runs), dataRunBytes)
		if err != nil {
			return err
		}
		s.runs = append(make(runHeap, 0, n), s.runs...)
	}
	s.runs.add(r)
	return nil
}

func (s *qcow2Stream) pushComp(c compressedRef) error {
	if len(s.comp) == cap(s.comp) {
		n, err := s.growFor(cap(s.comp), compRefBytes)
		if err != nil {
			return err
		}
		s.comp = append(make(compHeap, 0, n), s.comp...)
	}
	s.comp.add(c)
	return nil
}

func (s *qcow2Stream) parseL1(b []byte) error {
	s.l1Done = true
	perL2 := s.csize / s.entry * s.csize
	n := 0
	for i := 0; i+8 <= len(b); i += 8 {
		if binary.BigEndian.Uint64(b[i:])&l2OffsetMask != 0 {
			n++
		}
	}
	s.l2s = make([]l2Ref, 0, n)
	for i := int64(0); i < int64(len(b))/8; i++ {
		e := binary.BigEndian.Uint64(b[i*8:])
		off := int64(e & l2OffsetMask)
		guest := i * perL2
		if off == 0 {
			// No L2 table: all it would map reads as zeros.
			if guest < int64(s.h.VirtualSize) {
				if err := s.sink.zero(guest, min(perL2, int64(s.h.VirtualSize)-guest)); err != nil {
					return err
				}
			}
			continue
		}
		if off%s.csize != 0 {
			return qerr("L1 entry %d points to an unaligned L2 table at %d", i, off)
		}
		if _, kept := s.early[off]; off < s.at && !kept {
			return qerr("L2 table at %d comes before the L1 table and was not kept; convert the image with qemu-img first", off)
		}
		s.l2s = append(s.l2s, l2Ref{host: off, guest: guest})
	}
	sort.Slice(s.l2s, func(i, j int) bool { return s.l2s[i].host < s.l2s[j].host })
	for i := 1; i < len(s.l2s); i++ {
		if s.l2s[i].host == s.l2s[i-1].host {
			return qerr("L2 table at %d is referenced twice; convert the image with qemu-img first", s.l2s[i].host)
		}
	}
	return s.checkMeta()
}

// catchUp handles what the tables now map behind the cluster being
// handled: L2 tables and data clusters kept among the early ones.
func (s *qcow2Stream) catchUp() error {
	for {
		if s.l2i < len(s.l2s) && s.l2s[s.l2i].host < s.at {
			t := s.l2s[s.l2i]
			s.l2i++
			b := s.early[t.host]
			s.dropEarly(t.host)
			if err := s.parseL2(t.host, b, t.guest); err != nil {
				return err
			}
			continue
		}
		if r, ok := s.nextRun(); ok && r.host < s.at {
			b, kept := s.early[r.host]
			if !kept {
				return qerr("data cluster at %d passed before its L2 table and was not kept; convert the image with qemu-img first", r.host)
			}
			s.dropEarly(r.host)
			if err := s.takeCluster(r.host); err != nil {
				return err
			}
			if err := s.deliver(r.guest, b, false, r.mask); err != nil {
				return err
			}
			continue
		}
		break
	}
	if s.l1Done && s.l2i == len(s.l2s) && len(s.comp) == 0 && len(s.early) > 0 {
		// Every table has passed: nothing kept can be data any more.
		s.early, s.early_n = map[int64][]byte{}, 0
	}
	return nil
}

func (s *qcow2Stream) dropEarly(at int64) {
	s.early_n -= int64(len(s.early[at]))
	delete(s.early, at)
}

// handle routes the cluster at at: an L2 table, mapped data, or (until
// we know) an early cluster kept aside. direct says b is in the sink's
// buffer.
func (s *qcow2Stream) handle(at int64, b []byte, direct bool) error {
	if s.l2i < len(s.l2s) && s.l2s[s.l2i].host == at {
		t := s.l2s[s.l2i]
		s.l2i++
		if err := s.parseL2(at, b, t.guest); err != nil {
			return err
		}
		if r, ok := s.nextRun(); ok && r.host == at {
			return qerr("cluster at %d is both an L2 table and data; convert the image with qemu-img first", at)
		}
		return s.catchUp()
	}
	if r, ok := s.nextRun(); ok && r.host == at {
		if err := s.takeCluster(at); err != nil {
			return err
		}
		return s.deliver(r.guest, b, direct, r.mask)
	}
	if !s.l1Done || s.l2i < len(s.l2s) {
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

// deliver commits the data cluster b for guest offset guest, its
// subclusters outside mask as zeros. direct says b is the sink's buffer.
func (s *qcow2Stream) deliver(guest int64, b []byte, direct bool, mask uint32) error {
	want := min(s.csize, int64(s.h.VirtualSize)-guest)
	if want <= 0 {
		return nil
	}
	n := min(int64(len(b)), want)
	dst := b[:n]
	if !direct {
		var err error
		if dst, err = s.sink.buffer(guest, int(n)); err != nil {
			return err
		}
		copy(dst, b[:n])
	}
	if mask != allSubclusters {
		// The cluster's bytes outside its allocated subclusters are
		// whatever was there before; they read as zeros.
		for j := int64(0); j < 32; j++ {
			if mask&(1<<j) == 0 && j*s.sub < n {
				clear(dst[j*s.sub : min((j+1)*s.sub, n)])
			}
		}
	}
	err := s.sink.commit(guest, dst)
	if err == nil && n < want {
		// A cluster cut short by the end of the file reads as zeros
		// past it, as qemu reads it.
		err = s.sink.zero(guest+n, want-n)
	}
	return err
}

func (s *qcow2Stream) parseL2(at int64, b []byte, guestBase int64) error {
	if int64(len(b)) < s.csize {
		return qcowTruncated("an L2 table")
	}
	var cur dataRun // the run being gathered
	flush := func() error {
		if cur.n == 0 {
			return nil
		}
		err := s.pushRun(cur)
		cur = dataRun{}
		return err
	}
	for i := int64(0); i < s.csize/s.entry; i++ {
		e := binary.BigEndian.Uint64(b[i*s.entry:])
		guest := guestBase + i*s.csize
		if guest >= int64(s.h.VirtualSize) {
			break
		}
		if e&flagCompress != 0 {
			// Extended entries' bitmaps do not apply to compressed clusters.
			x := 62 - (s.h.ClusterBits - 8)
			host := int64(e & (1<<x - 1))
			sectors := int64((e&^flagCopied&^flagCompress)>>x) + 1
			end := (host &^ 511) + sectors*512
			if err := s.pushComp(compressedRef{host: host, length: end - host, guest: guest}); err != nil {
				return err
			}
			continue
		}
		host := int64(e & l2OffsetMask)
		mask := allSubclusters
		zero := host == 0 || (s.h.Version == 3 && e&flagZero != 0)
		if s.h.ExtendedL2 {
			bm := binary.BigEndian.Uint64(b[i*s.entry+8:])
			alloc, zeros := uint32(bm), uint32(bm>>32)
			if alloc&zeros != 0 {
				return qerr("L2 entry for guest offset %d marks subclusters both allocated and zero", guest)
			}
			// Unallocated subclusters read as zeros: there is no
			// backing file.
			mask, zero = alloc, host == 0 || alloc == 0
		}
		if zero {
			if err := s.sink.zero(guest, min(s.csize, int64(s.h.VirtualSize)-guest)); err != nil {
				return err
			}
			continue
		}
		if host%s.csize != 0 {
			return qerr("L2 entry points to an unaligned cluster at %d", host)
		}
		if _, kept := s.early[host]; host < s.at && !kept {
			return qerr("data cluster at %d comes before the L2 table at %d that maps it and was not kept; convert the image with qemu-img first", host, at)
		}
		if cur.n > 0 && mask == allSubclusters && cur.mask == allSubclusters &&
			host == cur.host+cur.n*s.csize && guest == cur.guest+cur.n*s.csize {
			cur.n++
			continue
		}
		if err := flush(); err != nil {
			return err
		}
		cur = dataRun{host: host, guest: guest, n: 1, mask: mask}
		if mask != allSubclusters {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	return flush()
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
	for len(s.comp) > 0 {
		c := s.comp[0]
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
		s.comp.removeFirst()
	}
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
	if s.h.CompressionZstd {
		// qemu stops decoding once the cluster is full: padding after the
		// frame is not an error. A cluster is at most 2 MiB: a frame
		// asking for a larger window is not qemu's.
		d, err := zstd.NewReader(bytes.NewReader(raw), zstd.WithDecoderConcurrency(1),
			zstd.WithDecoderMaxWindow(4<<20), zstd.WithDecoderMaxMemory(4<<20))
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
