package disk

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"
)

// ATA commands of the Security feature set (ACS-3 7.40-7.46) and
// IDENTIFY DEVICE (7.12).
const (
	ATAIdentifyDevice    = 0xec
	ATASecuritySetPass   = 0xf1
	ATASecurityUnlock    = 0xf2
	ATASecurityErasePrep = 0xf3
	ATASecurityEraseUnit = 0xf4
	ATASecurityDisable   = 0xf6
)

// SAT protocols for ATA PASS-THROUGH (SAT-4 table 152).
const (
	ATAProtoNonData = 3
	ATAProtoPIOIn   = 4
	ATAProtoPIOOut  = 5
)

// ATACommand is one 28-bit ATA command as the SATL passes it on: the
// taskfile registers and how data moves.
type ATACommand struct {
	Command  uint8
	Features uint8
	Count    uint8
	LBA      uint32 // 28 bits
	Device   uint8
	Protocol uint8
	// Sectors is the number of 512-byte blocks of data (0 for non-data).
	Sectors int
}

// PassThrough16 builds the ATA PASS-THROUGH (16) CDB (SAT-4 12.2.3) for
// c: EXTEND 0 (a 28-bit command), the transfer length in the COUNT field
// counted in 512-byte blocks (T_LENGTH 10b, BYTE_BLOCK 1, T_TYPE 0),
// T_DIR from the protocol, CK_COND 0 (sense only on error).
func (c ATACommand) PassThrough16() []byte {
	cdb := make([]byte, 16)
	cdb[0] = 0x85
	cdb[1] = c.Protocol << 1
	if c.Protocol != ATAProtoNonData {
		cdb[2] = 0x04 | 0x02 // BYTE_BLOCK, T_LENGTH = COUNT
		if c.Protocol == ATAProtoPIOIn {
			cdb[2] |= 0x08 // T_DIR: from the device
		}
	}
	cdb[4] = c.Features
	cdb[6] = c.Count
	cdb[8] = uint8(c.LBA)
	cdb[10] = uint8(c.LBA >> 8)
	cdb[12] = uint8(c.LBA >> 16)
	cdb[13] = c.Device | uint8(c.LBA>>24)&0x0f
	cdb[14] = c.Command
	return cdb
}

// IdentifyCommand is IDENTIFY DEVICE: one 512-byte block in.
func IdentifyCommand() ATACommand {
	return ATACommand{Command: ATAIdentifyDevice, Count: 1, Protocol: ATAProtoPIOIn, Sectors: 1}
}

// SecurityCommand is a Security feature set command. SET PASSWORD,
// UNLOCK, ERASE UNIT and DISABLE PASSWORD send one block (the password
// block); ERASE PREPARE sends none.
func SecurityCommand(op uint8) ATACommand {
	if op == ATASecurityErasePrep {
		return ATACommand{Command: op, Protocol: ATAProtoNonData}
	}
	return ATACommand{Command: op, Count: 1, Protocol: ATAProtoPIOOut, Sectors: 1}
}

// ATAPassword is the 32-byte password field. IPA runs hdparm with the
// password "NULL", which hdparm 9.51 and later send as 32 zero bytes
// (older hdparm sent the four letters); IPA unlocks with both spellings
// to recover a drive an earlier attempt left locked.
type ATAPassword [32]byte

// ATAPasswordNull is the password IPA sets and erases with (hdparm's
// "NULL": all zeros); ATAPasswordNullText is what hdparm before 9.51 set.
var (
	ATAPasswordNull     ATAPassword
	ATAPasswordNullText = ATAPassword{'N', 'U', 'L', 'L'}
)

// SecurityBlock is the 512-byte data block of SET PASSWORD, UNLOCK,
// ERASE UNIT and DISABLE PASSWORD (ACS-3 tables 49, 54, 56): word 0 bit 0
// selects the user (0) or master (1) password, bit 1 asks ERASE UNIT for
// the enhanced erase, words 1-16 hold the password. The password bytes
// go in as they are, as hdparm sends them, so a password hdparm set
// unlocks here too. SET PASSWORD keeps master password capability high
// (word 0 bit 8 clear), so the master password still unlocks the drive.
func SecurityBlock(pw ATAPassword, master, enhanced bool) []byte {
	b := make([]byte, 512)
	if master {
		b[0] |= 0x01
	}
	if enhanced {
		b[0] |= 0x02
	}
	copy(b[2:34], pw[:])
	return b
}

// ATAIdentity is what IDENTIFY DEVICE says about the drive and its
// Security feature set.
type ATAIdentity struct {
	Model, Serial, Firmware string
	ATAPI                   bool // word 0 bit 15: a packet device, not a disk
	Security                ATASecurity
}

// ATASecurity is word 128 (ACS-3 table 45) with the erase time estimates
// of words 89 and 90.
type ATASecurity struct {
	Supported, Enabled, Locked, Frozen, CountExpired, EnhancedSupported bool
	// MasterMaximum is word 128 bit 8: the master password cannot unlock.
	MasterMaximum bool
	// EraseTime and EnhancedEraseTime are the drive's estimates; zero when
	// it gives none. EraseTimeOver and EnhancedEraseTimeOver mean "longer
	// than" the figure (the field's largest value).
	EraseTime, EnhancedEraseTime         time.Duration
	EraseTimeOver, EnhancedEraseTimeOver bool
}

