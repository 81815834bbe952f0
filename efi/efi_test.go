package efi

import (
	"encoding/binary"
	"encoding/hex"
	"strings"
	"testing"
	"testing/fstest"
	"unicode/utf16"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The bytes of Boot entry "goipa" HD(1,GPT,...,0x800,0x100000)/File(\EFI\BOOT\BOOTX64.EFI),
// laid out by hand from UEFI 2.10 sections 3.1.3 and 10.3.5.
var loadOptionVector = strings.Join([]string{
	"01000000",                         // Attributes: LOAD_OPTION_ACTIVE
	"5e00",                             // FilePathListLength: 42 + 48 + 4
	"67006f00690070006100" + "0000",    // "goipa\0"
	"04012a00",                         // media, hard drive, length 42
	"01000000",                         // partition number 1
	"0008000000000000",                 // start LBA 0x800
	"0000100000000000",                 // size 0x100000 blocks
	"3c4a7b2b6e1d2a4f9c8b0123456789ab", // partition GUID, mixed-endian
	"02",                               // partition format: GPT
	"02",                               // signature type: GUID
	"04043000",                         // media, file path, length 48
	hex.EncodeToString(utf16le(`\EFI\BOOT\BOOTX64.EFI`)) + "0000",
	"7fff0400", // end of the entire path
}, "")

func utf16le(s string) []byte {
	u := utf16.Encode([]rune(s))
	b := make([]byte, 2*len(u))
	for i, c := range u {
		binary.LittleEndian.PutUint16(b[2*i:], c)
	}
	return b
}

func testOption(t *testing.T) LoadOption {
	g, err := ParseGUID("2B7B4A3C-1D6E-4F2A-9C8B-0123456789AB")
	require.NoError(t, err)
	return LoadOption{Attributes: LoadOptionActive, Description: "goipa",
		Path: DevicePath{HardDrive(1, 0x800, 0x100000, true, g, 0), FilePath(`\EFI\BOOT\BOOTX64.EFI`)}}
}

func TestLoadOptionMatchesSpecLayout(t *testing.T) {
	want, err := hex.DecodeString(loadOptionVector)
	require.NoError(t, err)
	assert.Equal(t, hex.EncodeToString(want), hex.EncodeToString(testOption(t).Encode()))

	o, err := ParseLoadOption(want)
	require.NoError(t, err)
	assert.Equal(t, "goipa", o.Description)
	assert.Equal(t, `HD(1,GPT,2b7b4a3c-1d6e-4f2a-9c8b-0123456789ab,0x800,0x100000)/File(\EFI\BOOT\BOOTX64.EFI)`, o.Path.String())
	assert.Equal(t, "Boot0003* goipa\t"+o.Path.String(), BootEntry{Num: 3, LoadOption: o}.String())
}

func TestMBRHardDriveNode(t *testing.T) {
	n := HardDrive(2, 2048, 4096, false, GUID{}, 0xdeadbeef)
	assert.Equal(t, "HD(2,MBR,0xdeadbeef,0x800,0x1000)", n.String())
	assert.Len(t, n.Data, 38)
}

func TestParseLoadOptionRejects(t *testing.T) {
	good, _ := hex.DecodeString(loadOptionVector)
	for name, b := range map[string][]byte{
		"empty":             nil,
		"no terminator":     good[:10],
		"path list too big": append(append([]byte{}, good[:4]...), append([]byte{0xff, 0x00}, good[6:]...)...),
		"zero node length":  append(append([]byte{}, good[:18]...), 0x04, 0x01, 0x00, 0x00),
	} {
		_, err := ParseLoadOption(b)
		assert.Error(t, err, name)
	}
}

func TestParseGUID(t *testing.T) {
	g, err := ParseGUID("8BE4DF61-93CA-11D2-AA0D-00E098032B8C")
	require.NoError(t, err)
	assert.Equal(t, GlobalVariable, g)
	for _, bad := range []string{"", "8be4df61-93ca-11d2-aa0d", "8be4df6193ca11d2aa0d00e098032b8c", "zbe4df61-93ca-11d2-aa0d-00e098032b8c"} {
		_, err := ParseGUID(bad)
		assert.Error(t, err, bad)
	}
}

func TestVarsBootEntries(t *testing.T) {
	v := Vars{Dir: t.TempDir()}
	// A firmware entry already there, first in the order.
	fw := LoadOption{Attributes: LoadOptionActive, Description: "UEFI PXEv4", Path: DevicePath{{Type: 0x03, SubType: 0x0b, Data: make([]byte, 33)}}}
	require.NoError(t, v.Set("Boot0000", GlobalVariable, bootVarAttrs, fw.Encode()))
	require.NoError(t, v.SetBootOrder([]uint16{0}))

	n, err := v.AddBootEntry(testOption(t))
	require.NoError(t, err)
	assert.Equal(t, uint16(1), n)
	order, err := v.BootOrder()
	require.NoError(t, err)
	assert.Equal(t, []uint16{1, 0}, order, "the new entry boots first")

	attrs, raw, err := v.Get("Boot0001", GlobalVariable)
	require.NoError(t, err)
	assert.Equal(t, uint32(NonVolatile|BootserviceAccess|RuntimeAccess), attrs)
	want, _ := hex.DecodeString(loadOptionVector)
	assert.Equal(t, want, raw)

	ents, err := v.BootEntries()
	require.NoError(t, err)
	require.Len(t, ents, 2)
	assert.Equal(t, "goipa", ents[1].Description)

	require.NoError(t, v.RemoveBootEntry(1))
	order, err = v.BootOrder()
	require.NoError(t, err)
	assert.Equal(t, []uint16{0}, order)
	ents, err = v.BootEntries()
	require.NoError(t, err)
	assert.Len(t, ents, 1)
	assert.NoError(t, v.RemoveBootEntry(7), "removing an absent entry is fine")
}

func TestVarsSkipGarbageButKeepItsNumber(t *testing.T) {
	v := Vars{Dir: t.TempDir()}
	require.NoError(t, v.Set("Boot0000", GlobalVariable, bootVarAttrs, []byte{1, 2, 3}))
	ents, err := v.BootEntries()
	require.NoError(t, err)
	assert.Empty(t, ents)
	n, err := v.AddBootEntry(testOption(t))
	require.NoError(t, err)
	assert.Equal(t, uint16(1), n, "Boot0000 is taken even if it does not decode")
}

func csvFile(s string, bom bool) []byte {
	b := utf16le(s)
	if bom {
		b = append([]byte{0xff, 0xfe}, b...)
	}
	return b
}

func TestLoaders(t *testing.T) {
	exe := &fstest.MapFile{Data: []byte("MZ")}
	tests := []struct {
		name string
		fs   fstest.MapFS
		want []Loader
	}{
		{"empty ESP", fstest.MapFS{"EFI/.keep": {}}, nil},
		{"removable path only", fstest.MapFS{"EFI/BOOT/BOOTX64.EFI": exe, "EFI/BOOT/fbx64.efi": exe},
			[]Loader{{`\EFI\BOOT\BOOTX64.EFI`, "ironic1"}}},
		{"shim CSV wins (BOM)", fstest.MapFS{
			"EFI/BOOT/BOOTX64.EFI":     exe,
			"EFI/ubuntu/shimx64.efi":   exe,
			"EFI/ubuntu/BOOTX64.CSV":   {Data: csvFile("shimx64.efi,ubuntu,,This is the boot entry for ubuntu\n", true)},
			"EFI/ubuntu/grubx64.efi":   exe,
			"EFI/ubuntu/grub.cfg":      {},
			"EFI/ubuntu/mmx64.efi":     exe,
			"EFI/ubuntu/shimx64.efi.x": exe,
		}, []Loader{{`\EFI\ubuntu\shimx64.efi`, "ubuntu"}}},
		{"CSV without BOM", fstest.MapFS{"EFI/centos/BOOTX64.CSV": {Data: csvFile("shimx64-centos.efi,CentOS Linux\r\n", false)}},
			[]Loader{{`\EFI\centos\shimx64-centos.efi`, "CentOS Linux"}}},
		{"two loaders", fstest.MapFS{"EFI/BOOT/BOOTX64.EFI": exe, "EFI/BOOT/BOOTAA64.EFI": exe},
			[]Loader{{`\EFI\BOOT\BOOTAA64.EFI`, "ironic1"}, {`\EFI\BOOT\BOOTX64.EFI`, "ironic2"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Loaders(tt.fs)
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
	_, err := Loaders(fstest.MapFS{"EFI/x/BOOTX64.CSV": {Data: csvFile("../../evil.efi,x\n", true)}})
	assert.Error(t, err, "a CSV may only name a loader beside it")
	_, err = Loaders(fstest.MapFS{"EFI/x/BOOTX64.CSV": {Data: csvFile("just-one-field", true)}})
	assert.Error(t, err)
}

func FuzzParseLoadOption(f *testing.F) {
	good, _ := hex.DecodeString(loadOptionVector)
	f.Add(good)
	f.Add([]byte{1, 0, 0, 0, 4, 0, 0, 0, 0x7f, 0xff, 4, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		o, err := ParseLoadOption(b)
		if err != nil {
			return
		}
		_ = o.Path.String()
		// What decodes re-encodes to something that decodes the same.
		again, err := ParseLoadOption(o.Encode())
		if err != nil {
			t.Fatalf("re-encoded option does not decode: %v", err)
		}
		if again.Description != strings.Split(o.Description, "\x00")[0] || again.Path.String() != o.Path.String() {
			t.Fatalf("round trip changed the option: %+v vs %+v", o, again)
		}
	})
}

func FuzzParseBootCSV(f *testing.F) {
	f.Add(csvFile("shimx64.efi,ubuntu,,x\n", true))
	f.Add([]byte{0xfe, 0xff, 0, 'a', 0, ',', 0, 'b'})
	f.Fuzz(func(t *testing.T, b []byte) {
		file, _, err := parseBootCSV(b)
		if err == nil && (file == "" || strings.ContainsAny(file, `/\`)) {
			t.Fatalf("accepted loader name %q", file)
		}
	})
}
