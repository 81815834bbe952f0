package image

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"runtime"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/goipa/goipa/internal/testenv"
)

// compressWith pipes data through a compressor (read from a pipe, so
// it cannot shrink its window to the input's size).
func compressWith(t *testing.T, data []byte, name string, args ...string) []byte {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Stdin = bytes.NewReader(data)
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	require.NoError(t, cmd.Run(), "%s %v: %s", name, args, stderr.String())
	return out.Bytes()
}

// decodeAll decompresses b as the image writer does and reports the
// bytes allocated on the way.
func decodeAll(b []byte) (out []byte, allocated uint64, err error) {
	var m0, m1 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&m0)
	r, _, closer, err := decompress(bufio.NewReader(bytes.NewReader(b)))
	if err == nil {
		out, err = io.ReadAll(r)
		if closer != nil {
			closer()
		}
	}
	runtime.ReadMemStats(&m1)
	return out, m1.TotalAlloc - m0.TotalAlloc, err
}

// TestDecompressionLimits: an xz dictionary or a zstd window above the
// limit is refused with a *LimitError before its memory is taken; at the
// limit (xz -9's 64 MiB, zstd --long=27's 128 MiB) the image decodes.
func TestDecompressionLimits(t *testing.T) {
	testenv.NeedCommands(t, "xz", "zstd")
	data := make([]byte, 1<<20)
	rand.Read(data)
	data = append(data, make([]byte, 1<<20)...)
	for _, tc := range []struct {
		name    string
		args    []string
		refused bool
	}{
		{"xz-dict-128MiB", []string{"xz", "--lzma2=dict=128MiB"}, true},
		{"xz-second-stream-128MiB", nil, true},
		{"xz-9", []string{"xz", "-9"}, false},
		{"xz-threads", []string{"xz", "-T2", "--block-size=256KiB"}, false},
		{"xz-check-sha256", []string{"xz", "--check=sha256", "--block-size=300KiB"}, false},
		{"xz-check-none", []string{"xz", "--check=none"}, false},
		{"xz-check-crc32", []string{"xz", "--check=crc32", "--lzma2=preset=1"}, false},
		{"zstd-long-28", []string{"zstd", "-q", "--long=28", "-c"}, true},
		{"zstd-long-30", []string{"zstd", "-q", "--long=30", "-c"}, true},
		{"zstd-long-27", []string{"zstd", "-q", "--long=27", "-c"}, false},
		{"zstd-19", []string{"zstd", "-q", "-19", "-c"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b []byte
			if tc.args != nil {
				b = compressWith(t, data, tc.args[0], tc.args[1:]...)
			} else {
				// Two streams: the first harmless, the second asking for
				// a large dictionary.
				b = append(compressWith(t, data[:1000], "xz"), compressWith(t, data[1000:], "xz", "--lzma2=dict=128MiB")...)
			}
			out, allocated, err := decodeAll(b)
			if !tc.refused {
				require.NoError(t, err)
				assert.True(t, bytes.Equal(data, out), "decoded bytes differ")
				return
			}
			var le *LimitError
			require.True(t, errors.As(err, &le), "want a *LimitError, got %v", err)
			assert.Less(t, allocated, uint64(32<<20), "refused before the dictionary or window was allocated")
			t.Logf("%v (allocated %d KiB)", err, allocated>>10)
		})
	}
}

func FuzzXZGuard(f *testing.F) {
	for _, args := range [][]string{{"xz"}, {"xz", "-T2", "--block-size=4KiB"}, {"xz", "--check=sha256"}, {"xz", "--check=none"}} {
		if b, err := exec.Command("sh", "-c", "head -c 20000 /dev/zero | tr '\\0' a | "+args[0]+" "+joinArgs(args[1:])).Output(); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte{0xfd, '7', 'z', 'X', 'Z', 0, 0, 1, 0x69, 0x22, 0xde, 0x36, 0x02, 0x00, 0x21, 0x01, 0x28})
	f.Fuzz(func(t *testing.T, b []byte) {
		// Whole or a byte at a time, the guard decides the same.
		whole, err1 := io.ReadAll(newXZGuard(bytes.NewReader(b), 16<<20))
		bytewise, err2 := io.ReadAll(newXZGuard(&oneByteReader{b: b}, 16<<20))
		if fmt.Sprint(err1) != fmt.Sprint(err2) {
			t.Fatalf("chunking changed the outcome: %v / %v", err1, err2)
		}
		if err1 == nil && (!bytes.Equal(whole, b) || !bytes.Equal(bytewise, b)) {
			t.Fatal("guard changed the bytes")
		}
		var le *LimitError
		if errors.As(err1, &le) && le.Need <= 16<<20 {
			t.Fatalf("refused a dictionary within the limit: %v", err1)
		}
	})
}

type oneByteReader struct{ b []byte }

func (o *oneByteReader) Read(p []byte) (int, error) {
	if len(o.b) == 0 {
		return 0, io.EOF
	}
	if len(p) == 0 {
		return 0, nil
	}
	p[0] = o.b[0]
	o.b = o.b[1:]
	return 1, nil
}

func joinArgs(a []string) string {
	var s string
	for _, x := range a {
		s += " " + x
	}
	return s
}
