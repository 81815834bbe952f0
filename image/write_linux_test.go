package image

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/goipa/goipa/internal/testenv"
)

func loopDev(t testing.TB, size int64) string {
	t.Helper()
	f, err := os.CreateTemp("/dev/shm", "goipa-image-test-")
	require.NoError(t, err)
	name := f.Name()
	f.Close()
	t.Cleanup(func() { os.Remove(name) })
	require.NoError(t, os.Truncate(name, size))
	out, err := exec.Command("losetup", "--find", "--show", name).CombinedOutput()
	require.NoError(t, err, "%s", out)
	dev := strings.TrimSpace(string(out))
	t.Cleanup(func() { exec.Command("losetup", "--detach", dev).Run() })
	return dev
}

func randomImage(t testing.TB, n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	b[510], b[511] = 0x55, 0xaa // a boot signature, so "bootable" is visible
	return b
}

func shaHex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func readBack(t testing.TB, dev string, off, n int64) []byte {
	f, err := os.Open(dev)
	require.NoError(t, err)
	defer f.Close()
	b := make([]byte, n)
	_, err = f.ReadAt(b, off)
	require.NoError(t, err)
	return b
}

func fill(t testing.TB, dev string, size int64) {
	f, err := os.OpenFile(dev, os.O_WRONLY, 0)
	require.NoError(t, err)
	defer f.Close()
	_, err = f.Write(bytes.Repeat([]byte{0xcc}, int(size)))
	require.NoError(t, err)
}

// server serves img with optional faults.
type server struct {
	img         []byte
	dropAfter   int64 // close the connection after this many bytes (first request only)
	ignoreRange bool
	status      int
	requests    atomic.Int32
}

func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	n := s.requests.Add(1)
	if s.status != 0 {
		w.WriteHeader(s.status)
		return
	}
	start := int64(0)
	if rg := r.Header.Get("Range"); rg != "" && !s.ignoreRange {
		start, _ = strconv.ParseInt(strings.TrimSuffix(strings.TrimPrefix(rg, "bytes="), "-"), 10, 64)
		w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", start, len(s.img)-1, len(s.img)))
		w.Header().Set("Content-Length", strconv.Itoa(len(s.img)-int(start)))
		w.WriteHeader(http.StatusPartialContent)
	} else {
		w.Header().Set("Content-Length", strconv.Itoa(len(s.img)))
	}
	body := s.img[start:]
	if n == 1 && s.dropAfter > 0 {
		w.Write(body[:s.dropAfter])
		hj, _ := w.(http.Hijacker)
		conn, _, _ := hj.Hijack()
		conn.Close()
		return
	}
	w.Write(body)
}

func req(dev, url, sum string) Request {
	return Request{URLs: []string{url}, Device: dev, Checksum: ChecksumSpec{OSHashAlgo: "sha256", OSHashValue: sum},
		Retry: Retry{Attempts: 3, Interval: 50 * time.Millisecond}}
}

func TestWriteRawAndCompressed(t *testing.T) {
	testenv.NeedRoot(t)
	testenv.NeedCommands(t, "losetup")
	img := randomImage(t, 9<<20+123)
	var gz, zs bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(img)
	zw.Close()
	ze, _ := zstd.NewWriter(&zs)
	ze.Write(img)
	ze.Close()
	for _, tc := range []struct {
		name, comp string
		body       []byte
	}{{"raw", "", img}, {"gzip", "gzip", gz.Bytes()}, {"zstd", "zstd", zs.Bytes()}} {
		t.Run(tc.name, func(t *testing.T) {
			dev := loopDev(t, 16<<20)
			fill(t, dev, 16<<20)
			srv := httptest.NewServer(&server{img: tc.body})
			defer srv.Close()
			p := &Progress{}
			r := req(dev, srv.URL+"/img", shaHex(tc.body))
			r.Progress = p
			res, err := Write(context.Background(), r)
			require.NoError(t, err)
			assert.Equal(t, tc.comp, res.Compression)
			assert.Equal(t, "raw", res.Format)
			assert.Equal(t, int64(len(img)), res.Written)
			assert.Equal(t, shaHex(img), shaHex(readBack(t, dev, 0, int64(len(img)))), "the device holds exactly the image")
			assert.Equal(t, int64(len(tc.body)), p.Downloaded.Load())
			for stage, sec := range p.Stages() {
				if stage == "decompress" && tc.comp == "" {
					continue // raw: only chunking, maybe no measurable time
				}
				assert.Positive(t, sec, "busy time of the %s stage", stage)
			}
			assert.Less(t, p.Stages()["hash"], time.Since(time.Unix(0, p.started.Load())).Seconds(), "a stage's time is part of the whole")
		})
	}
}

