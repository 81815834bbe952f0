package inventory

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The hardware package's benchmarks (hardware-detect --benchmark cpu mem
// disk) measure with sysbench and fio; goipa runs the same workloads in
// Go and reports them under the same keys:
//   cpu:  per socket (one CPU each) bogomips, cache_size and loops_per_sec
//         on ("cpu", "logical_N"), then loops_per_sec over all CPUs on
//         ("cpu", "logical"); a loop is sysbench's event, the primes up
//         to 15000 by trial division.
//   mem:  per socket bandwidth_<block> on ("cpu", "logical_N"), then
//         threaded_bandwidth_<block> and forked_bandwidth_<block> on
//         ("cpu", "logical"), in MiB/s, for 1K to 2G blocks.
//   disk: per disk standalone_read_1M and standalone_randread_4k _KBps
//         and _IOps (O_DIRECT, 32 requests in flight, as fio's job),
//         then simultaneous_* over all disks when there are several.
//         Reads only: IPA never asks for the destructive variant.
// Every run is bounded by its duration and by ctx.

// Durations the hardware package uses.
const (
	benchCPUTime  = 10 * time.Second
	benchMemTime  = 5 * time.Second
	benchDiskTime = 10 * time.Second
	benchDiskRamp = 5 * time.Second
	sysbenchPrime = 15000
	fioDepth      = 32
)

var benchMemBlocks = []struct {
	name string
	size int64
}{{"1K", 1 << 10}, {"4K", 4 << 10}, {"1M", 1 << 20}, {"16M", 16 << 20}, {"128M", 128 << 20}, {"1G", 1 << 30}, {"2G", 2 << 30}}

func runBenchmarks(ctx context.Context, f *facts, o *options) {
	scale := func(d time.Duration) time.Duration {
		if o.benchTime > 0 {
			return o.benchTime
		}
		return d
	}
	for _, b := range o.benchmarks {
		switch strings.TrimSpace(b) {
		case "cpu":
			cpuBenchmark(ctx, f, o, scale(benchCPUTime))
		case "mem":
			memBenchmark(ctx, f, o, scale(benchMemTime))
		case "disk":
			ramp := benchDiskRamp
			if o.benchTime > 0 {
				ramp = o.benchTime / 2
			}
			diskBenchmark(ctx, f, o, scale(benchDiskTime), ramp)
		case "":
		default:
			o.log.Warn("extra-hardware: unknown benchmark skipped", "benchmark", b)
		}
	}
}

// oneCPUPerSocket is get_one_cpu_per_socket: the first logical CPU of
// each physical package.
func oneCPUPerSocket(o *options) []int {
	seen := map[string]bool{}
	var out []int
	for _, c := range parseCPUList(readTrim(o.path("sys/devices/system/cpu/present"))) {
		pkg := readTrim(o.path(filepath.Join("sys/devices/system/cpu", "cpu"+strconv.Itoa(c), "topology/physical_package_id")))
		if !seen[pkg] {
			seen[pkg] = true
			out = append(out, c)
		}
	}
	if len(out) == 0 {
		out = []int{0}
	}
	return out
}

func logicalCPUs(o *options) int {
	if n := len(parseCPUList(readTrim(o.path("sys/devices/system/cpu/present")))); n > 0 {
		return n
	}
	return runtime.NumCPU()
}

// pinned runs fn on a thread bound to cpu (cpu < 0: anywhere).
func pinned(cpu int, fn func()) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if cpu >= 0 {
		var set unix.CPUSet
		set.Set(cpu)
		_ = unix.SchedSetaffinity(0, &set)
	}
	fn()
}

// primeEvent is one sysbench cpu event.
// benchSink keeps primeEvent's results alive so the compiler cannot drop
// the work being measured.
var benchSink atomic.Int64

func primeEvent() int {
	n := 0
	for c := 3; c <= sysbenchPrime; c++ {
		t := int(sqrtInt(c))
		l := 2
		for ; l <= t; l++ {
			if c%l == 0 {
				break
			}
		}
		if l > t {
			n++
		}
	}
	return n
}

