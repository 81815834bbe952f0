// Package image gets an OS image onto a disk: it fetches it (HTTP or a
// local file), verifies the checksum while the bytes stream past,
// unwraps compression by magic bytes, and writes it so that the disk
// never boots a half-written or unverified image: the image's first MiB
// is held back and written only after everything else is verified and
// synced, and any failure leaves the first and last MiB zeroed.
package image

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	dl "github.com/goipa/goipa/download"
)

// Source is where image bytes come from. Open returns the bytes from
// offset on, so a dropped connection resumes where it broke instead of
// starting again from byte 0.
type Source interface {
	Open(ctx context.Context, offset int64) (body io.ReadCloser, size int64, err error)
	String() string
}

// HTTPStatusError is a non-success HTTP answer. 4xx answers are final;
// 5xx are retried.
type HTTPStatusError struct {
	URL    string
	Status int
}

func (e *HTTPStatusError) Error() string {
	return fmt.Sprintf("GET %s: HTTP %d %s", e.URL, e.Status, http.StatusText(e.Status))
}

// Retriable reports whether trying again may help.
func (e *HTTPStatusError) Retriable() bool {
	return e.Status >= 500 || e.Status == 429 || e.Status == 408
}

// HTTPOptions configures the HTTP client the way Ironic's image_info and
// the agent's parameters ask.
type HTTPOptions struct {
	Proxies       map[string]string // "http", "https"
	NoProxy       string
	Insecure      bool
	CAFile        string
	Timeout       time.Duration // connect and stall timeout
	BasicUser     string
	BasicPassword string
	Authorization string // a full Authorization header value
	// Parallel is how many range requests fetch a large image at once
	// from a server that serves ranges (0: DefaultParallel; 1: one stream).
	Parallel int
}

// NewHTTPClient builds the client (package download): connection
// reuse, the proxies Ironic passes (so a pull-through cache can serve a
// rack), TLS as configured.
func NewHTTPClient(o HTTPOptions) (*http.Client, error) {
	return dl.NewClient(dl.WithCA(o.CAFile), dl.WithInsecure(o.Insecure),
		dl.WithProxies(o.Proxies, o.NoProxy), dl.WithTimeout(o.Timeout))
}

// HTTPSource reads an image over HTTP(S).
type HTTPSource struct {
	URL    string
	Client *http.Client
	Opts   HTTPOptions
}

func (s *HTTPSource) String() string { return s.URL }

// Open GETs the image from offset on. A server that ignores Range gets
// its first offset bytes discarded, so the caller still sees the bytes
// it asked for.
func (s *HTTPSource) Open(ctx context.Context, offset int64) (io.ReadCloser, int64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.URL, nil)
	if err != nil {
		return nil, 0, err
	}
	if offset > 0 {
		req.Header.Set("Range", fmt.Sprintf("bytes=%d-", offset))
	}
	s.authorize(req)
	resp, err := s.Client.Do(req)
	if err != nil {
		return nil, 0, err
	}
	total := int64(-1)
	switch {
	case resp.StatusCode == http.StatusPartialContent && offset > 0:
		// Content-Range: bytes start-end/total
		cr := resp.Header.Get("Content-Range")
		start, _, complete, err := parseContentRange(cr)
		if err != nil || start != offset {
			resp.Body.Close()
			return nil, 0, fmt.Errorf("GET %s: bad Content-Range %q for offset %d", s.URL, cr, offset)
		}
		return resp.Body, complete, nil
	case resp.StatusCode == http.StatusOK:
		total = resp.ContentLength
		if offset > 0 {
			if _, err := io.CopyN(io.Discard, resp.Body, offset); err != nil {
				resp.Body.Close()
				return nil, 0, fmt.Errorf("GET %s: skipping to byte %d: %w", s.URL, offset, err)
			}
		}
		return resp.Body, total, nil
	default:
		io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
		resp.Body.Close()
		return nil, 0, &HTTPStatusError{URL: s.URL, Status: resp.StatusCode}
	}
}

func (s *HTTPSource) authorize(req *http.Request) {
	switch {
	case s.Opts.Authorization != "":
		req.Header.Set("Authorization", s.Opts.Authorization)
	case s.Opts.BasicUser != "":
		req.SetBasicAuth(s.Opts.BasicUser, s.Opts.BasicPassword)
	}
}

// FileSource reads a local file (file:// URLs), for debugging.
type FileSource struct{ Path string }

func (s *FileSource) String() string { return "file://" + s.Path }

// Open opens the file at offset.
func (s *FileSource) Open(ctx context.Context, offset int64) (io.ReadCloser, int64, error) {
	f, err := os.Open(s.Path)
	if err != nil {
		return nil, 0, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, err
	}
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		f.Close()
		return nil, 0, err
	}
	return f, st.Size(), nil
}

