package firmware

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
)

// NVMe admin opcodes and the log page of firmware updates (NVMe Base
// Specification 2.0, 5.12, 5.13 and 5.16.1.4).
const (
	nvmeOpGetLogPage       = 0x02
	nvmeOpIdentify         = 0x06
	nvmeOpFirmwareCommit   = 0x10
	nvmeOpFirmwareDownload = 0x11
	nvmeLogFirmwareSlot    = 0x03
	nvmeSlotLogSize        = 512
	nvmeIdentifySize       = 4096
)

// CommitAction is the Firmware Commit command's CA field (dword 10 bits
// 5:3).
type CommitAction uint8

// The commit actions of NVMe Base 2.0 figure 200 that goipa uses.
const (
	// CommitReplace stores the downloaded image in the slot, not activated.
	CommitReplace CommitAction = 0
	// CommitReplaceActivateOnReset stores it and activates it at the next
	// controller reset.
	CommitReplaceActivateOnReset CommitAction = 1
	// CommitActivateOnReset activates the image already in the slot at
	// the next reset.
	CommitActivateOnReset CommitAction = 2
	// CommitReplaceActivateNow stores it and activates it at once,
	// without a reset (FRMW bit 4).
	CommitReplaceActivateNow CommitAction = 3
)

// fallbackGranularity is the alignment used when FWUG gives no
// information (0) or no restriction (0xFF): 4 KiB, what the field counts
// in and what every controller takes.
const fallbackGranularity = 4096

// defaultMaxChunk bounds a download command when MDTS sets no limit:
// controllers with MDTS 0 still take small commands best.
const defaultMaxChunk = 256 << 10

// NVMeFirmwareCaps is what Identify Controller says about firmware
// updates.
type NVMeFirmwareCaps struct {
	Serial, Model, Revision string
	// Supported is OACS bit 2: Firmware Commit and Image Download.
	Supported bool
	// Slots is FRMW bits 3:1, the number of firmware slots (1-7).
	Slots int
	// Slot1ReadOnly is FRMW bit 0.
	Slot1ReadOnly bool
	// ActivateWithoutReset is FRMW bit 4.
	ActivateWithoutReset bool
	// MDTS is the maximum data transfer size as Identify gives it: a
	// power of two in units of the minimum memory page size (0: no limit).
	MDTS uint8
	// FWUG is the firmware update granularity in 4 KiB units (0: no
	// information, 0xFF: no restriction).
	FWUG uint8
}

// ParseNVMeIdentify reads the firmware fields of an Identify Controller
// data structure (CNS 01h).
func ParseNVMeIdentify(id []byte) (NVMeFirmwareCaps, error) {
	if len(id) < nvmeIdentifySize {
		return NVMeFirmwareCaps{}, fmt.Errorf("identify controller data is %d bytes, want %d", len(id), nvmeIdentifySize)
	}
	oacs := binary.LittleEndian.Uint16(id[256:258])
	frmw := id[260]
	return NVMeFirmwareCaps{
		Serial:               asciiField(id[4:24]),
		Model:                asciiField(id[24:64]),
		Revision:             asciiField(id[64:72]),
		Supported:            oacs&(1<<2) != 0,
		Slots:                int(frmw >> 1 & 0x7),
		Slot1ReadOnly:        frmw&1 != 0,
		ActivateWithoutReset: frmw&(1<<4) != 0,
		MDTS:                 id[77],
		FWUG:                 id[319],
	}, nil
}

// asciiField trims an Identify string field (space padded, sometimes
// NUL padded by firmware that ignores the spec).
func asciiField(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(bytes.TrimSpace(b))
}

// Granularity is the alignment and size multiple of every download
// command but the last.
func (c NVMeFirmwareCaps) Granularity() int {
	if c.FWUG == 0 || c.FWUG == 0xff {
		return fallbackGranularity
	}
	return int(c.FWUG) * 4096
}

// MaxTransfer is the largest data transfer the controller takes, from
// MDTS and CAP.MPSMIN (the minimum memory page size is 2^(12+MPSMIN)),
// or 0 when MDTS sets no limit.
func (c NVMeFirmwareCaps) MaxTransfer(mpsmin uint8) int64 {
	if c.MDTS == 0 {
		return 0
	}
	shift := uint(c.MDTS) + 12 + uint(mpsmin&0xf)
	if shift > 40 {
		shift = 40 // beyond any transfer goipa would make
	}
	return int64(1) << shift
}

// FirstWritableSlot is the default slot: 1 unless slot 1 is read-only.
func (c NVMeFirmwareCaps) FirstWritableSlot() int {
	if c.Slot1ReadOnly {
		return 2
	}
	return 1
}

// ErrNVMeUnsupported says the controller does not take firmware
// updates in the way asked; nothing was sent to it.
var ErrNVMeUnsupported = errors.New("the NVMe controller cannot take this firmware update")

