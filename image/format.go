package image

import (
	"bufio"
	"bytes"
	"compress/bzip2"
	"errors"
	"fmt"
	"io"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

// UnsupportedFormatError names a disk image format goipa cannot write.
type UnsupportedFormatError struct{ Format string }

func (e *UnsupportedFormatError) Error() string {
	return fmt.Sprintf("unsupported image format %s: goipa writes raw images (compressed or not)", e.Format)
}

// FormatNotPermittedError says Ironic's permitted_image_formats excludes it.
type FormatNotPermittedError struct {
	Format    string
	Permitted []string
}

func (e *FormatNotPermittedError) Error() string {
	return fmt.Sprintf("image format %s is not permitted (permitted: %v)", e.Format, e.Permitted)
}

// compression names the compression of a stream from its first bytes
// ("" for none).
func compression(magic []byte) string {
	switch {
	case bytes.HasPrefix(magic, []byte{0x1f, 0x8b}):
		return "gzip"
	case bytes.HasPrefix(magic, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		return "zstd"
	case bytes.HasPrefix(magic, []byte{0xfd, '7', 'z', 'X', 'Z', 0x00}):
		return "xz"
	case bytes.HasPrefix(magic, []byte("BZh")):
		return "bzip2"
	}
	return ""
}

// decompress unwraps gzip, zstd, xz and bzip2 by their magic bytes and
// returns the inner stream and the compression's name ("" for none).
func decompress(r *bufio.Reader) (io.Reader, string, func(), error) {
	magic, _ := r.Peek(6)
	switch c := compression(magic); c {
	case "gzip":
		zr, err := gzip.NewReader(r)
		if err != nil {
			return nil, c, nil, fmt.Errorf("gzip: %w", err)
		}
		return zr, c, func() { zr.Close() }, nil
	case "zstd":
		// MaxMemory is the window bound for a stream; it also bounds a
		// single-segment frame, whose window is its whole content.
		zr, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(2),
			zstd.WithDecoderMaxWindow(MaxZstdWindow), zstd.WithDecoderMaxMemory(MaxZstdWindow))
		if err != nil {
			return nil, c, nil, fmt.Errorf("zstd: %w", err)
		}
		return zstdLimited{zr}, c, zr.Close, nil
	case "xz":
		zr, err := xz.NewReader(newXZGuard(r, MaxXZDictionary))
		if err != nil {
			return nil, c, nil, fmt.Errorf("xz: %w", err)
		}
		return zr, c, nil, nil
	case "bzip2":
		return bzip2.NewReader(r), c, nil, nil
	}
	return r, "", nil, nil
}

// detectFormat names the disk image format from its first bytes.
func detectFormat(head []byte) string {
	switch {
	case bytes.HasPrefix(head, []byte("QFI\xfb")):
		return "qcow2"
	case bytes.HasPrefix(head, []byte("KDMV")), bytes.HasPrefix(head, []byte("# Disk DescriptorFile")):
		return "vmdk"
	case bytes.HasPrefix(head, []byte("vhdxfile")):
		return "vhdx"
	case bytes.HasPrefix(head, []byte("conectix")):
		return "vhd"
	case bytes.HasPrefix(head, []byte("<<< Oracle VM VirtualBox Disk Image >>>")):
		return "vdi"
	}
	return "raw"
}

// zstdLimited names a frame's window above MaxZstdWindow as a
// *LimitError.
type zstdLimited struct{ d *zstd.Decoder }

func (z zstdLimited) Read(b []byte) (int, error) {
	n, err := z.d.Read(b)
	if errors.Is(err, zstd.ErrWindowSizeExceeded) || errors.Is(err, zstd.ErrDecoderSizeExceeded) {
		err = fmt.Errorf("zstd: %w", &LimitError{What: "zstd window", Limit: MaxZstdWindow})
	}
	return n, err
}
