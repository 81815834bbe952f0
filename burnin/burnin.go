// Package burnin stresses a node's CPUs, memory and network before it
// goes into service, as IPA's burn-in clean steps do with stress-ng and
// fio, but inside the agent: every worker checks its own results, so a
// faulty core, memory cell or link fails the step instead of only
// slowing it down. The Run functions are those steps whole: they read
// IPA's driver_info options (DriverInfo), run the burn-in (the disks'
// through disk.BurnInEach) and write the output files IPA names.
package burnin

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Result is one stressor's run, the figures stress-ng's --metrics-brief
// prints.
type Result struct {
	Stressor  string  `json:"stressor"`
	Workers   int     `json:"workers"`
	Bytes     int64   `json:"bytes,omitempty"`
	Ops       uint64  `json:"bogo_ops"`
	Seconds   float64 `json:"seconds"`
	OpsPerSec float64 `json:"bogo_ops_per_second"`
}

// WriteFile writes r as JSON to path (IPA's *_outputfile options).
func (r Result) WriteFile(path string) error {
	b, _ := json.MarshalIndent(r, "", "  ")
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// workers is n, or one per CPU for 0 (stress-ng's meaning of 0).
func workers(n int) int {
	if n <= 0 {
		return runtime.NumCPU()
	}
	return n
}

// run starts n workers until d passes or ctx ends; the first worker
// error cancels the others.
func run(ctx context.Context, name string, n int, d time.Duration, work func(ctx context.Context, w int, ops *atomic.Uint64) error) (Result, error) {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	start := time.Now()
	var ops atomic.Uint64
	var wg sync.WaitGroup
	var once sync.Once
	var firstErr error
	for w := 0; w < n; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			if err := work(ctx, w, &ops); err != nil {
				once.Do(func() { firstErr = err; cancel() })
			}
		}(w)
	}
	wg.Wait()
	secs := time.Since(start).Seconds()
	r := Result{Stressor: name, Workers: n, Ops: ops.Load(), Seconds: secs, OpsPerSec: float64(ops.Load()) / max(secs, 1e-9)}
	if firstErr != nil {
		return r, firstErr
	}
	// The timeout is how a burn-in ends; a cancelled parent is not.
	if err := context.Cause(ctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return r, err
	}
	return r, nil
}

// cpuKnownAnswer is SHA-256 iterated 4096 times from the zero block: a
// core that computes it wrong is faulty.
var cpuKnownAnswer = func() [32]byte {
	var h [32]byte
	for i := 0; i < 4096; i++ {
		h = sha256.Sum256(h[:])
	}
	return h
}()

// CPU keeps cpus workers (0: every CPU) busy for d with SHA-256 chains
// whose answer is known (burnin_cpu). One bogo op is one chain.
func CPU(ctx context.Context, cpus int, d time.Duration) (Result, error) {
	return run(ctx, "cpu", workers(cpus), d, func(ctx context.Context, w int, ops *atomic.Uint64) error {
		for ctx.Err() == nil {
			var h [32]byte
			for i := 0; i < 4096; i++ {
				h = sha256.Sum256(h[:])
			}
			if h != cpuKnownAnswer {
				return fmt.Errorf("cpu burn-in: worker %d computed a wrong SHA-256 chain: the CPU is faulty", w)
			}
			ops.Add(1)
		}
		return nil
	})
}

// MemAvailable reads MemAvailable from /proc/meminfo.
func MemAvailable() (int64, error) {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) >= 2 && fs[0] == "MemAvailable:" {
			kb, err := strconv.ParseInt(fs[1], 10, 64)
			return kb << 10, err
		}
	}
	return 0, errors.New("no MemAvailable in /proc/meminfo")
}

// memReserve is what the memory burn-in leaves to the agent and the
// kernel: stress-ng runs in its own process, which the OOM killer may
// take; the burn-in runs inside goipa, which in the ramdisk is PID 1.
const memReserve = 256 << 20

// ParseBytes reads stress-ng's --vm-bytes: a percentage of available
// memory ("98%") or a size with an optional b, k, m, g or t suffix.
func ParseBytes(s string, available int64) (int64, error) {
	s = strings.TrimSpace(strings.ToLower(s))
	if p, ok := strings.CutSuffix(s, "%"); ok {
		v, err := strconv.ParseFloat(p, 64)
		// Written so that NaN, which every comparison calls false, fails.
		if err != nil || !(v > 0 && v <= 100) {
			return 0, fmt.Errorf("%q is not a percentage between 0 and 100", s)
		}
		n := int64(float64(available) * v / 100)
		if n <= 0 {
			return 0, fmt.Errorf("%q of %d bytes is less than a byte", s, available)
		}
		return n, nil
	}
	mult := int64(1)
	for suf, m := range map[string]int64{"b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40} {
		if v, ok := strings.CutSuffix(s, suf); ok {
			s, mult = v, m
			break
		}
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil || v <= 0 || v > (1<<62)/mult {
		return 0, fmt.Errorf("%q is not a size", s)
	}
	return v * mult, nil
}

// Memory has vms workers (0: one per CPU) share total bytes of memory,
// clipped to what is available minus a reserve, and fill and check it
// with address-dependent patterns until d passes (burnin_memory). One
// bogo op is one 4 KiB page written and verified.
func Memory(ctx context.Context, vms int, total int64, d time.Duration) (Result, error) {
	avail, err := MemAvailable()
	if err != nil {
		return Result{}, err
	}
	if lim := avail - memReserve; total > lim {
		total = max(lim, 0)
	}
	n := workers(vms)
	per := total / int64(n) &^ 4095
	if per <= 0 {
		return Result{}, fmt.Errorf("memory burn-in: %d bytes for %d workers is less than a page each", total, n)
	}
	r, err := run(ctx, "vm", n, d, func(ctx context.Context, w int, ops *atomic.Uint64) error {
		buf := make([]byte, per)
		for pass := uint64(1); ctx.Err() == nil; pass++ {
			for off := int64(0); off < per && ctx.Err() == nil; off += 4096 {
				fillPage(buf[off:off+4096], uint64(w)<<48^uint64(off)^pass<<32)
			}
			var want [4096]byte
			for off := int64(0); off < per && ctx.Err() == nil; off += 4096 {
				fillPage(want[:], uint64(w)<<48^uint64(off)^pass<<32)
				if !bytes.Equal(buf[off:off+4096], want[:]) {
					return fmt.Errorf("memory burn-in: worker %d read back a different page at offset %d (pass %d): faulty memory", w, off, pass)
				}
				ops.Add(1)
			}
		}
		return nil
	})
	r.Bytes = per * int64(n)
	return r, err
}

// fillPage writes an xorshift stream seeded by seed (never zero).
func fillPage(b []byte, seed uint64) {
	x := seed | 1
	for i := 0; i+8 <= len(b); i += 8 {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		binary.LittleEndian.PutUint64(b[i:], x)
	}
}
