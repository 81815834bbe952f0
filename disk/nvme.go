package disk

import (
	"encoding/binary"
	"fmt"
)

// NVMe admin opcodes and log pages goipa uses (NVMe Base 2.0).
const (
	nvmeGetLogPage      = 0x02
	nvmeSanitize        = 0x84
	nvmeLogSanitize     = 0x81
	nvmeSanitizeLogSize = 512
	nvmeNSIDAll         = 0xffffffff
)

// Sanitize actions (SANACT, Sanitize command dword 10 bits 2:0).
const (
	NVMeSanitizeExitFailure = 1
	NVMeSanitizeBlockErase  = 2
	NVMeSanitizeOverwrite   = 3
	NVMeSanitizeCryptoErase = 4
)

// NVMeController is what Identify Controller says about erasing.
type NVMeController struct {
	FormatSupported bool // OACS bit 1
	CryptoErase     bool // FNA bit 2
	// SANICAP (bytes 331:328): which sanitize actions the controller has.
	SanitizeCrypto, SanitizeBlock, SanitizeOverwrite bool
	// NoDeallocInhibited is SANICAP bit 29 (NDI).
	NoDeallocInhibited bool
}

// ParseIdentifyController reads the fields that decide the erase method.
func ParseIdentifyController(id []byte) (NVMeController, error) {
	if len(id) < 4096 {
		return NVMeController{}, fmt.Errorf("identify controller data is %d bytes, want 4096", len(id))
	}
	oacs := binary.LittleEndian.Uint16(id[256:258])
	fna := id[524]
	sanicap := binary.LittleEndian.Uint32(id[328:332])
	return NVMeController{
		FormatSupported: oacs&0x2 != 0, CryptoErase: fna&0x4 != 0,
		SanitizeCrypto: sanicap&0x1 != 0, SanitizeBlock: sanicap&0x2 != 0, SanitizeOverwrite: sanicap&0x4 != 0,
		NoDeallocInhibited: sanicap&(1<<29) != 0,
	}, nil
}

// FormatCdw10 is the Format NVM command's dword 10: the LBA format to
// keep and the secure erase setting (1 user data, 2 cryptographic).
func FormatCdw10(lbaf uint8, ses uint8) uint32 {
	return uint32(lbaf&0xf) | uint32(lbaf>>4&0x3)<<12 | uint32(ses&0x7)<<9
}

// SanitizeCdw10 is the Sanitize command's dword 10 (NVMe Base 2.0
// 5.24): SANACT in bits 2:0, AUSE bit 3 (clear: a failed sanitize must
// be run again, not exited), OWPASS bits 7:4 (overwrite passes, 0 means
// 16), OIPBP bit 8, NDAS bit 9 (clear: deallocate after, so reads return
// the deallocated value).
func SanitizeCdw10(sanact uint8, owpass uint8) uint32 {
	v := uint32(sanact & 0x7)
	if sanact == NVMeSanitizeOverwrite {
		v |= uint32(owpass&0xf) << 4
	}
	return v
}

// GetLogPageCdw10 asks for numBytes (a multiple of 4) of log page lid:
// LID in bits 7:0, NUMDL (0's based dword count) in bits 31:16.
func GetLogPageCdw10(lid uint8, numBytes uint32) uint32 {
	return uint32(lid) | ((numBytes/4-1)&0xffff)<<16
}

// NVMeSanitizeStatus is the Sanitize Status log page (log 81h).
type NVMeSanitizeStatus struct {
	// Progress is SPROG: the fraction done of 65536 while in progress.
	Progress uint16
	// Status is SSTAT bits 2:0 (see the NVMeSanitize* status constants).
	Status uint8
	// OverwritePasses is SSTAT bits 7:3; GlobalDataErased bit 8.
	OverwritePasses  uint8
	GlobalDataErased bool
	// Cdw10 is the dword 10 of the sanitize this status is about.
	Cdw10 uint32
	// Estimates in seconds (0xffffffff: no estimate) for overwrite,
	// block erase and crypto erase.
	EstOverwrite, EstBlockErase, EstCryptoErase uint32
}

// Sanitize Status SSTAT values.
const (
	NVMeSanitizeNever        = 0
	NVMeSanitizeSucceeded    = 1
	NVMeSanitizeInProgress   = 2
	NVMeSanitizeFailed       = 3
	NVMeSanitizeSucceededNDA = 4 // succeeded, deallocation done although NDAS was set
)

// Done reports whether the last sanitize has ended, and whether well.
func (s NVMeSanitizeStatus) Done() (done, ok bool) {
	switch s.Status {
	case NVMeSanitizeInProgress:
		return false, false
	case NVMeSanitizeSucceeded, NVMeSanitizeSucceededNDA:
		return true, true
	}
	return true, false
}

// ParseSanitizeStatus reads the Sanitize Status log page; NVMe 1.3
// controllers return the first 20 bytes, later ones 512.
func ParseSanitizeStatus(b []byte) (NVMeSanitizeStatus, error) {
	var s NVMeSanitizeStatus
	if len(b) < 20 {
		return s, fmt.Errorf("sanitize status log is %d bytes, want at least 20", len(b))
	}
	le := binary.LittleEndian
	s.Progress = le.Uint16(b[0:2])
	sstat := le.Uint16(b[2:4])
	s.Status = uint8(sstat & 0x7)
	s.OverwritePasses = uint8(sstat >> 3 & 0x1f)
	s.GlobalDataErased = sstat&0x100 != 0
	s.Cdw10 = le.Uint32(b[4:8])
	s.EstOverwrite, s.EstBlockErase, s.EstCryptoErase = le.Uint32(b[8:12]), le.Uint32(b[12:16]), le.Uint32(b[16:20])
	if s.Status > NVMeSanitizeSucceededNDA {
		return s, fmt.Errorf("sanitize status 0x%x is reserved", s.Status)
	}
	return s, nil
}

func (s NVMeSanitizeStatus) String() string {
	names := []string{"never sanitized", "succeeded", "in progress", "failed", "succeeded (deallocated)"}
	msg := names[s.Status]
	if s.Status == NVMeSanitizeInProgress {
		msg += fmt.Sprintf(" %.1f%%", 100*float64(s.Progress)/65536)
	}
	return msg
}

// nvmeSanitizeMethod picks the sanitize action: block erase, then crypto
// erase (both Purge in NIST SP 800-88 and done in minutes), overwrite
// only when asked for (hours on a large drive, and wear on flash). want
// 0 means the best the controller has.
func nvmeSanitizeMethod(c NVMeController, want uint8) (uint8, string, bool) {
	type m struct {
		act  uint8
		has  bool
		name string
		auto bool
	}
	for _, x := range []m{
		{NVMeSanitizeBlockErase, c.SanitizeBlock, "nvme-sanitize-block-erase", true},
		{NVMeSanitizeCryptoErase, c.SanitizeCrypto, "nvme-sanitize-crypto-erase", true},
		{NVMeSanitizeOverwrite, c.SanitizeOverwrite, "nvme-sanitize-overwrite", false},
	} {
		if x.has && (want == x.act || want == 0 && x.auto) {
			return x.act, x.name, true
		}
	}
	return 0, "", false
}
