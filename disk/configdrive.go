package disk

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"fmt"
	"io"
)

// ConfigDriveError: Ironic's config drive cannot be used (IPA answers
// InvalidCommandParamsError); Details says why.
type ConfigDriveError struct{ Details string }

func (e *ConfigDriveError) Error() string { return e.Details }

// DecodeConfigDrive gunzips a config drive as Ironic sends it (it may
// also come plain) and checks its size: at most ConfigDriveSize, the
// partition IPA gives it. Errors are *ConfigDriveError.
func DecodeConfigDrive(data []byte) ([]byte, error) {
	iso := data
	if len(data) >= 2 && data[0] == 0x1f && data[1] == 0x8b {
		zr, err := gzip.NewReader(bytes.NewReader(data))
		if err != nil {
			return nil, configDriveError("config drive is not valid gzip: %v", err)
		}
		if iso, err = io.ReadAll(io.LimitReader(zr, ConfigDriveSize+1)); err != nil {
			return nil, configDriveError("config drive is not valid gzip: %v", err)
		}
	}
	if len(iso) > ConfigDriveSize {
		return nil, configDriveError("config drive is larger than %d MiB", ConfigDriveSize>>20)
	}
	if len(iso) == 0 {
		return nil, configDriveError("config drive is empty")
	}
	return iso, nil
}

func configDriveError(format string, a ...any) *ConfigDriveError {
	return &ConfigDriveError{Details: fmt.Sprintf(format, a...)}
}

// MaxConfigDriveDownload is the most goipa reads of a config drive
// fetched from a URL: a ConfigDriveSize drive as base64 text with line
// breaks (4/3 of it, plus some) fits; a server that sends more is cut
// off there.
const MaxConfigDriveDownload = ConfigDriveSize/3*4 + ConfigDriveSize/8

// ReadConfigDrive reads a config drive as a URL serves it, the way IPA
// decodes it: base64 text or raw bytes, either of them gzipped or not.
// It streams: at most MaxConfigDriveDownload bytes are read from r and
// at most ConfigDriveSize+1 decoded bytes are held, whatever r sends (a
// gzip bomb included). Base64 is recognised by its first bytes (an ISO
// starts with its zeroed system area, gzip with 0x1f 0x8b; neither is
// base64 text). Errors about the data are *ConfigDriveError; a failing
// r is returned wrapped.
func ReadConfigDrive(r io.Reader) ([]byte, error) {
	counted := &limitedReader{r: r, left: MaxConfigDriveDownload}
	br := bufio.NewReader(counted)
	var src io.Reader = br
	if head, _ := br.Peek(64); len(head) > 0 && isBase64Text(head) {
		src = bufio.NewReader(base64.NewDecoder(base64.StdEncoding, &base64Text{r: br}))
	}
	sb := bufio.NewReader(src)
	if magic, _ := sb.Peek(2); len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		zr, err := gzip.NewReader(sb)
		if err != nil {
			return nil, readError(counted, configDriveError("config drive is not valid gzip: %v", err))
		}
		src = zr
	} else {
		src = sb
	}
	iso, err := io.ReadAll(io.LimitReader(src, ConfigDriveSize+1))
	switch {
	case counted.over:
		return nil, configDriveError("config drive download is larger than %d MiB", MaxConfigDriveDownload>>20)
	case len(iso) > ConfigDriveSize:
		return nil, configDriveError("config drive is larger than %d MiB", ConfigDriveSize>>20)
	case err != nil:
		return nil, readError(counted, configDriveError("config drive cannot be decoded: %v", err))
	case len(iso) == 0:
		return nil, configDriveError("config drive is empty")
	}
	return iso, nil
}

// readError prefers the transport's error (a stalled or cut download)
// over what decoding made of the truncated data.
func readError(c *limitedReader, decodeErr error) error {
	if c.err != nil && c.err != io.EOF {
		return fmt.Errorf("reading the config drive: %w", c.err)
	}
	return decodeErr
}

// limitedReader stops after left bytes and says it did when more came.
type limitedReader struct {
	r    io.Reader
	left int64
	over bool
	err  error
}

func (l *limitedReader) Read(p []byte) (int, error) {
	if l.left <= 0 {
		var one [1]byte
		if n, _ := l.r.Read(one[:]); n > 0 {
			l.over = true
		}
		return 0, io.EOF
	}
	if int64(len(p)) > l.left {
		p = p[:l.left]
	}
	n, err := l.r.Read(p)
	l.left -= int64(n)
	if err != nil {
		l.err = err
	}
	return n, err
}

// isBase64Text: the first bytes are all base64 alphabet or white space.
func isBase64Text(b []byte) bool {
	for _, c := range b {
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '+' || c == '/' || c == '=' || c == '\n' || c == '\r' || c == ' ' || c == '\t') {
			return false
		}
	}
	return true
}

// base64Text drops the white space base64 text may carry (Python's
// b64decode skips it; Go's decoder only skips line breaks).
type base64Text struct{ r io.Reader }

func (b *base64Text) Read(p []byte) (int, error) {
	for {
		n, err := b.r.Read(p)
		j := 0
		for _, c := range p[:n] {
			if c != ' ' && c != '\t' {
				p[j] = c
				j++
			}
		}
		if j > 0 || err != nil {
			return j, err
		}
	}
}
