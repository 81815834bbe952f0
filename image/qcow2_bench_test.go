package image

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
)

// BenchmarkQcow2Preallocated32G decodes a 32 GiB qcow2 image with 4 KiB
// clusters and preallocated metadata (8 Mi data clusters, 16 Ki L2
// tables), made sparse by qemu-img, and reports the decoder's peak RSS
// and heap: they must not grow with the image. Run alone:
//
//	go test ./image -run '^$' -bench Qcow2Preallocated32G -benchtime 1x
func BenchmarkQcow2Preallocated32G(b *testing.B) {
	if _, err := exec.LookPath("qemu-img"); err != nil {
		b.Skip("needs qemu-img")
	}
	dir := b.TempDir()
	if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
		d, err := os.MkdirTemp("/dev/shm", "goipa-bench-")
		if err == nil {
			dir = d
			b.Cleanup(func() { os.RemoveAll(d) })
		}
	}
	q := filepath.Join(dir, "32g.qcow2")
	if out, err := exec.Command("qemu-img", "create", "-q", "-f", "qcow2", "-o", "cluster_size=4k,preallocation=metadata", q, "32G").CombinedOutput(); err != nil {
		b.Fatalf("qemu-img: %v: %s", err, out)
	}
	b.ResetTimer()
	for range b.N {
		runtime.GC()
		// Reset the peak RSS (VmHWM) to the current RSS.
		os.WriteFile("/proc/self/clear_refs", []byte("5"), 0)
		var peakHeap uint64
		f, err := os.Open(q)
		if err != nil {
			b.Fatal(err)
		}
		head := make([]byte, 512)
		if _, err := f.Read(head); err != nil {
			b.Fatal(err)
		}
		var data int64
		n := 0
		_, err = decodeQcow2(head, bufio.NewReaderSize(f, 4<<20), func(e Extent) error {
			data += int64(len(e.Data))
			if n++; n%(1<<18) == 0 {
				var m runtime.MemStats
				runtime.ReadMemStats(&m)
				peakHeap = max(peakHeap, m.HeapInuse)
			}
			return nil
		})
		f.Close()
		if err != nil {
			b.Fatal(err)
		}
		b.SetBytes(32 << 30)
		b.ReportMetric(float64(vmHWM())/(1<<20), "peak-RSS-MiB")
		b.ReportMetric(float64(peakHeap)/(1<<20), "sampled-heap-MiB")
	}
}

// vmHWM is the process's peak resident set in bytes.
func vmHWM() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return -1
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return n << 10
		}
	}
	return -1
}
