package mdraid

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"
	"time"
)

func TestChecksumByHand(t *testing.T) {
	for _, tc := range []struct {
		name string
		sb   Superblock
		want uint32
	}{
		// magic + major version, nothing else.
		{"empty", Superblock{}, 0xa92b4efc + 1},
		// the high word of size adds one.
		{"high word", Superblock{Size: 1 << 32}, 0xa92b4efc + 1 + 1},
		// level -1 overflows 32 bits: the carry is folded back in.
		{"fold", Superblock{Level: -1}, 0xa92b4efc + 1 - 1 + 1},
		// one role slot: max_dev 1 and a trailing half word.
		{"odd role table", Superblock{DevRoles: []uint16{5}}, 0xa92b4efc + 1 + 1 + 5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := tc.sb.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			if got := binary.LittleEndian.Uint32(b[216:]); got != tc.want {
				t.Errorf("checksum %#x, want %#x", got, tc.want)
			}
			if len(b) != 512 {
				t.Errorf("marshalled %d bytes, want one 512-byte sector", len(b))
			}
		})
	}
}

func TestMarshalParseRoundTrip(t *testing.T) {
	sb := &Superblock{
		SetUUID: [16]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}, SetName: "goipa:md0",
		CTime: 1700000000, UTime: 1700000001, Level: 1, Size: 10475520, RaidDisks: 2,
		DataOffset: 10240, DataSize: 10475520, SuperOffset: 8, DevNumber: 1, Events: 7,
		DeviceUUID: [16]byte{0xaa}, DevRoles: []uint16{0, 1, RoleSpare, RoleFaulty},
	}
	b, err := sb.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	// Field offsets of struct mdp_superblock_1, checked on the bytes.
	for _, f := range []struct {
		off  int
		want uint64
		n    int
	}{{0, Magic, 4}, {4, 1, 4}, {72, 1, 4}, {80, 10475520, 8}, {92, 2, 4}, {128, 10240, 8}, {136, 10475520, 8},
		{144, 8, 8}, {160, 1, 4}, {192, 1700000001, 8}, {200, 7, 8}, {220, 4, 4}, {256, 0, 2}, {258, 1, 2}, {260, 0xffff, 2}, {262, 0xfffe, 2}} {
		var got uint64
		switch f.n {
		case 2:
			got = uint64(binary.LittleEndian.Uint16(b[f.off:]))
		case 4:
			got = uint64(binary.LittleEndian.Uint32(b[f.off:]))
		case 8:
			got = binary.LittleEndian.Uint64(b[f.off:])
		}
		if got != f.want {
			t.Errorf("offset %d: %d, want %d", f.off, got, f.want)
		}
	}
	if !bytes.Equal(b[32:41], []byte("goipa:md0")) || b[168] != 0xaa {
		t.Error("name or device UUID misplaced")
	}
	back, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	if back.SetName != sb.SetName || back.DataOffset != sb.DataOffset || back.Role() != 1 || back.VolumeName() != "md0" || back.Level != 1 {
		t.Errorf("round trip: %+v", back)
	}
	if back.UUID() != "01020304:05060708:090a0b0c:0d0e0f10" {
		t.Errorf("UUID %s", back.UUID())
	}
	again, _ := back.Marshal()
	if !bytes.Equal(again, b) {
		t.Error("re-marshalled bytes differ")
	}
}

