package initramfs

import (
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fwTree lays out a firmware directory: name -> content, or "->target"
// for a symlink.
func fwTree(t *testing.T, files map[string]string) string {
	root := t.TempDir()
	for name, c := range files {
		p := filepath.Join(root, name)
		require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
		if target, ok := strings.CutPrefix(c, "->"); ok {
			require.NoError(t, os.Symlink(target, p))
			continue
		}
		require.NoError(t, os.WriteFile(p, []byte(c), 0o644))
	}
	return root
}

func TestSelectFirmware(t *testing.T) {
	misc := fwTree(t, map[string]string{
		"intel/ice/ddp/ice-1.3.30.0.pkg": "DDP",
		"intel/ice/ddp/ice.pkg":          "->ice-1.3.30.0.pkg", // as Debian ships it
		"tigon/tg3.bin":                  "TG3",
		"tigon/tg3_tso.bin":              "->/lib/firmware/tigon/tg3.bin", // absolute: inside the tree, not the host
		"cxgb4/t6fw.bin":                 "->t6fw-1.27.1.0.bin",
		"cxgb4/t6fw-1.27.1.0.bin":        "->../cxgb4/real/t6.bin",
		"cxgb4/real/t6.bin":              "T6",
		"evil/escape.bin":                "->../../../etc/passwd",
		"loop/a.bin":                     "->b.bin",
		"loop/b.bin":                     "->a.bin",
		"rtl_nic/rtl8168h-2.fw.xz":       "XZ",
	})
	bnx2x := fwTree(t, map[string]string{
		"bnx2x/bnx2x-e2-7.13.21.0.fw": "E2",
		"tigon/tg3.bin":               "SHADOWED", // the earlier tree wins
	})
	mods := []*Module{
		{Name: "ice", Firmware: []string{"intel/ice/ddp/ice.pkg"}},
		{Name: "tg3", Firmware: []string{"tigon/tg3.bin", "tigon/tg3_tso.bin", "tigon/tg357766.bin"}},
		{Name: "cxgb4", Firmware: []string{"cxgb4/t6fw.bin"}},
		{Name: "bnx2x", Firmware: []string{"bnx2x/bnx2x-e2-7.13.21.0.fw", "bnx2x/bnx2x-e1-7.13.21.0.fw"}},
		{Name: "bad", Firmware: []string{"evil/escape.bin", "loop/a.bin", "../outside.bin"}},
		{Name: "r8169", Firmware: []string{"rtl_nic/rtl8168h-2.fw"}},
		{Name: "tg3_again", Firmware: []string{"tigon/tg3.bin"}}, // declared twice: once in the ramdisk
		{Name: "virtio_net"},
	}
	files, missing := SelectFirmware(mods, []string{misc, bnx2x})
	got := map[string]string{}
	for _, f := range files {
		b, err := os.ReadFile(f.Src)
		require.NoError(t, err)
		fi, err := os.Lstat(f.Src)
		require.NoError(t, err)
		assert.True(t, fi.Mode().IsRegular(), "%s resolves to a regular file", f.Name)
		got[f.Name] = string(b)
	}
	assert.Equal(t, map[string]string{
		"intel/ice/ddp/ice.pkg":       "DDP", // the symlink's name, the target's bytes
		"tigon/tg3.bin":               "TG3",
		"tigon/tg3_tso.bin":           "TG3",
		"cxgb4/t6fw.bin":              "T6",
		"bnx2x/bnx2x-e2-7.13.21.0.fw": "E2",
		"rtl_nic/rtl8168h-2.fw.xz":    "XZ", // the kernel tries name.xz itself
	}, got)
	assert.Equal(t, []string{
		"bad: ../outside.bin", "bad: evil/escape.bin", "bad: loop/a.bin",
		"bnx2x: bnx2x/bnx2x-e1-7.13.21.0.fw", "tg3: tigon/tg357766.bin",
	}, missing)
}

func TestResolveInRefusesEscapes(t *testing.T) {
	root := fwTree(t, map[string]string{"a/up": "->../../x", "dir/sub/f": "F", "dir/link": "->sub"})
	_, err := resolveIn(root, "a/up")
	assert.ErrorContains(t, err, "leaves the firmware directory")
	_, err = resolveIn(root, "dir/link")
	assert.Error(t, err, "a directory is not firmware")
	p, err := resolveIn(root, "dir/./sub/../sub/f")
	require.NoError(t, err)
	assert.Equal(t, filepath.Join(root, "dir/sub/f"), p)
}

// modinfoELF is a minimal ELF64 object with a .modinfo section, as
// modpost writes it into a .ko.
func modinfoELF(t *testing.T, kv ...string) string {
	modinfo := []byte(strings.Join(kv, "\x00") + "\x00")
	shstr := []byte("\x00.modinfo\x00.shstrtab\x00")
	var b bytes.Buffer
	const ehsize, shentsize = 64, 64
	dataOff := ehsize
	shstrOff := dataOff + len(modinfo)
	shOff := shstrOff + len(shstr)
	hdr := make([]byte, ehsize)
	copy(hdr, "\x7fELF\x02\x01\x01")
	binary.LittleEndian.PutUint16(hdr[16:], 1)  // ET_REL
	binary.LittleEndian.PutUint16(hdr[18:], 62) // EM_X86_64
	binary.LittleEndian.PutUint32(hdr[20:], 1)
	binary.LittleEndian.PutUint64(hdr[40:], uint64(shOff))
	binary.LittleEndian.PutUint16(hdr[52:], ehsize)
	binary.LittleEndian.PutUint16(hdr[58:], shentsize)
	binary.LittleEndian.PutUint16(hdr[60:], 3)
	binary.LittleEndian.PutUint16(hdr[62:], 2)
	b.Write(hdr)
	b.Write(modinfo)
	b.Write(shstr)
	sh := func(name, typ uint32, off, size int) {
		s := make([]byte, shentsize)
		binary.LittleEndian.PutUint32(s[0:], name)
		binary.LittleEndian.PutUint32(s[4:], typ)
		binary.LittleEndian.PutUint64(s[24:], uint64(off))
		binary.LittleEndian.PutUint64(s[32:], uint64(size))
		binary.LittleEndian.PutUint64(s[48:], 1)
		b.Write(s)
	}
	sh(0, 0, 0, 0)
	sh(1, 1, dataOff, len(modinfo)) // .modinfo, PROGBITS
	sh(10, 3, shstrOff, len(shstr)) // .shstrtab, STRTAB
	p := filepath.Join(t.TempDir(), "bnx2x.ko")
	require.NoError(t, os.WriteFile(p, b.Bytes(), 0o644))
	return p
}

func TestReadModinfoFirmware(t *testing.T) {
	p := modinfoELF(t, "license=GPL", "firmware=bnx2x/bnx2x-e2-7.13.21.0.fw", "depends=mdio,libcrc32c", "alias=pci:v000014E4d0000164Esv*sd*bc*sc*i*", "firmware=bnx2x/bnx2x-e1-7.13.21.0.fw")
	var m Module
	require.NoError(t, readModinfo(p, &m))
	assert.Equal(t, []string{"bnx2x/bnx2x-e2-7.13.21.0.fw", "bnx2x/bnx2x-e1-7.13.21.0.fw"}, m.Firmware)
	assert.Equal(t, []string{"mdio", "libcrc32c"}, m.Deps)
	assert.Len(t, m.Aliases, 1)
}

func TestFirmwareSourcesFromHostSources(t *testing.T) {
	deb822 := []byte(`Types: deb
# http://snapshot.debian.org/archive/debian/20250520T000000Z
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm
Components: main

Types: deb
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main contrib
Enabled: no

Types: deb
URIs: https://deb.nodesource.com/node_20.x
Suites: nodistro
Components: nodejs
`)
	oneLine := []byte("# comment\ndeb [arch=amd64 signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://mirror.example/debian bookworm main contrib # trailing\ndeb-src http://mirror.example/debian bookworm main\nbogus line\n")
	srcs := append(parseDeb822Sources(deb822), parseOneLineSources(oneLine)...)
	require.Len(t, srcs, 5)
	assert.Equal(t, "Types: deb\nURIs: http://deb.debian.org/debian\nSuites: bookworm bookworm-updates\nComponents: non-free-firmware\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\n"+
		"Types: deb\nURIs: http://mirror.example/debian\nSuites: bookworm\nComponents: non-free-firmware\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n",
		firmwareSources(srcs))
}

func FuzzParseSources(f *testing.F) {
	f.Add([]byte("Types: deb\nURIs: http://x/debian\nSuites: bookworm\nComponents: main\nSigned-By:\n -----BEGIN PGP\n .\n"), []byte("deb [signed-by=/k.gpg] http://x/debian bookworm main\n"))
	f.Add([]byte("\t\n:\nURIs:\n"), []byte("deb [ ]\ndeb [a\n"))
	f.Fuzz(func(t *testing.T, deb822, oneLine []byte) {
		srcs := append(parseDeb822Sources(deb822), parseOneLineSources(oneLine)...)
		out := firmwareSources(srcs)
		for _, s := range srcs {
			if len(s.URIs) == 0 {
				t.Fatalf("source without a URI: %+v", s)
			}
		}
		if out != "" && !strings.Contains(out, "Components: non-free-firmware\n") {
			t.Fatalf("firmware sources without the component:\n%s", out)
		}
	})
}
