package firmware

import (
	"encoding/binary"
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// identify builds Identify Controller data with the firmware fields at
// the offsets of NVMe Base 2.0 figure 275.
func identify(oacs uint16, frmw, mdts, fwug uint8) []byte {
	id := make([]byte, 4096)
	copy(id[4:24], "SERIAL123           ")
	copy(id[24:64], "QEMU NVMe Ctrl                          ")
	copy(id[64:72], "1.0     ")
	binary.LittleEndian.PutUint16(id[256:], oacs)
	id[260] = frmw
	id[77] = mdts
	id[319] = fwug
	return id
}

func TestParseNVMeIdentify(t *testing.T) {
	for _, tc := range []struct {
		name string
		id   []byte
		want NVMeFirmwareCaps
	}{
		{"QEMU 7.2: format and namespace management, no firmware", identify(0x000a, 0x03, 7, 0),
			NVMeFirmwareCaps{Slots: 1, Slot1ReadOnly: true, MDTS: 7}},
		{"download, 4 slots, slot 1 read-only, no reset", identify(0x0004, 0x1|4<<1|1<<4, 5, 2),
			NVMeFirmwareCaps{Supported: true, Slots: 4, Slot1ReadOnly: true, ActivateWithoutReset: true, MDTS: 5, FWUG: 2}},
		{"download, 7 slots, all writable", identify(0x0004, 7<<1, 0, 0xff),
			NVMeFirmwareCaps{Supported: true, Slots: 7, FWUG: 0xff}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseNVMeIdentify(tc.id)
			require.NoError(t, err)
			tc.want.Serial, tc.want.Model, tc.want.Revision = "SERIAL123", "QEMU NVMe Ctrl", "1.0"
			assert.Equal(t, tc.want, got)
		})
	}
	_, err := ParseNVMeIdentify(make([]byte, 100))
	assert.Error(t, err)
}

func TestGranularityAndMaxTransfer(t *testing.T) {
	for _, tc := range []struct {
		fwug, mdts, mpsmin uint8
		gran               int
		max                int64
	}{
		{fwug: 0, mdts: 0, gran: 4096, max: 0},                    // no information, no limit
		{fwug: 0xff, mdts: 5, gran: 4096, max: 128 << 10},         // no restriction; 2^5 * 4 KiB
		{fwug: 1, mdts: 5, mpsmin: 1, gran: 4096, max: 256 << 10}, // 8 KiB pages
		{fwug: 8, mdts: 1, gran: 32 << 10, max: 8 << 10},
	} {
		c := NVMeFirmwareCaps{FWUG: tc.fwug, MDTS: tc.mdts}
		assert.Equal(t, tc.gran, c.Granularity(), "FWUG %#x", tc.fwug)
		assert.Equal(t, tc.max, c.MaxTransfer(tc.mpsmin), "MDTS %d MPSMIN %d", tc.mdts, tc.mpsmin)
	}
}

func TestPlanDownload(t *testing.T) {
	for _, tc := range []struct {
		name        string
		size        int64
		gran        int
		max         int64
		want        []Chunk
		wantErr     bool
		unsupported bool
	}{
		{"one chunk", 4096, 4096, 128 << 10, []Chunk{{0, 4096}}, false, false},
		{"MDTS splits, short last", 300 << 10, 4096, 128 << 10, []Chunk{{0, 128 << 10}, {128 << 10, 128 << 10}, {256 << 10, 44 << 10}}, false, false},
		{"chunk rounded down to FWUG", 100 << 10, 12 << 10, 32 << 10, []Chunk{{0, 24 << 10}, {24 << 10, 24 << 10}, {48 << 10, 24 << 10}, {72 << 10, 24 << 10}, {96 << 10, 4 << 10}}, false, false},
		{"no MDTS limit: 256 KiB", 600 << 10, 4096, 0, []Chunk{{0, 256 << 10}, {256 << 10, 256 << 10}, {512 << 10, 88 << 10}}, false, false},
		{"FWUG above MDTS", 64 << 10, 32 << 10, 8 << 10, nil, true, true},
		{"not dwords", 4097, 4096, 0, nil, true, false},
		{"empty", 0, 4096, 0, nil, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := PlanDownload(tc.size, tc.gran, tc.max)
			if tc.wantErr {
				require.Error(t, err)
				assert.Equal(t, tc.unsupported, errors.Is(err, ErrNVMeUnsupported))
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
			for _, c := range got {
				assert.Zero(t, c.Offset%int64(tc.gran), "offset aligned to FWUG")
			}
		})
	}
}

// TestCommandDwords checks the encodings against NVMe Base 2.0:
// Firmware Image Download dword 10 NUMD (0's based dwords), dword 11
// OFST (dwords); Firmware Commit dword 10 FS bits 2:0, CA bits 5:3; Get
// Log Page dword 10 LID bits 7:0, NUMDL bits 31:16.
func TestCommandDwords(t *testing.T) {
	c := Chunk{Offset: 128 << 10, Length: 4096}
	assert.Equal(t, uint32(1023), c.Cdw10())
	assert.Equal(t, uint32(32768), c.Cdw11())
	for _, tc := range []struct {
		slot   int
		action CommitAction
		want   uint32
	}{
		{1, CommitReplace, 0x01},
		{2, CommitReplaceActivateOnReset, 0x0a},
		{3, CommitActivateOnReset, 0x13},
		{7, CommitReplaceActivateNow, 0x1f},
		{0, CommitReplaceActivateOnReset, 0x08},
	} {
		assert.Equal(t, tc.want, CommitCdw10(tc.slot, tc.action), "slot %d action %d", tc.slot, tc.action)
	}
	assert.Equal(t, uint32(0x007f0003), SlotLogCdw10())
}