func TestParseRejects(t *testing.T) {
	good, _ := (&Superblock{DevRoles: []uint16{0, 1}}).Marshal()
	for _, tc := range []struct {
		name string
		mod  func(b []byte) []byte
	}{
		{"short", func(b []byte) []byte { return b[:100] }},
		{"magic", func(b []byte) []byte { b[0] ^= 1; return b }},
		{"version", func(b []byte) []byte { b[4] = 2; return b }},
		{"checksum", func(b []byte) []byte { b[100] ^= 1; return b }},
		{"padding", func(b []byte) []byte { b[12] = 1; return b }},
		{"features", func(b []byte) []byte { b[10] = 0x80; return b }},
		{"max_dev past the buffer", func(b []byte) []byte { binary.LittleEndian.PutUint32(b[220:], 1000); return b }},
		{"max_dev beyond 4 KiB", func(b []byte) []byte { binary.LittleEndian.PutUint32(b[220:], 2000); return b }},
	} {
		b := tc.mod(bytes.Clone(good))
		var pe *ParseError
		if _, err := Parse(b); !errors.As(err, &pe) {
			t.Errorf("%s: got %v, want a ParseError", tc.name, err)
		}
	}
}

// TestSuperblocksByHand checks the data offsets and sizes against
// values worked out by hand from mdadm's rules (the 300 GiB case is the
// 264192-sector offset every mdadm user has seen).
func TestSuperblocksByHand(t *testing.T) {
	now := time.Unix(1700000000, 0)
	for _, tc := range []struct {
		name                  string
		spec                  Spec
		members               []uint64
		dataOffset, superOff  uint64
		dataSize, size, array uint64
	}{
		{"raid1 1.2 on 5 GiB", Spec{Level: 1, Metadata: Metadata12}, []uint64{10485760, 10485760}, 10240, 8, 10475520, 10475520, 10475520},
		{"raid1 1.2 on 1 GiB", Spec{Level: 1, Metadata: Metadata12}, []uint64{2097152, 2097152}, 4096, 8, 2093056, 2093056, 2093056},
		{"raid1 1.2 on 300 GiB", Spec{Level: 1, Metadata: Metadata12}, []uint64{629145600, 629145600}, 264192, 8, 628881408, 628881408, 628881408},
		// smaller member decides the size; rounded to 64 KiB
		{"raid1 uneven", Spec{Level: 1, Metadata: Metadata12}, []uint64{2097152 + 100, 2097152}, 4096, 8, 2093156, 2093056, 2093056},
		{"esp mirror 1.0", Spec{Level: 1, Metadata: Metadata10, Name: "esp"}, []uint64{1126400, 1126400}, 0, 1126384, 1126368, 1126272, 1126272},
		{"raid0 1.2 on 2 GiB", Spec{Level: 0, Metadata: Metadata12}, []uint64{4194304, 4194304}, 6144, 8, 4188160, 4188160, 2 * 4188160},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.spec.Time = now
			uu := make([][16]byte, len(tc.members))
			sbs, err := tc.spec.Superblocks(tc.members, uu)
			if err != nil {
				t.Fatal(err)
			}
			sb := sbs[0]
			if sb.DataOffset != tc.dataOffset || sb.SuperOffset != tc.superOff || sb.DataSize != tc.dataSize || sb.Size != tc.size {
				t.Errorf("data_offset %d super_offset %d data_size %d size %d; want %d %d %d %d",
					sb.DataOffset, sb.SuperOffset, sb.DataSize, sb.Size, tc.dataOffset, tc.superOff, tc.dataSize, tc.size)
			}
			if got := ArraySectors(tc.spec.Level, sbs); got != tc.array {
				t.Errorf("array %d sectors, want %d", got, tc.array)
			}
			for i, sb := range sbs {
				if sb.DevNumber != uint32(i) || sb.Role() != uint16(i) || len(sb.DevRoles) != 128 || sb.DevRoles[len(tc.members)] != RoleSpare {
					t.Errorf("member %d: dev_number %d role %d slots %d", i, sb.DevNumber, sb.Role(), len(sb.DevRoles))
				}
				if sb.CTime != 1700000000 || sb.RaidDisks != uint32(len(tc.members)) {
					t.Errorf("member %d: ctime %d raid_disks %d", i, sb.CTime, sb.RaidDisks)
				}
			}
			if tc.spec.Level == 1 && sb.ResyncOffset != 0 {
				t.Error("a new mirror must ask for a resync, as mdadm without --assume-clean")
			}
			if tc.spec.Level == 0 && (sb.ChunkSize != 1024 || sb.FeatureMap&featureRAID0Layout == 0) {
				t.Errorf("raid0: chunk %d features %#x", sb.ChunkSize, sb.FeatureMap)
			}
		})
	}
}

