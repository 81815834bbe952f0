package image

import (
	"encoding/binary"
	"errors"
	"io"
)

// xzGuard passes an xz stream through and refuses it, before the bytes
// reach the decoder, when a block asks for an LZMA2 dictionary above
// limit: the decoder allocates the dictionary a block header names (up
// to 4 GiB) before it decodes a byte, and its DictCap option is a floor,
// not a cap. It follows the container (stream header, block headers,
// LZMA2 chunk headers, index, footer, stream padding) without decoding
// anything; what it cannot follow it leaves to the decoder to refuse.
type xzGuard struct {
	r     io.Reader
	limit int64
	err   error

	pos        int64  // bytes of the stream seen
	buf        []byte // bytes being collected for next
	want       int    // ... this many
	skip       int64  // bytes to pass before next
	next       func() error
	check      int64 // bytes of a block's check
	blockStart int64
	indexStart int64
	varint     uint64
	shift      uint
}

func newXZGuard(r io.Reader, limit int64) *xzGuard {
	g := &xzGuard{r: r, limit: limit}
	g.collect(12, g.streamHeader)
	return g
}

var errXZFraming = errors.New("xz: malformed container")

func (g *xzGuard) Read(p []byte) (int, error) {
	if g.err != nil {
		return 0, g.err
	}
	n, err := g.r.Read(p)
	if ferr := g.feed(p[:n]); ferr != nil {
		// Withhold the bytes: the decoder must not see the header.
		g.err = ferr
		return 0, ferr
	}
	return n, err
}

func (g *xzGuard) collect(n int, then func() error) {
	g.buf, g.want, g.skip, g.next = g.buf[:0], n, 0, then
}

func (g *xzGuard) skipThen(n int64, then func() error) {
	g.buf, g.want, g.skip, g.next = g.buf[:0], 0, n, then
}

func (g *xzGuard) feed(b []byte) error {
	for len(b) > 0 && g.next != nil {
		if g.skip > 0 {
			k := min(g.skip, int64(len(b)))
			g.skip -= k
			g.pos += k
			b = b[k:]
		} else if len(g.buf) < g.want {
			k := min(g.want-len(g.buf), len(b))
			g.buf = append(g.buf, b[:k]...)
			g.pos += int64(k)
			b = b[k:]
		}
		if g.skip == 0 && len(g.buf) == g.want {
			if err := g.next(); err != nil {
				g.next = nil
				return err
			}
		}
	}
	return nil
}

// streamHeader reads the check type from the 12-byte stream header.
func (g *xzGuard) streamHeader() error {
	if id := g.buf[7] & 0x0f; id == 0 {
		g.check = 0
	} else {
		g.check = 4 << ((id - 1) / 3)
	}
	return g.blockOrIndex()
}

func (g *xzGuard) blockOrIndex() error {
	g.collect(1, func() error {
		if g.buf[0] == 0 {
			g.indexStart = g.pos - 1
			return g.readVarint(g.indexRecords)
		}
		g.blockStart = g.pos - 1
		g.collect((int(g.buf[0])+1)*4-1, g.blockHeader)
		return nil
	})
	return nil
}

// blockHeader checks the filters' LZMA2 dictionary size (the header
// without its size byte is in buf).
func (g *xzGuard) blockHeader() error {
	h := g.buf
	flags := h[0]
	i := 1
	uvarint := func() (uint64, bool) {
		if i >= len(h) {
			return 0, false
		}
		v, n := binary.Uvarint(h[i:])
		if n <= 0 {
			return 0, false
		}
		i += n
		return v, true
	}
	if flags&0x40 != 0 {
		if _, ok := uvarint(); !ok {
			return errXZFraming
		}
	}
	if flags&0x80 != 0 {
		if _, ok := uvarint(); !ok {
			return errXZFraming
		}
	}
	for f := 0; f <= int(flags&3); f++ {
		id, ok := uvarint()
		if !ok {
			return errXZFraming
		}
		size, ok := uvarint()
		if !ok || size > uint64(len(h)-i) {
			return errXZFraming
		}
		if id == 0x21 && size == 1 {
			if dict := lzma2Dict(h[i]); dict > g.limit {
				return &LimitError{What: "xz dictionary", Limit: g.limit, Need: dict}
			}
		}
		i += int(size)
	}
	return g.chunk()
}

// lzma2Dict decodes LZMA2's dictionary size byte.
func lzma2Dict(b byte) int64 {
	switch {
	case b > 40:
		return 1 << 40 // invalid; the decoder refuses it too
	case b == 40:
		return 1<<32 - 1
	}
	return int64(2|b&1) << (b/2 + 11)
}

// chunk follows one LZMA2 chunk header and skips its data.
func (g *xzGuard) chunk() error {
	g.collect(1, func() error {
		c := g.buf[0]
		switch {
		case c == 0: // end of the block's data: padding, then the check
			pad := (4 - (g.pos-g.blockStart)%4) % 4
			g.skipThen(pad+g.check, g.blockOrIndex)
		case c == 1 || c == 2: // uncompressed chunk
			g.collect(2, func() error {
				g.skipThen(int64(binary.BigEndian.Uint16(g.buf))+1, g.chunk)
				return nil
			})
		case c >= 0x80: // LZMA chunk, with a properties byte from 0xc0
			n := 4
			if c >= 0xc0 {
				n = 5
			}
			g.collect(n, func() error {
				g.skipThen(int64(binary.BigEndian.Uint16(g.buf[2:4]))+1, g.chunk)
				return nil
			})
		default:
			return errXZFraming
		}
		return nil
	})
	return nil
}

// readVarint reads a multibyte integer a byte at a time.
func (g *xzGuard) readVarint(then func(uint64) error) error {
	g.varint, g.shift = 0, 0
	var step func() error
	step = func() error {
		b := g.buf[0]
		if g.shift > 63 {
			return errXZFraming
		}
		g.varint |= uint64(b&0x7f) << g.shift
		g.shift += 7
		if b&0x80 != 0 {
			g.collect(1, step)
			return nil
		}
		return then(g.varint)
	}
	g.collect(1, step)
	return nil
}

// indexRecords skips the index's records (two integers each), its
// padding and CRC, and the stream footer.
func (g *xzGuard) indexRecords(n uint64) error {
	if n == 0 {
		pad := (4 - (g.pos-g.indexStart)%4) % 4
		g.skipThen(pad+4+12, g.afterStream)
		return nil
	}
	return g.readVarint(func(uint64) error {
		return g.readVarint(func(uint64) error { return g.indexRecords(n - 1) })
	})
}

// afterStream reads stream padding (zeros, four at a time) or the next
// stream's header.
func (g *xzGuard) afterStream() error {
	g.collect(1, func() error {
		switch g.buf[0] {
		case 0:
			g.skipThen(3, g.afterStream)
		case 0xfd:
			g.collect(11, func() error {
				g.buf = append([]byte{0xfd}, g.buf...)
				return g.streamHeader()
			})
		default:
			g.next = nil // not xz: the decoder says so
		}
		return nil
	})
	return nil
}