func sqrtInt(n int) int {
	r := 0
	for (r+1)*(r+1) <= n {
		r++
	}
	return r
}

// countEvents runs work on threads CPUs (or one, pinned) until d passed.
func countEvents(ctx context.Context, threads int, cpu int, d time.Duration, work func()) int64 {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var events atomic.Int64
	var wg sync.WaitGroup
	for range threads {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pinned(cpu, func() {
				for ctx.Err() == nil {
					work()
					events.Add(1)
				}
			})
		}()
	}
	wg.Wait()
	return events.Load()
}

func cpuBenchmark(ctx context.Context, f *facts, o *options, d time.Duration) {
	text, _ := os.ReadFile(o.path("proc/cpuinfo"))
	secs := parseCPUInfo(string(text))
	secs2 := d.Seconds()
	perSec := func(events int64) string { return strconv.FormatInt(int64(float64(events)/secs2), 10) }
	for _, c := range oneCPUPerSocket(o) {
		tag := "logical_" + strconv.Itoa(c)
		for _, s := range secs {
			if s["processor"] != strconv.Itoa(c) {
				continue
			}
			if v := s["bogomips"]; v != "" {
				f.add("cpu", tag, "bogomips", strings.ReplaceAll(v, " ", ""))
			}
			if v := s["cache size"]; v != "" {
				f.add("cpu", tag, "cache_size", strings.ReplaceAll(v, " ", ""))
			}
		}
		if ctx.Err() != nil {
			return
		}
		ev := countEvents(ctx, 1, c, d, func() { benchSink.Add(int64(primeEvent())) })
		f.add("cpu", tag, "loops_per_sec", perSec(ev))
	}
	if ctx.Err() != nil {
		return
	}
	f.add("cpu", "logical", "loops_per_sec", perSec(countEvents(ctx, logicalCPUs(o), -1, d, func() { benchSink.Add(int64(primeEvent())) })))
}

// availableMemory is MemAvailable from /proc/meminfo, in bytes.
func availableMemory(o *options) int64 {
	b, _ := os.ReadFile(o.path("proc/meminfo"))
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && (f[0] == "MemAvailable:" || f[0] == "MemFree:") {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	return 0
}

// memBandwidth writes a block-sized buffer over and over on threads
// threads, as sysbench's memory test, and returns MiB/s (integer part).
func memBandwidth(ctx context.Context, threads, cpu int, block int64, d time.Duration) string {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var total atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for range threads {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pinned(cpu, func() {
				buf := make([]byte, block)
				for v := byte(1); ctx.Err() == nil; v++ {
					for i := range buf {
						buf[i] = v
					}
					total.Add(block)
				}
				runtime.KeepAlive(buf)
			})
		}()
	}
	wg.Wait()
	mib := float64(total.Load()) / (1 << 20) / time.Since(start).Seconds()
	return strconv.FormatInt(int64(mib), 10)
}

func memBenchmark(ctx context.Context, f *facts, o *options, d time.Duration) {
	all := logicalCPUs(o)
	fits := func(block int64, threads int) bool {
		// check_mem_size: the blocks must fit in free memory.
		return block*int64(threads) < availableMemory(o)
	}
	for _, c := range oneCPUPerSocket(o) {
		for _, b := range benchMemBlocks {
			if ctx.Err() != nil {
				return
			}
			if fits(b.size, 1) {
				f.add("cpu", "logical_"+strconv.Itoa(c), "bandwidth_"+b.name, memBandwidth(ctx, 1, c, b.size, d))
			}
		}
	}
	for _, kind := range []string{"threaded", "forked"} {
		for _, b := range benchMemBlocks {
			if ctx.Err() != nil {
				return
			}
			if fits(b.size, all) {
				f.add("cpu", "logical", kind+"_bandwidth_"+b.name, memBandwidth(ctx, all, -1, b.size, d))
			}
		}
	}
}

