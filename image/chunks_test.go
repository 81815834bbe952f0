package image

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestStreamChunksCloseStopsAStalledRead: a server that sends part of a
// chunk and then nothing: Close must end the read-ahead goroutine (it
// waits for it) rather than hang with the connection.
func TestStreamChunksCloseStopsAStalledRead(t *testing.T) {
	stop := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "100000000")
		w.Write(make([]byte, 1<<20))
		w.(http.Flusher).Flush()
		select {
		case <-stop:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(stop)
	d, err := openDownload(context.Background(), &HTTPSource{URL: srv.URL, Client: srv.Client()}, 1, Retry{Attempts: 1}, nil, t.Logf)
	require.NoError(t, err)
	require.IsType(t, &streamChunks{}, d)
	time.Sleep(100 * time.Millisecond) // the goroutine is inside its read now
	closed := make(chan error, 1)
	go func() { closed <- d.Close() }()
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("Close hung on a stalled read")
	}
}

// TestStreamChunksInOrder: chunks come whole and in order, the last one
// short, and each buffer handed back is read into again (bounded).
func TestStreamChunksInOrder(t *testing.T) {
	img := randomImage(t, 3*rangeChunk+12345)
	srv := httptest.NewServer(&rangeServer{img: img, ignoreRange: true})
	defer srv.Close()
	d, err := openDownload(context.Background(), &HTTPSource{URL: srv.URL, Client: srv.Client()}, 4, Retry{Attempts: 1}, nil, t.Logf)
	require.NoError(t, err)
	defer d.Close()
	bufs := map[*byte]bool{}
	var got []byte
	for {
		b, release, err := d.nextChunk()
		if err == io.EOF {
			break
		}
		require.NoError(t, err)
		assert.True(t, len(b) == rangeChunk || len(got)+len(b) == len(img), "a short chunk before the end: %d", len(b))
		assert.True(t, aligned(b), "chunks go to O_DIRECT writers as they are")
		got = append(got, b...)
		bufs[&b[:1][0]] = true
		release()
	}
	assert.Equal(t, img, got)
	assert.LessOrEqual(t, len(bufs), streamChunkBufs)
	off, size := d.progress()
	assert.Equal(t, int64(len(img)), off)
	assert.Equal(t, int64(len(img)), size)
}
