package logbundle

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fixture is a fake root: files under proc/, sys/, dev/, run/ and
// symlinks, as the kernel lays them out.
type fixture struct {
	t    *testing.T
	root string
}

func newFixture(t *testing.T) *fixture {
	f := &fixture{t: t, root: t.TempDir()}
	for _, d := range []string{"proc", "sys", "dev", "run"} {
		require.NoError(t, os.MkdirAll(filepath.Join(f.root, d), 0o755))
	}
	return f
}

func (f *fixture) file(rel, content string) {
	p := filepath.Join(f.root, rel)
	require.NoError(f.t, os.MkdirAll(filepath.Dir(p), 0o755))
	require.NoError(f.t, os.WriteFile(p, []byte(content), 0o644))
}

func (f *fixture) link(rel, target string) {
	p := filepath.Join(f.root, rel)
	require.NoError(f.t, os.MkdirAll(filepath.Dir(p), 0o755))
	require.NoError(f.t, os.Symlink(target, p))
}

func (f *fixture) collector(opts ...Option) *Collector {
	r := f.root
	return New(append([]Option{WithRoots(r+"/proc", r+"/sys", r+"/dev", r+"/run")}, opts...)...)
}

// scsiDisk lays out /sys/block/<name> for a SCSI disk at hctl with the
// given partitions (names), its queue and device attributes.
func (f *fixture) scsiDisk(name, majmin, hctl string, sectors int64, parts ...string) {
	dev := "sys/devices/pci0000:00/0000:00:1f.2/ata1/host0/target0:0:0/" + hctl
	f.file(dev+"/model", "QEMU HARDDISK   \n")
	f.file(dev+"/vendor", "ATA     \n")
	f.file(dev+"/state", "running\n")
	blk := dev + "/block/" + name
	f.link("sys/block/"+name, "../"+strings.TrimPrefix(blk, "sys/"))
	f.link(blk+"/device", "../../../"+hctl)
	f.file(blk+"/dev", majmin+"\n")
	f.file(blk+"/size", itoa(sectors)+"\n")
	f.file(blk+"/ro", "0\n")
	f.file(blk+"/removable", "0\n")
	f.file(blk+"/wwid", "naa.5000c500a1b2c3d4\n")
	f.file(blk+"/queue/rotational", "1\n")
	f.file(blk+"/queue/logical_block_size", "512\n")
	f.file(blk+"/queue/physical_block_size", "4096\n")
	f.file(blk+"/uevent", "MAJOR=8\nMINOR=0\nDEVNAME="+name+"\nDEVTYPE=disk\n")
	for i, p := range parts {
		f.file(blk+"/"+p+"/partition", itoa(int64(i+1))+"\n")
		f.file(blk+"/"+p+"/dev", "8:"+itoa(int64(i+1))+"\n")
		f.file(blk+"/"+p+"/size", "2048\n")
		f.file(blk+"/"+p+"/uevent", "DEVNAME="+p+"\nDEVTYPE=partition\nPARTN="+itoa(int64(i+1))+"\n")
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// gptDisk writes a disk image with a GPT of one partition and an ext4
// superblock in it, so the signature probes have something to find.
func gptDisk(t *testing.T, path string) {
	const sector = 512
	img := make([]byte, 4096*sector)
	// Protective MBR.
	img[446+4] = 0xee
	binary.LittleEndian.PutUint32(img[446+8:], 1)
	binary.LittleEndian.PutUint32(img[446+12:], 4095)
	img[510], img[511] = 0x55, 0xaa
	h := img[sector : 2*sector]
	copy(h, "EFI PART")
	binary.LittleEndian.PutUint32(h[8:], 0x00010000)
	binary.LittleEndian.PutUint32(h[12:], 92)
	binary.LittleEndian.PutUint64(h[24:], 1)
	binary.LittleEndian.PutUint64(h[32:], 4095)
	binary.LittleEndian.PutUint64(h[40:], 34)
	binary.LittleEndian.PutUint64(h[48:], 4062)
	binary.LittleEndian.PutUint64(h[72:], 2)
	binary.LittleEndian.PutUint32(h[80:], 128)
	binary.LittleEndian.PutUint32(h[84:], 128)
	e := img[2*sector : 2*sector+128]
	// Linux filesystem type 0FC63DAF-8483-4772-8E79-3D69D8477DE4, mixed-endian.
	copy(e[0:16], []byte{0xaf, 0x3d, 0xc6, 0x0f, 0x83, 0x84, 0x72, 0x47, 0x8e, 0x79, 0x3d, 0x69, 0xd8, 0x47, 0x7d, 0xe4})
	copy(e[16:32], []byte{0x78, 0x56, 0x34, 0x12, 0x34, 0x12, 0x34, 0x12, 0x12, 0x34, 0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc})
	binary.LittleEndian.PutUint64(e[32:], 2048)
	binary.LittleEndian.PutUint64(e[40:], 4095)
	for i, r := range "root" {
		binary.LittleEndian.PutUint16(e[56+2*i:], uint16(r))
	}
	require.NoError(t, os.WriteFile(path, img, 0o644))
	// The partition itself (what /dev/sda1 reads): an ext4 superblock.
	part := make([]byte, 4096)
	sb := part[1024:]
	binary.LittleEndian.PutUint16(sb[0x38:], 0xef53)
	copy(sb[0x68:], []byte{0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff, 0x00})
	copy(sb[0x78:], "rootfs")
	binary.LittleEndian.PutUint32(sb[0x60:], 0x40) // extents: ext4
	require.NoError(t, os.WriteFile(path+"1", part, 0o644))
}

func TestLsblkTreeWithPartitionsSignaturesAndHolders(t *testing.T) {
	f := newFixture(t)
	f.scsiDisk("sda", "8:0", "0:0:0:0", 4096, "sda1")
	gptDisk(t, filepath.Join(f.root, "dev", "sda"))
	// md0 built on sda1.
	f.file("sys/devices/virtual/block/md0/dev", "9:0\n")
	f.file("sys/devices/virtual/block/md0/size", "1024\n")
	f.file("sys/devices/virtual/block/md0/md/level", "raid1\n")
	f.file("sys/devices/virtual/block/md0/slaves/.keep", "")
	f.link("sys/block/md0", "../devices/virtual/block/md0")
	f.link("sys/devices/virtual/block/md0/slaves/sda1", "../../../../pci0000:00/0000:00:1f.2/ata1/host0/target0:0:0/0:0:0:0/block/sda/sda1")
	f.link("sys/devices/pci0000:00/0000:00:1f.2/ata1/host0/target0:0:0/0:0:0:0/block/sda/sda1/holders/md0", "../../../../../../../../../virtual/block/md0")
	os.Remove(filepath.Join(f.root, "sys/devices/virtual/block/md0/slaves/.keep"))
	f.file("proc/self/mountinfo", "22 1 8:1 / /mnt/root rw,relatime shared:1 - ext4 /dev/sda1 rw\n")

	out, err := f.collector().lsblk(context.Background())
	require.NoError(t, err)
	s := string(out)
	t.Log("\n" + s)
	lines := strings.Split(strings.TrimSpace(s), "\n")
	require.Len(t, lines, 4, "header, sda, sda1, md0 under sda1")
	assert.Regexp(t, `^sda +sda +QEMU HARDDISK +2M +1 +disk `, lines[1])
	assert.Contains(t, lines[1], "naa.5000c500a1b2c3d4")
	assert.Contains(t, lines[1], "sata")
	assert.Regexp(t, `^└─sda1 +sda1 +1M +1 +part +ext4 +11223344-5566-7788-99aa-bbccddeeff00 +12345678-1234-1234-1234-123456789abc`, lines[2])
	assert.Contains(t, lines[2], "/mnt/root")
	assert.Regexp(t, `^  └─md0 +md0 +512K +0 +raid1 `, lines[3])

	full, err := f.collector().lsblkFull(context.Background())
	require.NoError(t, err)
	fl := strings.Split(strings.TrimSpace(string(full)), "\n")
	require.Len(t, fl, 3, "sda, sda1, md0")
	assert.Contains(t, fl[0], `NAME="sda"`)
	assert.Contains(t, fl[0], `PTTYPE="gpt"`)
	assert.Contains(t, fl[0], `SIZE="2097152"`)
	assert.Contains(t, fl[0], `HCTL="0:0:0:0"`)
	assert.Contains(t, fl[0], `PHY-SEC="4096"`)
	assert.Contains(t, fl[1], `PARTTYPE="0fc63daf-8483-4772-8e79-3d69d8477de4"`)
	assert.Contains(t, fl[1], `PKNAME="sda"`)
	assert.Contains(t, fl[1], `LABEL="rootfs"`)
	assert.Contains(t, fl[2], `TYPE="raid1"`)
	assert.Contains(t, fl[2], `PKNAME="sda1"`)
}

func TestMultipathFromSysfs(t *testing.T) {
	f := newFixture(t)
	f.scsiDisk("sdb", "8:16", "2:0:0:0", 4096)
	f.scsiDisk("sdc", "8:32", "3:0:0:0", 4096)
	f.file("sys/devices/virtual/block/dm-0/dev", "253:0\n")
	f.file("sys/devices/virtual/block/dm-0/size", "4096\n")
	f.file("sys/devices/virtual/block/dm-0/dm/name", "mpatha\n")
	f.file("sys/devices/virtual/block/dm-0/dm/uuid", "mpath-3600140512345678\n")
	f.link("sys/block/dm-0", "../devices/virtual/block/dm-0")
	for _, s := range []string{"sdb", "sdc"} {
		f.link("sys/devices/virtual/block/dm-0/slaves/"+s, "../../../../../sys/block/"+s)
	}
	f.file("sys/devices/virtual/block/dm-1/dev", "253:1\n")
	f.file("sys/devices/virtual/block/dm-1/size", "8\n")
	f.file("sys/devices/virtual/block/dm-1/dm/name", "vg-lv\n")
	f.file("sys/devices/virtual/block/dm-1/dm/uuid", "LVM-abc\n")
	f.link("sys/block/dm-1", "../devices/virtual/block/dm-1")

	out, err := f.collector().multipath(context.Background())
	require.NoError(t, err)
	s := string(out)
	t.Log("\n" + s)
	assert.Contains(t, s, "mpatha (3600140512345678) dm-0 ATA,QEMU HARDDISK\nsize=2M wp=rw\n")
	assert.Contains(t, s, "  |- 2:0:0:0 sdb 8:16 running\n  `- 3:0:0:0 sdc 8:32 running\n")
	assert.Contains(t, s, "# dm-1 vg-lv")
	assert.NotContains(t, s, "no multipath maps")

	g := newFixture(t)
	g.file("sys/block/.keep", "")
	out, err = g.collector().multipath(context.Background())
	require.NoError(t, err)
	assert.Equal(t, "# no multipath maps\n", string(out))
}

func TestUdevMembers(t *testing.T) {
	f := newFixture(t)
	f.scsiDisk("sda", "8:0", "0:0:0:0", 4096, "sda1")
	f.file("run/udev/data/b8:0", "S:disk/by-id/wwn-0x5000c500a1b2c3d4\nE:ID_SERIAL=QEMU_HARDDISK_QM00001\nE:ID_BUS=ata\nG:systemd\n")
	// An empty loop device: no member, as `lsblk -no KNAME` skips it.
	f.file("sys/devices/virtual/block/loop7/size", "0\n")
	f.link("sys/block/loop7", "../devices/virtual/block/loop7")
	ms, err := f.collector().udev()
	require.NoError(t, err)
	var got []string
	for _, m := range ms {
		got = append(got, m.Name)
	}
	assert.Equal(t, []string{"udev/sda", "udev/sda1"}, got)
	b, _ := ms[0].Read(context.Background())
	var props map[string]string
	require.NoError(t, json.Unmarshal(b, &props))
	assert.Equal(t, "QEMU_HARDDISK_QM00001", props["ID_SERIAL"])
	assert.Equal(t, "/dev/sda", props["DEVNAME"])
	assert.Equal(t, "disk", props["DEVTYPE"])
	assert.Equal(t, "block", props["SUBSYSTEM"])
	assert.True(t, strings.HasPrefix(props["DEVPATH"], "/devices/pci0000:00/"), props["DEVPATH"])
	b, _ = ms[1].Read(context.Background())
	require.NoError(t, json.Unmarshal(b, &props))
	assert.Equal(t, "/dev/sda1", props["DEVNAME"])
	assert.Equal(t, "1", props["PARTN"])
}

func TestProcMembers(t *testing.T) {
	f := newFixture(t)
	f.file("proc/self/mounts", "proc /proc proc rw,nosuid 0 0\n/dev/sda1 /mnt/my\\040disk ext4 rw,relatime 0 0\nbroken\n")
	f.file("proc/modules", "ahci 49152 2 - Live 0x0000000000000000\nlibahci 49152 1 ahci, Live 0x0000000000000000\nbad line\n")
	f.file("proc/1/stat", "1 (goipa (init)) S 0 1 1 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 12 0 10 1000000 300 18446744073709551615\n")
	f.file("proc/1/cmdline", "/init\x00--debug\x00")
	f.file("proc/2/stat", "2 (kthreadd) S 0 0 0 0 -1 2129984 0 0 0 0 0 0 0 0 20 0 1 0 10 0 0 18446744073709551615\n")
	// A shell's -c script: its newline and tab must not break the table.
	f.file("proc/40000/stat", "40000 (sh) S 1 1 1 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 1 0 10 1000000 100 18446744073709551615\n")
	f.file("proc/40000/cmdline", "sh\x00-c\x00echo a\n\techo b\x00")
	f.file("proc/cmdline", "ipa-api-url=http://192.0.2.1:6385 BOOTIF=52:54:00:12:34:56\n")
	f.file("proc/mdstat", "Personalities : [raid1]\nunused devices: <none>\n")
	c := f.collector()
	ctx := context.Background()

	tests := []struct {
		name string
		read func(context.Context) ([]byte, error)
		want []string
	}{
		{"mount", c.mount, []string{"proc on /proc type proc (rw,nosuid)\n", "/dev/sda1 on /mnt/my disk type ext4 (rw,relatime)\n"}},
		{"lsmod", c.lsmod, []string{"Module", "ahci                       49152  2 \n", "libahci                    49152  1 ahci\n"}},
		{"ps", c.ps, []string{"    1    S 1200 /init --debug\n", "[kthreadd]", "\n 40000    S  400 sh -c echo a??echo b\n"}},
		{"cmdline", c.procFile("cmdline"), []string{"BOOTIF=52:54:00:12:34:56"}},
		{"mdstat", c.procFile("mdstat"), []string{"Personalities : [raid1]"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b, err := tc.read(ctx)
			require.NoError(t, err)
			for _, w := range tc.want {
				assert.Contains(t, string(b), w)
			}
		})
	}
}

func TestLspci(t *testing.T) {
	f := newFixture(t)
	d := "sys/bus/pci/devices/0000:00:1f.2/"
	f.file(d+"class", "0x010601\n")
	f.file(d+"vendor", "0x8086\n")
	f.file(d+"device", "0x2922\n")
	f.file(d+"revision", "0x02\n")
	f.file(d+"subsystem_vendor", "0x1af4\n")
	f.file(d+"subsystem_device", "0x1100\n")
	f.file(d+"modalias", "pci:v00008086d00002922sv00001AF4sd00001100bc01sc06i01\n")
	f.file("sys/bus/pci/drivers/ahci/.keep", "")
	f.link(d+"driver", "../../drivers/ahci")
	f.file("sys/bus/pci/devices/0000:00:02.0/class", "0x020000\n")
	f.file("sys/bus/pci/devices/0000:00:02.0/vendor", "0x14e4\n")
	f.file("sys/bus/pci/devices/0000:00:02.0/device", "0x168e\n")
	b, err := f.collector().lspci(context.Background())
	require.NoError(t, err)
	s := string(b)
	t.Log("\n" + s)
	assert.Contains(t, s, "0000:00:02.0 Ethernet controller [0200]: [14e4:168e]\n")
	assert.Contains(t, s, "0000:00:1f.2 SATA controller [0106]: [8086:2922] (rev 02)\n\tSubsystem: [1af4:1100]\n\tKernel driver in use: ahci\n")
}

func TestEFIBootEntries(t *testing.T) {
	f := newFixture(t)
	vars := filepath.Join(f.root, "efivars")
	require.NoError(t, os.MkdirAll(vars, 0o755))
	const guid = "8be4df61-93ca-11d2-aa0d-00e098032b8c"
	attrs := []byte{7, 0, 0, 0}
	require.NoError(t, os.WriteFile(filepath.Join(vars, "BootOrder-"+guid), append(attrs, 1, 0, 0, 0), 0o644))
	// Boot0001: active, "debian", an end-of-path device path.
	opt := []byte{1, 0, 0, 0, 4, 0}
	for _, r := range "debian\x00" {
		opt = append(opt, byte(r), 0)
	}
	opt = append(opt, 0x7f, 0xff, 4, 0)
	require.NoError(t, os.WriteFile(filepath.Join(vars, "Boot0001-"+guid), append(attrs, opt...), 0o644))

	b, err := f.collector(WithEFIVars(vars)).efibootmgr(context.Background())
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(string(b), "BootOrder: 0001,0000\n"), string(b))
	assert.Contains(t, string(b), "Boot0001* debian")

	b, err = f.collector().efibootmgr(context.Background())
	require.NoError(t, err)
	assert.Equal(t, "not booted in UEFI mode\n", string(b))
}

func TestStripLogLevels(t *testing.T) {
	tests := []struct{ in, want string }{
		{"<6>[    0.000000] Linux version 6.1\n<4>[    1.0] warn\n", "[    0.000000] Linux version 6.1\n[    1.0] warn\n"},
		{"no prefix\n", "no prefix\n"},
		{"<x>odd\n<12345>too long\n", "<x>odd\n<12345>too long\n"},
		{"<30>[ 2.0] systemd\n", "[ 2.0] systemd\n"},
	}
	for _, tc := range tests {
		assert.Equal(t, tc.want, string(stripLogLevels([]byte(tc.in))))
	}
}

func TestDfLine(t *testing.T) {
	assert.Regexp(t, `^/dev/sda1 +1000 +250 +750 +25% /$`, dfLine("/dev/sda1", "/", 1024, 1000, 750, 750))
	assert.Regexp(t, `^proc +0 +0 +0 +- /proc$`, dfLine("proc", "/proc", 4096, 0, 0, 0))
	assert.Regexp(t, `^big +4000 +2000 +1000 +67% /big$`, dfLine("big", "/big", 4096, 1000, 500, 250))
	// Rounds up: 1 used of 3 is 34%, as df says.
	assert.Contains(t, dfLine("x", "/x", 1024, 3, 2, 2), " 34% ")
}

func TestHumanSize(t *testing.T) {
	for n, want := range map[int64]string{0: "0B", 512: "512B", 1024: "1K", 1536: "1.5K", 2 << 20: "2M", 10 << 30: "10G", 480103981056: "447.1G"} {
		assert.Equal(t, want, humanSize(n), "%d", n)
	}
}

// members unpacks a bundle.
func members(t testing.TB, b []byte) (map[string]string, []*tar.Header) {
	gz, err := gzip.NewReader(bytes.NewReader(b))
	require.NoError(t, err)
	tr := tar.NewReader(gz)
	files := map[string]string{}
	var hdrs []*tar.Header
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		require.NoError(t, err)
		data, err := io.ReadAll(tr)
		require.NoError(t, err)
		files[h.Name] = string(data)
		hdrs = append(hdrs, h)
	}
	return files, hdrs
}

