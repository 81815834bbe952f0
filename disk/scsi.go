package disk

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// SCSI opcodes and service actions goipa sends (SPC-5, SBC-4).
const (
	scsiRequestSense       = 0x03
	scsiSanitize           = 0x48
	scsiMaintenanceIn      = 0xa3
	scsiReportSupportedOps = 0x0c // MAINTENANCE IN service action

	// SANITIZE service actions (SBC-4 5.30).
	SanitizeOverwrite   = 0x01
	SanitizeBlockErase  = 0x02
	SanitizeCryptoErase = 0x03
	SanitizeExitFailure = 0x1f
)

// Sense keys goipa branches on (SPC-5 4.4.8).
const (
	SenseNoSense        = 0x0
	SenseRecoveredError = 0x1
	SenseNotReady       = 0x2
	SenseMediumError    = 0x3
	SenseIllegalRequest = 0x5
	SenseAbortedCommand = 0xb
)

// Sense is the part of SCSI sense data goipa reads, from either format.
type Sense struct {
	Key       uint8
	ASC, ASCQ uint8
	// Progress is the sense-key-specific progress indication (numerator
	// of 65536), valid when HasProgress.
	Progress    uint16
	HasProgress bool
	// ATA is the ATA Status Return descriptor (SAT-4 12.2.2.6) when the
	// sense carries one: what an ATA PASS-THROUGH command ended with.
	ATA *ATAReturn
}

// ATAReturn is the taskfile an ATA device returned through a SATL.
type ATAReturn struct {
	Error, Status, Device uint8
	Count                 uint16
	LBA                   uint64
}

func (s Sense) String() string {
	msg := fmt.Sprintf("sense key 0x%x, ASC/ASCQ 0x%02x/0x%02x", s.Key, s.ASC, s.ASCQ)
	if s.HasProgress {
		msg += fmt.Sprintf(", progress %.1f%%", 100*float64(s.Progress)/65536)
	}
	if s.ATA != nil {
		msg += fmt.Sprintf(", ATA status 0x%02x error 0x%02x", s.ATA.Status, s.ATA.Error)
	}
	return msg
}

// SanitizeInProgress says the sense is "LOGICAL UNIT NOT READY, SANITIZE
// IN PROGRESS" (SPC-5 table 49: NOT READY, 04h/1Bh).
func (s Sense) SanitizeInProgress() bool {
	return s.Key == SenseNotReady && s.ASC == 0x04 && s.ASCQ == 0x1b
}

// SanitizeFailed says the sense is "SANITIZE COMMAND FAILED" (31h/03h).
func (s Sense) SanitizeFailed() bool { return s.ASC == 0x31 && s.ASCQ == 0x03 }

// ParseSense reads fixed (70h/71h) or descriptor (72h/73h) format sense
// data (SPC-5 4.4). Empty sense is no error: key NO SENSE.
func ParseSense(b []byte) (Sense, error) {
	var s Sense
	if len(b) == 0 {
		return s, nil
	}
	switch b[0] & 0x7f {
	case 0x70, 0x71:
		if len(b) < 14 {
			return s, fmt.Errorf("fixed-format sense is %d bytes, want at least 14", len(b))
		}
		s.Key = b[2] & 0x0f
		s.ASC, s.ASCQ = b[12], b[13]
		if len(b) >= 18 && b[15]&0x80 != 0 && (s.Key == SenseNoSense || s.Key == SenseNotReady) {
			s.Progress, s.HasProgress = binary.BigEndian.Uint16(b[16:18]), true
		}
		return s, nil
	case 0x72, 0x73:
		if len(b) < 8 {
			return s, fmt.Errorf("descriptor-format sense is %d bytes, want at least 8", len(b))
		}
		s.Key = b[1] & 0x0f
		s.ASC, s.ASCQ = b[2], b[3]
		end := min(8+int(b[7]), len(b))
		for p := 8; p+2 <= end; {
			typ, n := b[p], int(b[p+1])
			d := b[p:min(p+2+n, end)]
			switch {
			case typ == 0x02 && len(d) >= 7 && d[4]&0x80 != 0 && (s.Key == SenseNoSense || s.Key == SenseNotReady):
				s.Progress, s.HasProgress = binary.BigEndian.Uint16(d[5:7]), true
			case typ == 0x09 && len(d) >= 14:
				r := &ATAReturn{Error: d[3], Device: d[12], Status: d[13]}
				r.Count = uint16(d[5])
				r.LBA = uint64(d[7]) | uint64(d[9])<<8 | uint64(d[11])<<16
				if d[2]&0x01 != 0 { // EXTEND: the high bytes are valid
					r.Count |= uint16(d[4]) << 8
					r.LBA |= uint64(d[6])<<24 | uint64(d[8])<<32 | uint64(d[10])<<40
				}
				s.ATA = r
			}
			p += 2 + n
		}
		return s, nil
	}
	return s, fmt.Errorf("sense response code 0x%02x is neither fixed nor descriptor format", b[0]&0x7f)
}

