package image

import "fmt"

// Memory limits for what an image server sends: no real image comes
// near them, and above them an image is refused with a *LimitError
// before the memory is taken. SECURITY.md lists them with the tests that
// show them.
const (
	// MaxQcow2Metadata bounds the qcow2 tables the decoder holds at once
	// (the L1 table, the L2 tables still to come and the mappings they
	// made that the stream has not reached yet). qemu's own L1 limit is
	// 32 MiB.
	MaxQcow2Metadata = 64 << 20
	// MaxXZDictionary bounds an xz (LZMA2) dictionary: xz -9 uses 64 MiB.
	MaxXZDictionary = 64 << 20
	// MaxZstdWindow bounds a zstd window: zstd --long uses 128 MiB, the
	// levels up to 19 at most 8 MiB.
	MaxZstdWindow = 128 << 20
)

// LimitError says an image needs more memory of some kind than goipa
// grants any image.
type LimitError struct {
	What  string // "qcow2 metadata", "xz dictionary", "zstd window"
	Limit int64
	Need  int64 // 0 when not known
}

func (e *LimitError) Error() string {
	if e.Need > 0 {
		return fmt.Sprintf("%s of %d bytes is above goipa's limit of %d MiB", e.What, e.Need, e.Limit>>20)
	}
	return fmt.Sprintf("%s is above goipa's limit of %d MiB", e.What, e.Limit>>20)
}
