package disk

import (
	"bytes"
	"encoding/binary"
	"testing"

	"golang.org/x/sys/unix"
)

// TestEncodeDMIoctl checks the bytes the kernel reads: struct dm_ioctl's
// version, data_size, data_start, target_count, flags, name and uuid,
// then each dm_target_spec with its next offset (8-byte aligned, from
// this spec) and the NUL-terminated parameters, as populate_table walks
// them.
func TestEncodeDMIoctl(t *testing.T) {
	le := binary.NativeEndian
	for _, tc := range []struct {
		name, dmName, uuid string
		flags              uint32
		targets            []dmTarget
		size               int
	}{
		{"create", "35000c500a1b2c3d4", "mpath-35000c500a1b2c3d4", 0, nil, unix.SizeofDmIoctl},
		{"suspend flag", "x", "", unix.DM_SUSPEND_FLAG, nil, unix.SizeofDmIoctl},
		{"load one multipath target", "35000c500a1b2c3d4", "", 0,
			[]dmTarget{{Length: 524288, Type: "multipath", Params: "0 0 1 1 service-time 0 2 1 8:0 1 8:16 1"}},
			unix.SizeofDmIoctl + 80}, // 40 + 39 + NUL = 80, already aligned
		{"two targets", "lin", "", 0,
			[]dmTarget{{Length: 8, Type: "linear", Params: "8:0 0"}, {Start: 8, Length: 8, Type: "linear", Params: "8:16 0"}},
			unix.SizeofDmIoctl + 48 + 48},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := encodeDMIoctl(tc.dmName, tc.uuid, tc.flags, tc.targets)
			if err != nil {
				t.Fatal(err)
			}
			if len(b) != tc.size {
				t.Fatalf("buffer of %d bytes, want %d", len(b), tc.size)
			}
			if le.Uint32(b[0:]) != 4 || le.Uint32(b[4:]) != 0 || le.Uint32(b[8:]) != 0 {
				t.Errorf("version %v", b[:12])
			}
			if int(le.Uint32(b[12:])) != len(b) || le.Uint32(b[16:]) != unix.SizeofDmIoctl || int(le.Uint32(b[20:])) != len(tc.targets) || le.Uint32(b[28:]) != tc.flags {
				t.Errorf("data_size %d, data_start %d, target_count %d, flags %#x", le.Uint32(b[12:]), le.Uint32(b[16:]), le.Uint32(b[20:]), le.Uint32(b[28:]))
			}
			if got := string(bytes.TrimRight(b[48:176], "\x00")); got != tc.dmName {
				t.Errorf("name %q", got)
			}
			if got := string(bytes.TrimRight(b[176:305], "\x00")); got != tc.uuid {
				t.Errorf("uuid %q", got)
			}
			off := unix.SizeofDmIoctl
			for i, tg := range tc.targets {
				s := b[off:]
				next := int(le.Uint32(s[20:]))
				if le.Uint64(s[0:]) != tg.Start || le.Uint64(s[8:]) != tg.Length || next%8 != 0 || next < unix.SizeofDmTargetSpec+len(tg.Params)+1 {
					t.Errorf("target %d: start %d length %d next %d", i, le.Uint64(s[0:]), le.Uint64(s[8:]), next)
				}
				if got := string(bytes.TrimRight(s[24:40], "\x00")); got != tg.Type {
					t.Errorf("target %d: type %q", i, got)
				}
				params := s[unix.SizeofDmTargetSpec:next]
				if i := bytes.IndexByte(params, 0); i < 0 || string(params[:i]) != tg.Params {
					t.Errorf("target %d: params %q, want %q NUL-terminated", i, params, tg.Params)
				}
				off += next
			}
		})
	}
	for _, bad := range []struct{ name, uuid, typ string }{
		{string(bytes.Repeat([]byte("n"), 128)), "", "linear"},
		{"n", string(bytes.Repeat([]byte("u"), 129)), "linear"},
		{"n", "", "a-target-type-too-long"},
	} {
		if _, err := encodeDMIoctl(bad.name, bad.uuid, 0, []dmTarget{{Length: 1, Type: bad.typ}}); err == nil {
			t.Errorf("name %d bytes, uuid %d bytes, type %q: no error", len(bad.name), len(bad.uuid), bad.typ)
		}
	}
}