func TestCollectKeepsGoingAndReplaces(t *testing.T) {
	f := newFixture(t)
	f.file("proc/cmdline", "root=/dev/ram0\n")
	f.file("sys/block/.keep", "")
	block := make(chan struct{})
	t.Cleanup(func() { close(block) })
	c := f.collector(
		WithMember("journal", func(context.Context) ([]byte, error) { return []byte("level=INFO msg=hello\n"), nil }),
		WithMember("mdstat", func(context.Context) ([]byte, error) { return nil, errors.New("no md here") }),
		WithMember("stuck", func(context.Context) ([]byte, error) { <-block; return nil, nil }),
		WithMemberTimeout(200*time.Millisecond),
	)
	b, err := c.Collect(context.Background())
	require.NoError(t, err)
	files, hdrs := members(t, b)
	assert.Equal(t, "level=INFO msg=hello\n", files["journal"])
	assert.Equal(t, "error: no md here\n", files["mdstat"], "a member of the caller replaces the built-in one")
	assert.Contains(t, files["stuck"], "timed out")
	assert.Equal(t, "root=/dev/ram0\n", files["cmdline"])
	assert.Contains(t, files["meminfo"], "error: ", "a missing file is reported, not fatal")
	n := 0
	for _, h := range hdrs {
		if h.Name == "mdstat" {
			n++
		}
		assert.Equal(t, byte(tar.TypeReg), h.Typeflag)
	}
	assert.Equal(t, 1, n)

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = c.Collect(ctx)
	assert.ErrorIs(t, err, context.Canceled)
}

