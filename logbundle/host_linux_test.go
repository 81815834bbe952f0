package logbundle

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/goipa/goipa/internal/testenv"
)

// TestCollectOnThisHost collects this machine as a goipa on a host does
// (every reader opens read-only; nothing is written, mounted or loaded)
// and checks each member IPA's bundle has is there with content that
// matches the system it came from.
func TestCollectOnThisHost(t *testing.T) {
	testenv.NeedRoot(t) // the kernel log needs CAP_SYSLOG
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	before := blockSizes(t)
	b, err := New(WithMember("journal", func(context.Context) ([]byte, error) { return []byte("agent log\n"), nil })).Collect(ctx)
	require.NoError(t, err)
	files, _ := members(t, b)
	for _, name := range []string{"journal", "dmesg", "df", "efibootmgr", "ip_addr", "ip_link", "ip_route", "lsblk", "lsblk-full",
		"mdstat", "mount", "multipath", "ps", "lspci", "lsmod", "cmdline", "cpuinfo", "meminfo"} {
		require.Contains(t, files, name)
		if name != "mdstat" {
			assert.False(t, strings.HasPrefix(files[name], "error: "), "%s: %s", name, files[name])
		}
	}
	t.Logf("bundle: %d bytes compressed, %d members", len(b), len(files))

	assert.NotEmpty(t, files["dmesg"])
	assert.NotRegexp(t, `(?m)^<\d+>`, files["dmesg"], "syslog priorities are stripped")
	assert.Regexp(t, `(?m) /$`, files["df"])
	assert.Contains(t, files["mount"], " on / type ")
	assert.Contains(t, files["ip_addr"], ": lo: <LOOPBACK")
	assert.Contains(t, files["ip_addr"], "inet 127.0.0.1/8 scope host lo")
	assert.Contains(t, files["ip_link"], ": lo: <LOOPBACK")
	assert.Contains(t, files["ps"], fmt.Sprintf("\n%s ", pidColumn(files["ps"], os.Getpid())))
	if _, err := os.Stat("/proc/modules"); err == nil {
		assert.Contains(t, files["lsmod"], "Module")
	} else {
		assert.Contains(t, files["lsmod"], "no /proc/modules")
	}
	assert.Contains(t, files["cpuinfo"], "processor")
	assert.Contains(t, files["meminfo"], "MemTotal:")
	cmdline, _ := os.ReadFile("/proc/cmdline")
	assert.Equal(t, string(cmdline), files["cmdline"])
	if md, err := os.ReadFile("/proc/mdstat"); err == nil {
		assert.Equal(t, string(md), files["mdstat"])
	}
	if _, err := os.Stat("/sys/firmware/efi/efivars"); err == nil {
		assert.True(t, strings.HasPrefix(files["efibootmgr"], "BootOrder:"), files["efibootmgr"])
	} else {
		assert.Equal(t, "not booted in UEFI mode\n", files["efibootmgr"])
	}
	assert.True(t, strings.HasPrefix(files["multipath"], "# ") || strings.Contains(files["multipath"], " dm-"), files["multipath"])

	// Every block device with a medium is in lsblk, lsblk-full and udev/,
	// every PCI function in lspci. Other test packages attach and detach
	// loop devices while this runs: only devices that had the same size
	// before and after the collection are checked.
	after := blockSizes(t)
	for name, size := range before {
		if size == "0" || after[name] != size {
			continue
		}
		assert.Regexp(t, `(?m)^\S*`+name+` `, files["lsblk"])
		assert.Contains(t, files["lsblk-full"], `KNAME="`+name+`"`)
		assert.Contains(t, files, "udev/"+name)
	}
	pci, _ := os.ReadDir("/sys/bus/pci/devices")
	for _, p := range pci {
		assert.Contains(t, files["lspci"], p.Name()+" ")
	}
}

// blockSizes maps each entry of /sys/block to its size in sectors.
func blockSizes(t *testing.T) map[string]string {
	ents, err := os.ReadDir("/sys/block")
	require.NoError(t, err)
	sizes := make(map[string]string, len(ents))
	for _, e := range ents {
		if size, err := os.ReadFile(filepath.Join("/sys/block", e.Name(), "size")); err == nil {
			sizes[e.Name()] = strings.TrimSpace(string(size))
		}
	}
	return sizes
}

// pidColumn is pid right-aligned as the ps member's first column is.
func pidColumn(ps string, pid int) string {
	header, _, _ := strings.Cut(ps, "\n")
	w := strings.Index(header, "PID") + len("PID")
	return fmt.Sprintf("%*d", w, pid)
}