// diskRead is one fio read job's result.
type diskRead struct {
	kbps int64
	iops float64
}

// readJob reads dev with O_DIRECT, fioDepth requests in flight,
// sequentially or at random block-aligned offsets, for ramp+d, and
// counts what was read after the ramp.
func readJob(ctx context.Context, dev string, bs int64, random bool, d, ramp time.Duration) (diskRead, error) {
	fd, err := os.OpenFile(dev, os.O_RDONLY|unix.O_DIRECT|unix.O_CLOEXEC, 0)
	if err != nil {
		return diskRead{}, err
	}
	defer fd.Close()
	size, err := fd.Seek(0, 2)
	if err != nil || size < bs {
		return diskRead{}, fmt.Errorf("%s: size %d: %v", dev, size, err)
	}
	blocks := size / bs
	ctx, cancel := context.WithTimeout(ctx, ramp+d)
	defer cancel()
	measureFrom := time.Now().Add(ramp)
	var bytes, ios atomic.Int64
	var next atomic.Int64
	var wg sync.WaitGroup
	for range fioDepth {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := alignedBlock(bs)
			for ctx.Err() == nil {
				var blk int64
				if random {
					blk = rand.Int64N(blocks)
				} else {
					blk = next.Add(1) % blocks
				}
				n, err := fd.ReadAt(buf, blk*bs)
				if err != nil && n == 0 {
					return
				}
				if time.Now().After(measureFrom) {
					bytes.Add(int64(n))
					ios.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	secs := time.Since(measureFrom).Seconds()
	if secs <= 0 {
		return diskRead{}, fmt.Errorf("%s: cancelled before measuring", dev)
	}
	return diskRead{kbps: int64(float64(bytes.Load()) / 1024 / secs), iops: float64(ios.Load()) / secs}, ctx.Err()
}

// alignedBlock is a buffer O_DIRECT accepts (4 KiB aligned).
func alignedBlock(n int64) []byte {
	b := make([]byte, n+4096)
	off := int((4096 - uintptr(unsafe.Pointer(&b[0]))%4096) % 4096)
	return b[off : off+int(n)]
}

func diskBenchmark(ctx context.Context, f *facts, o *options, d, ramp time.Duration) {
	var disks []string
	for _, it := range f.list {
		if it.Category == "disk" && it.Key == "size" && it.Name != "logical" {
			disks = append(disks, it.Name)
		}
	}
	type job struct {
		mode   string
		bs     string
		size   int64
		random bool
	}
	jobs := []job{{"read", "1M", 1 << 20, false}, {"randread", "4k", 4 << 10, true}}
	report := func(name, prefix string, r diskRead) {
		f.add("disk", name, prefix+"_KBps", strconv.FormatInt(r.kbps, 10))
		f.add("disk", name, prefix+"_IOps", strconv.FormatFloat(r.iops, 'f', -1, 64))
	}
	for _, name := range disks {
		for _, j := range jobs {
			if ctx.Err() != nil {
				return
			}
			r, err := readJob(ctx, "/dev/"+name, j.size, j.random, d, ramp)
			if err != nil && r.iops == 0 {
				o.log.Warn("extra-hardware: disk benchmark", "disk", name, "error", err)
				continue
			}
			report(name, "standalone_"+j.mode+"_"+j.bs, r)
		}
	}
	if len(disks) < 2 {
		return
	}
	for _, j := range jobs {
		results := make([]diskRead, len(disks))
		var wg sync.WaitGroup
		for i, name := range disks {
			wg.Add(1)
			go func() {
				defer wg.Done()
				results[i], _ = readJob(ctx, "/dev/"+name, j.size, j.random, d, ramp)
			}()
		}
		wg.Wait()
		for i, name := range disks {
			if results[i].iops > 0 {
				report(name, "simultaneous_"+j.mode+"_"+j.bs, results[i])
			}
		}
	}
}