// RequestSenseCDB is REQUEST SENSE (6) asking for descriptor format.
func RequestSenseCDB(alloc uint8) []byte {
	return []byte{scsiRequestSense, 0x01, 0, 0, alloc, 0}
}

// ReportSupportedOpCDB is REPORT SUPPORTED OPERATION CODES (MAINTENANCE
// IN, SPC-5 6.35) for one opcode and service action (reporting option
// 010b), with allocation length alloc.
func ReportSupportedOpCDB(opcode uint8, sa uint16, alloc uint32) []byte {
	cdb := make([]byte, 12)
	cdb[0], cdb[1], cdb[2], cdb[3] = scsiMaintenanceIn, scsiReportSupportedOps, 0x02, opcode
	binary.BigEndian.PutUint16(cdb[4:6], sa)
	binary.BigEndian.PutUint32(cdb[6:10], alloc)
	return cdb
}

// ErrOpNotReported is what a device answers when it cannot say whether
// it supports an operation (SUPPORT 000b).
var ErrOpNotReported = errors.New("the device does not report whether it supports the command")

// ParseOneCommandSupport reads the one-command format answer to REPORT
// SUPPORTED OPERATION CODES: whether the command is supported (SUPPORT
// 011b standard or 101b vendor specific).
func ParseOneCommandSupport(b []byte) (bool, error) {
	if len(b) < 4 {
		return false, fmt.Errorf("one-command parameter data is %d bytes, want at least 4", len(b))
	}
	switch b[1] & 0x07 {
	case 0x0:
		return false, ErrOpNotReported
	case 0x1:
		return false, nil
	case 0x3, 0x5:
		return true, nil
	}
	return false, fmt.Errorf("reserved SUPPORT value %d", b[1]&0x07)
}

// SanitizeCDB is SANITIZE (SBC-4 5.30) with IMMED set, so the device
// answers at once and REQUEST SENSE reports the progress, and AUSE clear
// (a failed sanitize must be retried, not exited from). paramLen is the
// parameter list length (only overwrite has one).
func SanitizeCDB(sa uint8, paramLen uint16) []byte {
	cdb := make([]byte, 10)
	cdb[0] = scsiSanitize
	cdb[1] = 0x80 | sa&0x1f
	binary.BigEndian.PutUint16(cdb[7:9], paramLen)
	return cdb
}

// SanitizeOverwriteParams is the overwrite parameter list: passes passes
// (1-31) of pattern, not inverted between passes.
func SanitizeOverwriteParams(passes uint8, pattern []byte) []byte {
	p := make([]byte, 4+len(pattern))
	p[0] = passes & 0x1f
	binary.BigEndian.PutUint16(p[2:4], uint16(len(pattern)))
	copy(p[4:], pattern)
	return p
}

// ErrSanitizeUnsupported says the device offers no sanitize operation
// goipa can use (or cannot be asked): the caller falls back.
var ErrSanitizeUnsupported = errors.New("the device does not support sanitize")

// scsiSanitizeMethods are the SANITIZE service actions goipa tries, best
// first: block erase and crypto erase finish in minutes and reach
// over-provisioned flash; overwrite is the slow last resort.
var scsiSanitizeMethods = []struct {
	SA   uint8
	Name string
}{
	{SanitizeBlockErase, "scsi-sanitize-block-erase"},
	{SanitizeCryptoErase, "scsi-sanitize-crypto-erase"},
	{SanitizeOverwrite, "scsi-sanitize-overwrite"},
}