// State names the Security state machine's state (ACS-3 4.18.11).
func (s ATASecurity) State() string {
	switch {
	case !s.Supported:
		return "not supported"
	case !s.Enabled && !s.Frozen:
		return "SEC1 (disabled, not frozen)"
	case !s.Enabled:
		return "SEC2 (disabled, frozen)"
	case s.Locked:
		return "SEC4 (enabled, locked)"
	case s.Frozen:
		return "SEC6 (enabled, unlocked, frozen)"
	}
	return "SEC5 (enabled, unlocked, not frozen)"
}

// eraseTime decodes word 89 or 90 (ACS-3 7.12.7.41): bit 15 set means the
// extended format (bits 14:0 are two-minute units, 32767 meaning longer),
// clear the old one (bits 7:0, 255 meaning longer); zero is no estimate.
func eraseTime(w uint16) (time.Duration, bool) {
	if w&0x8000 != 0 {
		v := w & 0x7fff
		return time.Duration(v) * 2 * time.Minute, v == 0x7fff
	}
	v := w & 0xff
	return time.Duration(v) * 2 * time.Minute, v == 0xff
}

// ParseATAIdentify reads IDENTIFY DEVICE data (256 little-endian words).
// A block with the integrity signature (word 255 bits 7:0 = A5h) must
// check-sum to zero, as ACS-3 7.12.7.86 requires: a damaged block says
// nothing reliable about the security state.
func ParseATAIdentify(b []byte) (ATAIdentity, error) {
	var id ATAIdentity
	if len(b) != 512 {
		return id, fmt.Errorf("IDENTIFY DEVICE data is %d bytes, want 512", len(b))
	}
	w := func(i int) uint16 { return uint16(b[2*i]) | uint16(b[2*i+1])<<8 }
	if b[510] == 0xa5 {
		var sum uint8
		for _, c := range b {
			sum += c
		}
		if sum != 0 {
			return id, fmt.Errorf("IDENTIFY DEVICE data fails its checksum (sum 0x%02x)", sum)
		}
	}
	id.ATAPI = w(0)&0x8000 != 0
	id.Serial = ataString(b[20:40])
	id.Firmware = ataString(b[46:54])
	id.Model = ataString(b[54:94])
	sec := w(128)
	s := &id.Security
	// Word 82 bit 1 also says the Security feature set is supported;
	// words 82 and 128 are valid only when their bit 14:15 patterns are
	// (82: not 0000h/FFFFh).
	w82 := w(82)
	s.Supported = sec&0x0001 != 0 && (w82 == 0 || w82 == 0xffff || w82&0x0002 != 0)
	s.Enabled = sec&0x0002 != 0
	s.Locked = sec&0x0004 != 0
	s.Frozen = sec&0x0008 != 0
	s.CountExpired = sec&0x0010 != 0
	s.EnhancedSupported = sec&0x0020 != 0
	s.MasterMaximum = sec&0x0100 != 0
	s.EraseTime, s.EraseTimeOver = eraseTime(w(89))
	s.EnhancedEraseTime, s.EnhancedEraseTimeOver = eraseTime(w(90))
	return id, nil
}

// ataString decodes an IDENTIFY string: byte pairs swapped, space padded.
func ataString(b []byte) string {
	out := make([]byte, len(b))
	for i := 0; i+1 < len(b); i += 2 {
		out[i], out[i+1] = b[i+1], b[i]
	}
	return strings.TrimSpace(strings.Map(func(r rune) rune {
		if r < 0x20 || r > 0x7e {
			return -1
		}
		return r
	}, string(out)))
}

// EraseUnitTimeout is how long goipa lets SECURITY ERASE UNIT run: twice
// the drive's estimate plus ten minutes, and 24 hours when the drive
// gives none or says "longer than" (a slow 20 TB disk needs most of a
// day; a shorter timeout would abort an erase that is going fine).
func EraseUnitTimeout(s ATASecurity, enhanced bool) time.Duration {
	est, over := s.EraseTime, s.EraseTimeOver
	if enhanced {
		est, over = s.EnhancedEraseTime, s.EnhancedEraseTimeOver
	}
	if est == 0 || over {
		return 24 * time.Hour
	}
	return 2*est + 10*time.Minute
}

// ATAFrozenError says the drive's security is frozen (SEC2 or SEC6): the
// BIOS issued SECURITY FREEZE LOCK, and only a power cycle (or a hot
// plug) thaws it. goipa reports it rather than try to force the drive.
type ATAFrozenError struct{ Device string }

func (e *ATAFrozenError) Error() string {
	return fmt.Sprintf("%s: ATA security is frozen (the firmware froze it at boot); power-cycle the node or let it be erased another way", e.Device)
}

// ErrATASecurityUnsupported says the drive has no usable ATA Security
// feature set (or is not an ATA drive): the caller falls back.
var ErrATASecurityUnsupported = errors.New("ATA security erase is not supported by the device")

