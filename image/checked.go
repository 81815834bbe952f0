package image

import (
	"context"
	"encoding/hex"
	"hash"
	"io"
)

// OpenChecked reads src from its start to its end as image writes do
// (reconnecting from the last byte received when the connection breaks,
// retry deciding how often) and checks what it read against sum while
// the bytes stream past: a mismatch comes back from Read in place of
// io.EOF as *ChecksumMismatchError, so a reader that reads to the end
// never takes a wrong or truncated file as whole. Firmware images go
// through it before anything reaches a device.
func OpenChecked(ctx context.Context, src Source, retry Retry, sum Checksum, onRetry func(error)) (io.ReadCloser, error) {
	h, err := sum.NewHash()
	if err != nil {
		return nil, err
	}
	rr, err := newResumingReader(ctx, src, retry, onRetry)
	if err != nil {
		return nil, err
	}
	return &checkedReader{r: rr, h: h, sum: sum}, nil
}

type checkedReader struct {
	r   io.ReadCloser
	h   hash.Hash
	sum Checksum
}

func (c *checkedReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.h.Write(p[:n])
	if err == io.EOF {
		if got := hex.EncodeToString(c.h.Sum(nil)); got != c.sum.Value {
			return n, &ChecksumMismatchError{Algo: c.sum.Algo, Want: c.sum.Value, Got: got}
		}
	}
	return n, err
}

func (c *checkedReader) Close() error { return c.r.Close() }
