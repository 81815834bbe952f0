package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/goipa/goipa/initramfs"
)

// koFile writes a minimal ELF64 relocatable object whose .modinfo holds
// kv, as modpost leaves it in a .ko.
func koFile(t *testing.T, path string, kv ...string) {
	modinfo := []byte(strings.Join(kv, "\x00") + "\x00")
	shstr := []byte("\x00.modinfo\x00.shstrtab\x00")
	var b bytes.Buffer
	hdr := make([]byte, 64)
	copy(hdr, "\x7fELF\x02\x01\x01")
	binary.LittleEndian.PutUint16(hdr[16:], 1)  // ET_REL
	binary.LittleEndian.PutUint16(hdr[18:], 62) // EM_X86_64
	binary.LittleEndian.PutUint32(hdr[20:], 1)
	binary.LittleEndian.PutUint64(hdr[40:], uint64(64+len(modinfo)+len(shstr)))
	binary.LittleEndian.PutUint16(hdr[52:], 64)
	binary.LittleEndian.PutUint16(hdr[58:], 64)
	binary.LittleEndian.PutUint16(hdr[60:], 3)
	binary.LittleEndian.PutUint16(hdr[62:], 2)
	b.Write(hdr)
	b.Write(modinfo)
	b.Write(shstr)
	for _, s := range [][4]uint64{{0, 0, 0, 0}, {1, 1, 64, uint64(len(modinfo))}, {10, 3, uint64(64 + len(modinfo)), uint64(len(shstr))}} {
		sh := make([]byte, 64)
		binary.LittleEndian.PutUint32(sh[0:], uint32(s[0]))
		binary.LittleEndian.PutUint32(sh[4:], uint32(s[1]))
		binary.LittleEndian.PutUint64(sh[24:], s[2])
		binary.LittleEndian.PutUint64(sh[32:], s[3])
		binary.LittleEndian.PutUint64(sh[48:], 1)
		b.Write(sh)
	}
	require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o755))
	require.NoError(t, os.WriteFile(path, b.Bytes(), 0o644))
}

// --extra-module takes only .ko files, and one built for another kernel
// is refused before anything is built.
func TestExtraModuleFlag(t *testing.T) {
	const ver = "6.1.0-57-cloud-amd64"
	kdir := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(kdir, "boot"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(kdir, "boot/vmlinuz-"+ver), []byte("kernel"), 0o644))
	koFile(t, filepath.Join(kdir, "lib/modules", ver, "kernel/net/psample/psample.ko"), "name=psample", "vermagic="+ver+" SMP preempt mod_unload modversions ")
	other := filepath.Join(t.TempDir(), "netdevsim.ko")
	koFile(t, other, "name=netdevsim", "depends=psample", "vermagic=6.1.0-28-cloud-amd64 SMP preempt mod_unload modversions ")
	out := t.TempDir()
	args := []string{"--kernel-dir=" + kdir, "--output=" + filepath.Join(out, "i"), "--kernel-output=" + filepath.Join(out, "k"), "--firmware=none", "--debug-commands=false"}

	err := run(context.Background(), append(args, "--extra-module="+other), "")
	var ve *initramfs.VermagicError
	require.ErrorAs(t, err, &ve)
	assert.Contains(t, err.Error(), "--extra-module")
	assert.Contains(t, err.Error(), "6.1.0-28-cloud-amd64")
	assert.NoFileExists(t, filepath.Join(out, "i"))

	err = run(context.Background(), append(args, "--extra-module="+filepath.Join(kdir, "boot/vmlinuz-"+ver)), "")
	assert.ErrorContains(t, err, "is no .ko file")
}