// CheckUpdate decides whether the controller takes an image into slot
// with the action, before anything is sent.
func (c NVMeFirmwareCaps) CheckUpdate(slot int, action CommitAction) error {
	if !c.Supported {
		return fmt.Errorf("%w: no Firmware Image Download / Firmware Commit (Identify Controller OACS bit 2 clear)", ErrNVMeUnsupported)
	}
	if c.Slots < 1 {
		return fmt.Errorf("%w: Identify Controller FRMW reports no firmware slots", ErrNVMeUnsupported)
	}
	if slot < 1 || slot > c.Slots {
		return fmt.Errorf("%w: slot %d: the controller has slots 1 to %d", ErrNVMeUnsupported, slot, c.Slots)
	}
	if slot == 1 && c.Slot1ReadOnly && action != CommitActivateOnReset {
		return fmt.Errorf("%w: slot 1 is read-only (FRMW bit 0)", ErrNVMeUnsupported)
	}
	if action == CommitReplaceActivateNow && !c.ActivateWithoutReset {
		return fmt.Errorf("%w: activation without reset (FRMW bit 4 clear); use activate \"reset\"", ErrNVMeUnsupported)
	}
	return nil
}

// Chunk is one Firmware Image Download command: Length bytes of the
// image from Offset.
type Chunk struct {
	Offset, Length int64
}

// Cdw10 is NUMD, the 0's based number of dwords to transfer.
func (c Chunk) Cdw10() uint32 { return uint32(c.Length/4 - 1) }

// Cdw11 is OFST, the offset in dwords from the start of the image.
func (c Chunk) Cdw11() uint32 { return uint32(c.Offset / 4) }

// PlanDownload splits an image of size bytes into download commands no
// larger than maxTransfer (0: no limit, then defaultMaxChunk) whose
// offsets and sizes are multiples of the granularity (the last may be
// shorter). The image must be a whole number of dwords.
func PlanDownload(size int64, granularity int, maxTransfer int64) ([]Chunk, error) {
	if size <= 0 {
		return nil, errors.New("the firmware image is empty")
	}
	if size%4 != 0 {
		return nil, fmt.Errorf("the firmware image is %d bytes, not a whole number of dwords", size)
	}
	if granularity <= 0 || granularity%4 != 0 {
		return nil, fmt.Errorf("update granularity %d is not a positive number of dwords", granularity)
	}
	if size/4 > 1<<32 {
		return nil, fmt.Errorf("the firmware image is %d bytes, beyond a download command's dword offset", size)
	}
	limit := maxTransfer
	if limit <= 0 || limit > defaultMaxChunk {
		limit = defaultMaxChunk
	}
	chunk := limit / int64(granularity) * int64(granularity)
	if chunk == 0 {
		return nil, fmt.Errorf("%w: the update granularity (%d bytes) is larger than the maximum data transfer (%d bytes)", ErrNVMeUnsupported, granularity, maxTransfer)
	}
	var out []Chunk
	for off := int64(0); off < size; off += chunk {
		out = append(out, Chunk{Offset: off, Length: min(chunk, size-off)})
	}
	return out, nil
}

// CommitCdw10 is the Firmware Commit command's dword 10: FS (the slot;
// 0 lets the controller choose) in bits 2:0, CA in bits 5:3, BPID (bit
// 31) clear.
func CommitCdw10(slot int, action CommitAction) uint32 {
	return uint32(slot&0x7) | uint32(action&0x7)<<3
}

// SlotLogCdw10 is Get Log Page's dword 10 for the Firmware Slot
// Information log: LID 03h and NUMDL, the 0's based dword count.
func SlotLogCdw10() uint32 {
	return nvmeLogFirmwareSlot | (nvmeSlotLogSize/4-1)<<16
}

// NVMeSlotLog is the Firmware Slot Information log page (03h).
type NVMeSlotLog struct {
	// Active is the slot the running firmware came from (AFI bits 2:0).
	Active int
	// NextReset is the slot activated at the next reset, 0 for none
	// (AFI bits 6:4).
	NextReset int
	// Revisions holds FRS1..FRS7; "" for an empty slot.
	Revisions [7]string
}

// ParseNVMeSlotLog reads the Firmware Slot Information log page.
func ParseNVMeSlotLog(b []byte) (NVMeSlotLog, error) {
	if len(b) < 64 {
		return NVMeSlotLog{}, fmt.Errorf("firmware slot log is %d bytes, want at least 64", len(b))
	}
	l := NVMeSlotLog{Active: int(b[0] & 0x7), NextReset: int(b[0] >> 4 & 0x7)}
	for i := range l.Revisions {
		l.Revisions[i] = asciiField(b[8+8*i : 16+8*i])
	}
	return l, nil
}

// Running is the revision of the active slot.
func (l NVMeSlotLog) Running() string {
	if l.Active < 1 || l.Active > 7 {
		return ""
	}
	return l.Revisions[l.Active-1]
}

// Slots maps slot numbers to revisions, empty slots left out.
func (l NVMeSlotLog) Slots() map[string]string {
	m := map[string]string{}
	for i, r := range l.Revisions {
		if r != "" {
			m[fmt.Sprint(i+1)] = r
		}
	}
	return m
}

// CommitStatus reads a Firmware Commit's non-zero status (type in bits
// 10:8, code in 7:0): the command-specific codes that say the image is
// committed but needs a reset to run (NVMe Base 2.0 figure 202: 0Bh
// conventional reset, 10h NVM subsystem reset, 11h controller level
// reset) are a success with the activation pending; ok is false for a
// failure.
func CommitStatus(status uint16) (pendingReset, ok bool) {
	sct, sc := status>>8&0x7, status&0xff
	if sct == 1 && (sc == 0x0b || sc == 0x10 || sc == 0x11) {
		return true, true
	}
	return false, false
}