// ataDevice runs ATA commands on one drive; data is the block read (PIO
// in) or written (PIO out). The SG_IO pass-through implements it on
// Linux; unit tests drive the erase logic with a model of the Security
// state machine.
type ataDevice interface {
	ata(ctx context.Context, c ATACommand, data []byte, timeout time.Duration) error
}

const ataTimeout = 30 * time.Second

func ataIdentify(ctx context.Context, d ataDevice) (ATAIdentity, error) {
	b := make([]byte, 512)
	if err := d.ata(ctx, IdentifyCommand(), b, ataTimeout); err != nil {
		return ATAIdentity{}, err
	}
	return ParseATAIdentify(b)
}

// ataUnlock is IPA's recovery from an earlier failed attempt: a locked
// drive is unlocked with the user password, first as hdparm now sends
// "NULL" (zeros), then as older hdparm did (the letters). It returns the
// password that unlocked it (zeros when it was not locked).
func ataUnlock(ctx context.Context, d ataDevice, id ATAIdentity, log *slog.Logger) (ATAIdentity, ATAPassword, error) {
	for _, pw := range []ATAPassword{ATAPasswordNull, ATAPasswordNullText} {
		if !id.Security.Locked {
			return id, pw, nil
		}
		if err := d.ata(ctx, SecurityCommand(ATASecurityUnlock), SecurityBlock(pw, false, false), ataTimeout); err != nil {
			log.Info("ATA security unlock failed", "password", fmt.Sprintf("%q", strings.TrimRight(string(pw[:]), "\x00")), "error", err)
		}
		var err error
		if id, err = ataIdentify(ctx, d); err != nil {
			return id, pw, err
		}
		if !id.Security.Locked {
			return id, pw, nil
		}
	}
	return id, ATAPasswordNull, nil
}

// ataSecureErase is IPA's _ata_erase over raw ATA commands: refuse a
// frozen drive, unlock one an earlier attempt left locked, set the user
// password IPA uses, then SECURITY ERASE PREPARE and SECURITY ERASE UNIT
// (enhanced when supported) with the password that is set, and check
// that security is disabled after.
// A drive without the Security feature set is ErrATASecurityUnsupported.
func ataSecureErase(ctx context.Context, d ataDevice, dev string, log *slog.Logger) (string, error) {
	id, err := ataIdentify(ctx, d)
	if err != nil {
		if ctx.Err() != nil {
			return "", ctx.Err()
		}
		return "", fmt.Errorf("%w: IDENTIFY DEVICE through ATA PASS-THROUGH failed: %v", ErrATASecurityUnsupported, err)
	}
	if id.ATAPI || !id.Security.Supported {
		return "", ErrATASecurityUnsupported
	}
	if id.Security.Frozen {
		return "", &ATAFrozenError{Device: dev}
	}
	id, pw, err := ataUnlock(ctx, d, id, log)
	if err != nil {
		return "", err
	}
	if id.Security.Locked {
		return "", fmt.Errorf("%s already has an ATA security password set (%s) that is not IPA's", dev, id.Security.State())
	}
	if id.Security.CountExpired {
		return "", fmt.Errorf("%s: the ATA password attempt counter expired; power-cycle the node", dev)
	}
	if !id.Security.Enabled {
		pw = ATAPasswordNull
		if err := d.ata(ctx, SecurityCommand(ATASecuritySetPass), SecurityBlock(pw, false, false), ataTimeout); err != nil {
			return "", fmt.Errorf("setting the ATA security password on %s: %w", dev, err)
		}
	}
	enhanced := id.Security.EnhancedSupported
	method := "ata-security-erase"
	if enhanced {
		method = "ata-security-erase-enhanced"
	}
	timeout := EraseUnitTimeout(id.Security, enhanced)
	log.Info("ATA security erase", "device", dev, "model", id.Model, "enhanced", enhanced, "timeout", timeout)
	err = d.ata(ctx, SecurityCommand(ATASecurityErasePrep), nil, ataTimeout)
	if err == nil {
		err = d.ata(ctx, SecurityCommand(ATASecurityEraseUnit), SecurityBlock(pw, false, enhanced), timeout)
	}
	if err != nil {
		// Leave the drive usable for the overwrite fallback, and without a
		// password that would lock it at the next power-on.
		bg := context.WithoutCancel(ctx)
		if id, ierr := ataIdentify(bg, d); ierr == nil {
			ataUnlock(bg, d, id, log)
		}
		if derr := d.ata(bg, SecurityCommand(ATASecurityDisable), SecurityBlock(pw, false, false), ataTimeout); derr != nil {
			log.Warn("disabling the ATA security password after a failed erase", "device", dev, "error", derr)
		}
		return "", fmt.Errorf("ATA security erase of %s: %w", dev, err)
	}
	if id, err = ataIdentify(ctx, d); err != nil {
		return "", fmt.Errorf("IDENTIFY DEVICE after the erase of %s: %w", dev, err)
	}
	if id.Security.Enabled {
		return "", fmt.Errorf("%s still has ATA security enabled after the erase (%s)", dev, id.Security.State())
	}
	return method, nil
}
