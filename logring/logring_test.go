package logring

import (
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestBufferKeepsNewestWholeLines(t *testing.T) {
	for _, tc := range []struct {
		name   string
		max    int
		writes []string
		want   string
	}{
		{"under the limit", 100, []string{"a\n", "b\n"}, "a\nb\n"},
		{"exactly the limit", 4, []string{"a\n", "b\n"}, "a\nb\n"},
		{"oldest line dropped", 4, []string{"a\n", "b\n", "c\n"}, "b\nc\n"},
		{"cut at a line boundary", 20, []string{"line-0\n", "line-1\n", "line-2\n", "line-3\n"}, "line-2\nline-3\n"},
		{"a write of several lines", 8, []string{"one\ntwo\nthree\n"}, "three\n"},
		{"a line over the limit goes whole", 4, []string{"a\n", "longer than four\n"}, ""},
		{"an unfinished line is kept", 10, []string{"old line\n", "new"}, "new"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := New(tc.max)
			for _, w := range tc.writes {
				n, err := b.Write([]byte(w))
				assert.NoError(t, err)
				assert.Equal(t, len(w), n, "a write always takes all of p")
			}
			got := string(b.Bytes())
			assert.Equal(t, tc.want, got)
			assert.LessOrEqual(t, len(got), tc.max)
		})
	}
}

func TestBufferBytesIsACopy(t *testing.T) {
	b := New(100)
	b.Write([]byte("kept\n"))
	got := b.Bytes()
	got[0] = 'X'
	assert.Equal(t, "kept\n", string(b.Bytes()))
}

// TestBufferConcurrentWriters: lines written at once from many goroutines
// (slog handlers share the buffer) arrive whole; run it with -race.
func TestBufferConcurrentWriters(t *testing.T) {
	b := New(1 << 20)
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 100; i++ {
				fmt.Fprintf(b, "writer %d line %d\n", g, i)
			}
		}()
	}
	wg.Wait()
	lines := strings.Split(strings.TrimSuffix(string(b.Bytes()), "\n"), "\n")
	assert.Len(t, lines, 800)
	for _, l := range lines {
		assert.Regexp(t, `^writer \d line \d+$`, l)
	}
}