func TestWriteResumesDroppedConnection(t *testing.T) {
	testenv.NeedRoot(t)
	testenv.NeedCommands(t, "losetup")
	img := randomImage(t, 6<<20)
	for _, ignoreRange := range []bool{false, true} {
		dev := loopDev(t, 8<<20)
		s := &server{img: img, dropAfter: 3<<20 + 17, ignoreRange: ignoreRange}
		srv := httptest.NewServer(s)
		p := &Progress{}
		r := req(dev, srv.URL+"/img", shaHex(img))
		r.Progress = p
		_, err := Write(context.Background(), r)
		srv.Close()
		require.NoError(t, err, "ignoreRange=%v", ignoreRange)
		assert.Equal(t, int32(2), s.requests.Load(), "one reconnection")
		assert.Equal(t, int64(1), p.Retries.Load())
		assert.Equal(t, shaHex(img), shaHex(readBack(t, dev, 0, int64(len(img)))))
	}
}

// TestFailuresLeaveTheDiskUnbootable: each failure has its own error,
// and the old boot sector and backup GPT are gone.
func TestFailuresLeaveTheDiskUnbootable(t *testing.T) {
	testenv.NeedRoot(t)
	testenv.NeedCommands(t, "losetup")
	img := randomImage(t, 5<<20)
	qcow := append([]byte("QFI\xfb"), make([]byte, 1<<20)...)
	for _, tc := range []struct {
		name   string
		srv    *server
		sum    string
		devMiB int64
		check  func(error) bool
	}{
		{"bad checksum", &server{img: img}, strings.Repeat("0", 64), 8, func(e error) bool { var x *ChecksumMismatchError; return errors.As(e, &x) }},
		{"404", &server{status: 404}, shaHex(img), 8, func(e error) bool { var x *HTTPStatusError; return errors.As(e, &x) && x.Status == 404 }},
		{"500 after retries", &server{status: 500}, shaHex(img), 8, func(e error) bool { return strings.Contains(e.Error(), "giving up") }},
		{"too large", &server{img: img}, shaHex(img), 4, func(e error) bool { var x *TooLargeError; return errors.As(e, &x) }},
		{"qcow2", &server{img: qcow}, shaHex(qcow), 8, func(e error) bool { var x *FormatNotPermittedError; return errors.As(e, &x) }},
		{"garbage gzip", &server{img: append([]byte{0x1f, 0x8b, 8, 0}, bytes.Repeat([]byte{7}, 1000)...)}, "", 8, func(e error) bool { return strings.Contains(e.Error(), "gzip") }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dev := loopDev(t, tc.devMiB<<20)
			fill(t, dev, tc.devMiB<<20)
			srv := httptest.NewServer(tc.srv)
			defer srv.Close()
			sum := tc.sum
			if sum == "" {
				sum = shaHex(tc.srv.img)
			}
			_, err := Write(context.Background(), req(dev, srv.URL+"/img", sum))
			require.Error(t, err)
			assert.True(t, tc.check(err), "unexpected error: %v", err)
			size := tc.devMiB << 20
			assert.Equal(t, make([]byte, 1<<20), readBack(t, dev, 0, 1<<20), "first MiB zeroed")
			assert.Equal(t, make([]byte, 1<<20), readBack(t, dev, size-(1<<20), 1<<20), "last MiB zeroed")
		})
	}
}

func TestWriteRefusesMountedDevice(t *testing.T) {
	testenv.NeedRoot(t)
	testenv.NeedCommands(t, "losetup", "mkfs.ext4", "mount", "umount")
	dev := loopDev(t, 16<<20)
	out, err := exec.Command("mkfs.ext4", "-q", "-F", dev).CombinedOutput()
	require.NoError(t, err, "%s", out)
	mnt := t.TempDir()
	require.NoError(t, exec.Command("mount", dev, mnt).Run())
	defer exec.Command("umount", mnt).Run()
	_, err = Write(context.Background(), req(dev, "http://127.0.0.1:1/x", strings.Repeat("a", 64)))
	require.ErrorContains(t, err, "mounted")
}

