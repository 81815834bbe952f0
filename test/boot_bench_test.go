package test

import (
	"context"
	"fmt"
	"os"
	"sort"
	"testing"
	"time"

	"github.com/goipa/goipa/initramfs"
	"github.com/goipa/goipa/internal/testenv"
	"github.com/goipa/goipa/test/realironic"
)

func median(d []time.Duration) time.Duration {
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}

// BenchmarkRamdiskBoot boots the test ramdisk (Debian's cloud kernel, the
// virtio module set) five times per iteration and reports the medians of
// QEMU start to the agent's API and of the kernel starting init to the
// API (the part goipa owns), both from the console lines' arrival, plus
// the initramfs size.
func BenchmarkRamdiskBoot(b *testing.B) {
	testenv.NeedRoot(b)
	kernel, initrd := buildRamdisk(b)
	const boots = 5
	var toAPI, initToAPI []time.Duration
	for i := 0; i < b.N; i++ {
		for j := 0; j < boots; j++ {
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			vm, err := initramfs.StartVM(ctx, initramfs.VMOptions{Kernel: kernel, Initrd: initrd, Cmdline: "ipa-standalone=1",
				VirtioDisks: []string{sparseFile(b, 64<<20)}, HostForward: realironic.FreePort(b)})
			if err != nil {
				cancel()
				b.Fatal(err)
			}
			toInit, err := vm.WaitFor(ctx, "Run /init as init process", 90*time.Second)
			if err == nil {
				var api time.Duration
				if api, err = vm.WaitFor(ctx, "API listening", 90*time.Second); err == nil {
					toAPI = append(toAPI, api)
					initToAPI = append(initToAPI, api-toInit)
				}
			}
			vm.Kill()
			cancel()
			if err != nil {
				b.Fatalf("boot %d: %v\n%s", j, err, tail(vm.Console(), 40))
			}
		}
	}
	b.ReportMetric(median(toAPI).Seconds(), "s-qemu-to-api-median")
	b.ReportMetric(median(initToAPI).Seconds(), "s-init-to-api-median")
	if st, err := os.Stat(initrd); err == nil {
		b.ReportMetric(float64(st.Size())/(1<<20), "MiB-initramfs")
	}
	b.Logf("accel %s; %d boots; QEMU start to API %v; init to API %v", initramfs.Accel(), len(toAPI), fmt.Sprint(toAPI), fmt.Sprint(initToAPI))
}