func FuzzParseMounts(f *testing.F) {
	f.Add([]byte("proc /proc proc rw 0 0\n/dev/sda1 /a\\040b ext4 rw 0 0\n"))
	f.Add([]byte("x \\0 y z\n\\\\\\ \n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, m := range parseMounts(b) {
			if m.FSType == "" {
				t.Fatalf("entry without a type: %+v", m)
			}
		}
		parseMountInfo(b)
	})
}

func FuzzParseModules(f *testing.F) {
	f.Add([]byte("ahci 49152 2 - Live 0x0\nlibahci 49152 1 ahci, Live 0x0\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, m := range parseModules(b) {
			if m.Name == "" {
				t.Fatal("module without a name")
			}
		}
	})
}

func FuzzParseStat(f *testing.F) {
	f.Add([]byte("1 (goipa (init)) S 0 1 1 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 12 0 10 1000000 300 1\n"))
	f.Add([]byte(")("))
	f.Fuzz(func(t *testing.T, b []byte) { parseStat(b) })
}

func FuzzParseUdev(f *testing.F) {
	f.Add([]byte("S:disk/by-id/x\nE:ID_SERIAL=abc\nE:=skip\n"), []byte("MAJOR=8\nDEVNAME=sda\n"))
	f.Fuzz(func(t *testing.T, data, uevent []byte) {
		m := map[string]string{}
		parseUdevData(data, m)
		parseUevent(uevent, m)
		if _, ok := m[""]; ok {
			t.Fatal("empty key kept")
		}
	})
}

func FuzzStripLogLevels(f *testing.F) {
	f.Add([]byte("<6>[    0.0] Linux\n<4>x\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		out := stripLogLevels(b)
		if len(out) > len(b) {
			t.Fatal("grew")
		}
	})
}