func TestCommitStatus(t *testing.T) {
	for _, tc := range []struct {
		status      uint16
		pending, ok bool
	}{
		{0x10b, true, true}, {0x110, true, true}, {0x111, true, true},
		{0x106, false, false}, // invalid firmware slot
		{0x107, false, false}, // invalid firmware image
		{0x113, false, false}, // activation prohibited
		{0x00b, false, false}, // generic 0Bh is not the command-specific one
	} {
		p, ok := CommitStatus(tc.status)
		assert.Equal(t, tc.pending, p, "%#x", tc.status)
		assert.Equal(t, tc.ok, ok, "%#x", tc.status)
	}
}

func TestCheckUpdate(t *testing.T) {
	caps := NVMeFirmwareCaps{Supported: true, Slots: 3, Slot1ReadOnly: true}
	assert.NoError(t, caps.CheckUpdate(2, CommitReplaceActivateOnReset))
	assert.Equal(t, 2, caps.FirstWritableSlot())
	for name, err := range map[string]error{
		"slot 1 read-only": caps.CheckUpdate(1, CommitReplaceActivateOnReset),
		"slot 4 missing":   caps.CheckUpdate(4, CommitReplaceActivateOnReset),
		"now without FRMW": caps.CheckUpdate(2, CommitReplaceActivateNow),
		"no OACS bit 2":    NVMeFirmwareCaps{Slots: 7}.CheckUpdate(1, CommitReplaceActivateOnReset),
	} {
		assert.ErrorIs(t, err, ErrNVMeUnsupported, name)
	}
}

func slotLog(active, next uint8, revs ...string) []byte {
	b := make([]byte, 512)
	b[0] = active | next<<4
	for i, r := range revs {
		copy(b[8+8*i:16+8*i], r)
	}
	return b
}

func TestParseNVMeSlotLog(t *testing.T) {
	l, err := ParseNVMeSlotLog(slotLog(2, 3, "1.0     ", "2.0     ", "3.0\x00\x00\x00\x00\x00"))
	require.NoError(t, err)
	assert.Equal(t, 2, l.Active)
	assert.Equal(t, 3, l.NextReset)
	assert.Equal(t, "2.0", l.Running())
	assert.Equal(t, map[string]string{"1": "1.0", "2": "2.0", "3": "3.0"}, l.Slots())
	l, err = ParseNVMeSlotLog(slotLog(0, 0))
	require.NoError(t, err)
	assert.Equal(t, "", l.Running())
	_, err = ParseNVMeSlotLog(make([]byte, 10))
	assert.Error(t, err)
}

func FuzzParseNVMeIdentify(f *testing.F) {
	f.Add(identify(0x0004, 0x1|4<<1|1<<4, 5, 2))
	f.Add(identify(0, 0, 0, 0xff))
	f.Add([]byte{1, 2, 3})
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ParseNVMeIdentify(b)
		if err != nil {
			return
		}
		if c.Slots < 0 || c.Slots > 7 {
			t.Fatalf("slots %d", c.Slots)
		}
		if g := c.Granularity(); g < 4096 || g%4096 != 0 {
			t.Fatalf("granularity %d", g)
		}
		if c.FirstWritableSlot() < 1 || c.FirstWritableSlot() > 2 {
			t.Fatal("first writable slot")
		}
		chunks, err := PlanDownload(1<<20, c.Granularity(), c.MaxTransfer(uint8(len(b))))
		if err == nil {
			var next int64
			for _, ch := range chunks {
				if ch.Offset != next || ch.Length <= 0 || ch.Offset%int64(c.Granularity()) != 0 {
					t.Fatalf("chunk %+v", ch)
				}
				if m := c.MaxTransfer(uint8(len(b))); m > 0 && ch.Length > m {
					t.Fatalf("chunk %+v above MDTS %d", ch, m)
				}
				next += ch.Length
			}
			if next != 1<<20 {
				t.Fatalf("chunks cover %d", next)
			}
		}
	})
}

func FuzzParseNVMeSlotLog(f *testing.F) {
	f.Add(slotLog(2, 3, "1.0     ", "2.0     "))
	f.Add(make([]byte, 64))
	f.Add([]byte{0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		l, err := ParseNVMeSlotLog(b)
		if err != nil {
			return
		}
		if l.Active > 7 || l.NextReset > 7 {
			t.Fatalf("slots %d %d", l.Active, l.NextReset)
		}
		for s, r := range l.Slots() {
			if r == "" || len(r) > 8 || s < "1" || s > "7" {
				t.Fatalf("slot %s %q", s, r)
			}
		}
		_ = l.Running()
	})
}

func TestNVMeInventoryOf(t *testing.T) {
	inv, err := NVMeInventoryOf("nvme0", identify(0x0004, 0x1|3<<1, 5, 0), slotLog(2, 3, "1.0", "2.0", "3.0"))
	require.NoError(t, err)
	assert.Equal(t, NVMeInventory{Controller: "nvme0", Running: "2.0", ActiveSlot: 2, NextResetSlot: 3,
		Slots: map[string]string{"1": "1.0", "2": "2.0", "3": "3.0"}, SlotCount: 3, Slot1ReadOnly: true, UpdateSupported: true}, inv)
	// A slot log without an active slot: the revision Identify gives.
	inv, err = NVMeInventoryOf("nvme1", identify(0, 0x3, 0, 0), slotLog(0, 0))
	require.NoError(t, err)
	assert.Equal(t, "1.0", inv.Running)
	assert.False(t, inv.UpdateSupported)
}