func TestSuperblocksRefuse(t *testing.T) {
	uu := make([][16]byte, 2)
	var le *UnsupportedLevelError
	if _, err := (Spec{Level: 5, Metadata: Metadata12}).Superblocks([]uint64{1 << 22, 1 << 22}, uu); !errors.As(err, &le) {
		t.Errorf("raid5: %v", err)
	}
	if _, err := (Spec{Level: 1, Metadata: Metadata12}).Superblocks([]uint64{1 << 22}, uu[:1]); err == nil {
		t.Error("one member accepted")
	}
	if _, err := (Spec{Level: 1, Metadata: 1}).Superblocks([]uint64{1 << 22, 1 << 22}, uu); err == nil {
		t.Error("metadata 1.1 accepted")
	}
	if _, err := (Spec{Level: 1, Metadata: Metadata12}).Superblocks([]uint64{4000, 4000}, uu); err == nil {
		t.Error("tiny members accepted")
	}
}

func TestHomeHostName(t *testing.T) {
	sbs, err := Spec{Level: 1, Metadata: Metadata12, Name: "md0", HomeHost: "ramdisk"}.Superblocks([]uint64{1 << 22, 1 << 22}, make([][16]byte, 2))
	if err != nil {
		t.Fatal(err)
	}
	if sbs[0].SetName != "ramdisk:md0" || sbs[0].VolumeName() != "md0" {
		t.Errorf("name %q volume %q", sbs[0].SetName, sbs[0].VolumeName())
	}
}

func TestExamineFindsEveryVersion(t *testing.T) {
	const n = 1 << 16 // sectors
	for _, minor := range []int{0, 2} {
		img := make([]byte, n*512)
		sbs, err := Spec{Level: 1, Metadata: minor}.Superblocks([]uint64{n, n}, make([][16]byte, 2))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := sbs[1].Marshal()
		copy(img[sbs[1].SuperOffset*512:], b)
		got, m, err := examine(bytes.NewReader(img), n)
		if err != nil || m != minor || got.DevNumber != 1 {
			t.Errorf("metadata 1.%d: got %v minor %d err %v", minor, got, m, err)
		}
		// A superblock copied elsewhere (a stale copy inside data) does not count.
		moved := make([]byte, n*512)
		copy(moved[16*512:], b)
		if _, _, err := examine(bytes.NewReader(moved), n); !errors.Is(err, ErrNoSuperblock) {
			t.Errorf("metadata 1.%d: a superblock at the wrong offset was accepted: %v", minor, err)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, sb := range []*Superblock{
		{},
		{Level: 1, RaidDisks: 2, DevRoles: []uint16{0, 1}, SetName: "host:md0", DataOffset: 10240, SuperOffset: 8},
		{Level: 0, ChunkSize: 1024, FeatureMap: featureRAID0Layout, DevRoles: make([]uint16, 128)},
		{DevRoles: []uint16{7}},
	} {
		b, _ := sb.Marshal()
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		sb, err := Parse(b)
		if err != nil {
			return
		}
		// Whatever parses must re-encode to a superblock that parses to
		// the same fields.
		out, err := sb.Marshal()
		if err != nil {
			return // a name with bytes past 32 after trimming cannot happen; roles fit
		}
		back, err := Parse(out)
		if err != nil {
			t.Fatalf("re-encoded superblock does not parse: %v", err)
		}
		if back.Level != sb.Level || back.DataOffset != sb.DataOffset || len(back.DevRoles) != len(sb.DevRoles) || back.SetName != sb.SetName {
			t.Fatalf("round trip changed fields: %+v vs %+v", back, sb)
		}
	})
}