// BenchmarkWriteHTTPRaw writes a random image over loopback HTTP to a
// loop device in /dev/shm, sha256 on, against the limits measured in the
// same run: the raw HTTP read and a one-goroutine sha256 of the bytes.
func BenchmarkWriteHTTPRaw(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("needs root for loop devices")
	}
	const size = 512 << 20
	img := randomImage(b, size)
	sum := shaHex(img)
	srv := httptest.NewServer(&server{img: img})
	defer srv.Close()
	dev := loopDev(b, size+(1<<20))
	b.Run("limit-http-read", func(b *testing.B) {
		b.SetBytes(size)
		for i := 0; i < b.N; i++ {
			resp, err := http.Get(srv.URL)
			require.NoError(b, err)
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	})
	b.Run("limit-sha256", func(b *testing.B) {
		b.SetBytes(size)
		for i := 0; i < b.N; i++ {
			sha256.Sum256(img)
		}
	})
	b.Run("goipa-write", func(b *testing.B) {
		b.SetBytes(size)
		for i := 0; i < b.N; i++ {
			if _, err := Write(context.Background(), req(dev, srv.URL, sum)); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func sparseImage(t testing.TB, size int, dataEvery int) []byte {
	img := make([]byte, size)
	for off := 0; off < size; off += dataEvery {
		rand.Read(img[off : off+min(64<<10, size-off)])
	}
	img[510], img[511] = 0x55, 0xaa
	return img
}

// TestSparseWriteLeavesNoOldData: zero blocks of the image are zeroed
// with an offload, not skipped, so the old data under them is gone.
func TestSparseWriteLeavesNoOldData(t *testing.T) {
	testenv.NeedRoot(t)
	testenv.NeedCommands(t, "losetup")
	img := sparseImage(t, 12<<20, 640<<10) // 10% data
	dev := loopDev(t, 16<<20)
	fill(t, dev, 16<<20)
	srv := httptest.NewServer(&server{img: img})
	defer srv.Close()
	_, err := Write(context.Background(), req(dev, srv.URL, shaHex(img)))
	require.NoError(t, err)
	assert.Equal(t, shaHex(img), shaHex(readBack(t, dev, 0, int64(len(img)))), "old 0xcc bytes survived under the image's zeros")

	// On a device known to be zeroed, zero blocks are skipped outright.
	dev2 := loopDev(t, 16<<20)
	r := req(dev2, srv.URL, shaHex(img))
	r.KnownZeroed = true
	_, err = Write(context.Background(), r)
	require.NoError(t, err)
	assert.Equal(t, shaHex(img), shaHex(readBack(t, dev2, 0, int64(len(img)))))
}

// BenchmarkWriteSparse: a 512 MiB image with 10% data, against dd of the
// same image (every byte written) to the same device.
func BenchmarkWriteSparse(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("needs root for loop devices")
	}
	const size = 512 << 20
	img := sparseImage(b, size, 640<<10)
	srv := httptest.NewServer(&server{img: img})
	defer srv.Close()
	dev := loopDev(b, size+(1<<20))
	src, err := os.CreateTemp("/dev/shm", "goipa-sparse-src-")
	require.NoError(b, err)
	src.Write(img)
	src.Close()
	defer os.Remove(src.Name())
	b.Run("limit-dd-every-byte", func(b *testing.B) {
		b.SetBytes(size)
		for i := 0; i < b.N; i++ {
			require.NoError(b, exec.Command("dd", "if="+src.Name(), "of="+dev, "bs=4M", "conv=fsync", "status=none").Run())
		}
	})
	b.Run("goipa-sparse", func(b *testing.B) {
		b.SetBytes(size)
		for i := 0; i < b.N; i++ {
			if _, err := Write(context.Background(), req(dev, srv.URL, shaHex(img))); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// TestLyingAndBrokenServers: a server that declares more bytes than it
// sends, one that declares fewer, and one whose TLS certificate is not
// trusted each fail with their own error, leaving the disk unbootable.
func TestLyingAndBrokenServers(t *testing.T) {
	testenv.NeedRoot(t)
	testenv.NeedCommands(t, "losetup")
	img := randomImage(t, 3<<20)
	for _, tc := range []struct {
		name  string
		srv   *httptest.Server
		check func(error) bool
	}{
		{"declares more than it sends", httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", strconv.Itoa(len(img)))
			w.Write(img[:len(img)/2]) // then the handler returns: the connection is cut
		})), func(e error) bool {
			return strings.Contains(e.Error(), "giving up") && strings.Contains(e.Error(), "at byte")
		}},
		{"declares fewer than the image", httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", strconv.Itoa(len(img)/2))
			w.Write(img[:len(img)/2])
		})), func(e error) bool { var x *ChecksumMismatchError; return errors.As(e, &x) }},
		{"untrusted TLS certificate", httptest.NewTLSServer(&server{img: img}), func(e error) bool { return strings.Contains(e.Error(), "certificate") }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			defer tc.srv.Close()
			dev := loopDev(t, 4<<20)
			fill(t, dev, 4<<20)
			r := req(dev, tc.srv.URL+"/img", shaHex(img))
			r.Retry = Retry{Attempts: 2, Interval: 10 * time.Millisecond}
			_, err := Write(context.Background(), r)
			require.Error(t, err)
			assert.True(t, tc.check(err), "unexpected error: %v", err)
			assert.Equal(t, make([]byte, 1<<20), readBack(t, dev, 0, 1<<20), "first MiB zeroed")
			assert.Equal(t, make([]byte, 1<<20), readBack(t, dev, 3<<20, 1<<20), "last MiB zeroed")
		})
	}
}

// TestHashPriority: the hashing goroutine's thread runs at hashNice
// when the process may raise it (root, as the agent runs).
func TestHashPriority(t *testing.T) {
	testenv.NeedRoot(t)
	got := make(chan int, 1)
	go func() {
		hashPriority()
		// The raw syscall returns 20 - nice.
		p, err := unix.Getpriority(unix.PRIO_PROCESS, unix.Gettid())
		require.NoError(t, err)
		got <- 20 - p
	}()
	assert.Equal(t, hashNice, <-got)
}