// NewSource picks the source for a URL.
func NewSource(rawURL string, client *http.Client, o HTTPOptions) (Source, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("image URL %q: %w", rawURL, err)
	}
	switch u.Scheme {
	case "http", "https":
		return &HTTPSource{URL: rawURL, Client: client, Opts: o}, nil
	case "file":
		return &FileSource{Path: u.Path}, nil
	case "oci":
		return ResolveOCI(context.Background(), rawURL, client, o.Insecure)
	}
	return nil, fmt.Errorf("image URL %q: unsupported scheme %q", rawURL, u.Scheme)
}

// Retry says how often and how long to retry a broken download, as
// IPA's image_download_connection_retries and _retry_interval do: an
// attempt that brought new bytes resumes at once and starts the count
// again; only attempts that brought none wait (about Interval) and
// count, and Attempts of them in a row end the download.
type Retry struct {
	Attempts int           // consecutive retries without progress
	Interval time.Duration // base wait before each of them
	// sleep waits d unless ctx ends first (nil: a timer); tests count
	// the waits through it.
	sleep func(ctx context.Context, d time.Duration) error
}

// resumingReader reads a Source to the end, reconnecting from the last
// byte received when the connection drops or a 5xx comes back.
type resumingReader struct {
	ctx    context.Context
	src    Source
	retry  Retry
	body   io.ReadCloser
	offset int64
	size   int64 // -1 unknown
	// openSize is size as the first answer gave it, for readers on other
	// goroutines (size changes under Read).
	openSize int64
	tries    int
	onRetry  func(error)
	// failedAt is the offset the last failure left the download at:
	// reaching past it is progress.
	failedAt int64
}

func newResumingReader(ctx context.Context, src Source, retry Retry, onRetry func(error)) (*resumingReader, error) {
	r := &resumingReader{ctx: ctx, src: src, retry: retry, size: -1, onRetry: onRetry}
	if err := r.reopen(); err != nil {
		return nil, err
	}
	r.openSize = r.size
	return r, nil
}

func (r *resumingReader) reopen() error {
	for {
		body, size, err := r.src.Open(r.ctx, r.offset)
		if err == nil {
			r.body = body
			if size >= 0 {
				if r.size >= 0 && size != r.size {
					body.Close()
					return fmt.Errorf("%s changed size during the download (%d, then %d bytes)", r.src, r.size, size)
				}
				r.size = size
			}
			return nil
		}
		if err := r.backoff(err, false); err != nil {
			return err
		}
	}
}

// progressed says whether the download got past where the last failure
// left it, and remembers offset as that place.
func (r *resumingReader) progressed(offset int64) bool {
	p := offset > r.failedAt
	r.failedAt = offset
	return p
}

// backoff decides whether err is worth another try, and waits before it
// unless the attempt that failed made progress: a server or proxy that
// cuts every response after some bytes costs a reconnection each time,
// not a back-off.
func (r *resumingReader) backoff(err error, progressed bool) error {
	var se *HTTPStatusError
	if errors.As(err, &se) && !se.Retriable() {
		return err
	}
	if r.ctx.Err() != nil {
		return r.ctx.Err()
	}
	if r.onRetry != nil && (progressed || r.tries < r.retry.Attempts) {
		r.onRetry(err)
	}
	if progressed {
		r.tries = 0
		return nil
	}
	if r.tries >= r.retry.Attempts {
		return fmt.Errorf("giving up after %d retries without progress: %w", r.tries, err)
	}
	r.tries++
	wait := r.retry.Interval/2 + time.Duration(rand.Int64N(int64(r.retry.Interval/2)+1))
	if r.retry.sleep != nil {
		return r.retry.sleep(r.ctx, wait)
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-r.ctx.Done():
		return r.ctx.Err()
	case <-t.C:
		return nil
	}
}

func (r *resumingReader) Read(p []byte) (int, error) {
	for {
		n, err := r.body.Read(p)
		r.offset += int64(n)
		if err == nil || n > 0 && err != io.EOF {
			return n, nil
		}
		if err == io.EOF {
			if r.size < 0 || r.offset == r.size {
				return n, io.EOF
			}
			err = fmt.Errorf("connection closed at byte %d of %d", r.offset, r.size)
		} else {
			err = fmt.Errorf("connection broken at byte %d of %d: %w", r.offset, r.size, err)
		}
		r.body.Close()
		if r.ctx.Err() != nil {
			return n, r.ctx.Err()
		}
		if berr := r.backoff(err, r.progressed(r.offset)); berr != nil {
			return n, berr
		}
		if rerr := r.reopen(); rerr != nil {
			return n, rerr
		}
		if n > 0 {
			return n, nil
		}
	}
}

func (r *resumingReader) Close() error {
	if r.body != nil {
		return r.body.Close()
	}
	return nil
}

// isURL reports whether s is an http(s) URL.
func isURL(s string) bool {
	return strings.HasPrefix(s, "http://") || strings.HasPrefix(s, "https://")
}
