package httpserve

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"runtime/debug"
	"sync"
	"time"
)

// Errors DecodeJSON returns, wrapped with the cause; a body that is not
// JSON, or not of v's shape, comes back as encoding/json's error.
var (
	// ErrTooLarge: the body is over the limit (HTTP 413).
	ErrTooLarge = errors.New("request body too large")
	// ErrBusy: another large body held the turn longer than the wait
	// allows (HTTP 503: try again later).
	ErrBusy = errors.New("another large request body is being read")
	// ErrTrailingData: something other than white space follows the JSON
	// value (HTTP 400).
	ErrTrailingData = errors.New("data after the JSON value")
)

// Bodies reads JSON request bodies of at most Max bytes, bodies over
// Large bytes (and bodies of unknown length) one at a time.
type Bodies struct {
	max, large int64
	// LargeWait bounds how long a large body waits for the one before it.
	// Set it before serving.
	LargeWait time.Duration
	turn      chan struct{}
}

// NewBodies returns a Bodies that refuses bodies over max bytes and reads
// bodies over large bytes one at a time, each waiting at most wait for
// its turn.
func NewBodies(max, large int64, wait time.Duration) *Bodies {
	return &Bodies{max: max, large: large, LargeWait: wait, turn: make(chan struct{}, 1)}
}

// DecodeJSON reads r's body and decodes one JSON value into v. A large
// body holds the large-body turn until release is called: call it once v
// is handed on, since the decoded value is what costs the memory. release
// is never nil and is safe to call twice; on error the turn is already
// given back.
func (b *Bodies) DecodeJSON(w http.ResponseWriter, r *http.Request, v any) (release func(), err error) {
	release = func() {}
	if r.ContentLength > b.max {
		return release, fmt.Errorf("%w: Content-Length %d is over %d bytes", ErrTooLarge, r.ContentLength, b.max)
	}
	if r.ContentLength < 0 || r.ContentLength > b.large {
		if release, err = b.admitLarge(r.Context()); err != nil {
			return func() {}, err
		}
	}
	if err := decode(readBody(w, r, b.max), v); err != nil {
		release()
		return func() {}, err
	}
	return release, nil
}

// readBody reads a whole body, at most max bytes. With a Content-Length
// it makes one buffer of exactly that size: json.Decoder would buffer the
// whole value anyway, in buffers it doubles as they fill, and a 127 MiB
// body then cost three times its size (buffers, their garbage, the
// decoded string) instead of two.
func readBody(w http.ResponseWriter, r *http.Request, max int64) body {
	rd := http.MaxBytesReader(w, r.Body, max)
	if r.ContentLength >= 0 {
		buf := make([]byte, r.ContentLength)
		_, err := io.ReadFull(rd, buf)
		return body{buf, err}
	}
	var buf bytes.Buffer
	_, err := buf.ReadFrom(rd)
	return body{buf.Bytes(), err}
}

// body is what readBody read, and the error that ended the read.
type body struct {
	data []byte
	err  error
}

// decode decodes one JSON value into v; white space may follow it,
// nothing else may (ErrTrailingData).
func decode(b body, v any) error {
	if b.err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(b.err, &tooBig) {
			return fmt.Errorf("%w: %w", ErrTooLarge, b.err)
		}
		return b.err
	}
	err := json.Unmarshal(b.data, v)
	var syntax *json.SyntaxError
	if errors.As(err, &syntax) && syntax.Offset > 0 && syntax.Offset <= int64(len(b.data)) &&
		json.Valid(b.data[:syntax.Offset-1]) {
		// Everything before the bad byte is one whole JSON value: the
		// bad byte comes after it.
		return fmt.Errorf("%w: %w", ErrTrailingData, err)
	}
	return err
}

// admitLarge waits for the large-body turn, at most LargeWait and never
// past the request's end. The returned release is safe to call twice; it
// collects the body's garbage and gives the memory back to the kernel
// before the next large body comes in: otherwise the heap goal the last
// body set lets the next one grow the heap again (three 127 MiB bodies
// one after another reached 637 MiB of RSS instead of 255), and in a RAM
// disk that memory is what the rest of the machine's work needs.
func (b *Bodies) admitLarge(ctx context.Context) (func(), error) {
	ctx, cancel := context.WithTimeout(ctx, b.LargeWait)
	defer cancel()
	select {
	case b.turn <- struct{}{}:
		var once sync.Once
		return func() {
			once.Do(func() {
				debug.FreeOSMemory()
				<-b.turn
			})
		}, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("%w: waited for its turn: %w", ErrBusy, ctx.Err())
	}
}
