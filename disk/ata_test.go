package disk

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func readVectors(t testing.TB, name string, v any) {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(b, v))
}

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	require.NoError(t, err)
	return b
}

func TestATAPassThroughCDBs(t *testing.T) {
	var v struct {
		CDBs []struct {
			Name string `json:"name"`
			Op   uint8  `json:"op"`
			CDB  string `json:"cdb"`
		} `json:"cdbs"`
		Blocks map[string]string `json:"security_blocks"`
	}
	readVectors(t, "sat_cdbs.json", &v)
	require.Len(t, v.CDBs, 6)
	for _, c := range v.CDBs {
		cmd := SecurityCommand(c.Op)
		if c.Op == ATAIdentifyDevice {
			cmd = IdentifyCommand()
		}
		assert.Equal(t, c.CDB, hex.EncodeToString(cmd.PassThrough16()), c.Name)
	}
	block := func(pw ATAPassword, enhanced bool) string {
		b := SecurityBlock(pw, false, enhanced)
		require.Len(t, b, 512)
		assert.Equal(t, make([]byte, 512-36), b[36:], "the rest of the block is zero")
		return hex.EncodeToString(b[:36])
	}
	assert.Equal(t, v.Blocks["set-null-user"], block(ATAPasswordNull, false))
	assert.Equal(t, v.Blocks["erase-normal-null"], block(ATAPasswordNull, false))
	assert.Equal(t, v.Blocks["erase-enhanced-null"], block(ATAPasswordNull, true))
	assert.Equal(t, v.Blocks["unlock-null-text"], block(ATAPasswordNullText, false))
	assert.Equal(t, byte(0x01), SecurityBlock(ATAPasswordNull, true, false)[0], "master identifier")

	// A 28-bit LBA spreads over bytes 8, 10, 12 and the DEVICE nibble.
	cdb := ATACommand{Command: 0x25, LBA: 0x0abcdef1, Device: 0x40, Protocol: ATAProtoNonData}.PassThrough16()
	assert.Equal(t, []byte{0xf1, 0xde, 0xbc, 0x4a}, []byte{cdb[8], cdb[10], cdb[12], cdb[13]})
}

type identifyWant struct {
	Model, Serial, Firmware string
	ATAPI                   bool   `json:"atapi"`
	Supported               bool   `json:"supported"`
	Enabled                 bool   `json:"enabled"`
	Locked                  bool   `json:"locked"`
	Frozen                  bool   `json:"frozen"`
	CountExpired            bool   `json:"count_expired"`
	EnhancedSupported       bool   `json:"enhanced_supported"`
	MasterMaximum           bool   `json:"master_maximum"`
	EraseMinutes            int    `json:"erase_minutes"`
	EnhancedEraseMinutes    int    `json:"enhanced_erase_minutes"`
	EraseOver               bool   `json:"erase_over"`
	State                   string `json:"state"`
	TimeoutMinutes          int    `json:"timeout_minutes"`
	Error                   string `json:"error"`
}

func TestParseATAIdentifyVectors(t *testing.T) {
	var v struct {
		Identify []struct {
			Name, Why, Identify string
			Want                identifyWant
		}
	}
	readVectors(t, "ata_identify.json", &v)
	require.GreaterOrEqual(t, len(v.Identify), 9)
	for _, c := range v.Identify {
		t.Run(c.Name, func(t *testing.T) {
			id, err := ParseATAIdentify(unhex(t, c.Identify))
			if c.Want.Error != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), c.Want.Error)
				return
			}
			require.NoError(t, err, c.Why)
			s := id.Security
			got := identifyWant{
				Model: id.Model, Serial: id.Serial, Firmware: id.Firmware, ATAPI: id.ATAPI,
				Supported: s.Supported, Enabled: s.Enabled, Locked: s.Locked, Frozen: s.Frozen,
				CountExpired: s.CountExpired, EnhancedSupported: s.EnhancedSupported, MasterMaximum: s.MasterMaximum,
				EraseMinutes: int(s.EraseTime / time.Minute), EnhancedEraseMinutes: int(s.EnhancedEraseTime / time.Minute),
				EraseOver: s.EraseTimeOver, State: s.State(),
				TimeoutMinutes: int(EraseUnitTimeout(s, s.EnhancedSupported) / time.Minute),
			}
			assert.Equal(t, c.Want, got, c.Why)
		})
	}
	_, err := ParseATAIdentify(make([]byte, 511))
	assert.Error(t, err)
}

func FuzzParseATAIdentify(f *testing.F) {
	f.Add(make([]byte, 512))
	f.Add(identifyBlock(0x0027, 0x80b4, 0))
	f.Fuzz(func(t *testing.T, b []byte) {
		id, err := ParseATAIdentify(b)
		if err != nil {
			return
		}
		s := id.Security
		if s.EraseTime < 0 || s.EraseTime > 65534*time.Minute || s.EnhancedEraseTime < 0 {
			t.Fatalf("erase time out of range: %+v", s)
		}
		if EraseUnitTimeout(s, true) <= 0 || EraseUnitTimeout(s, false) <= 0 {
			t.Fatalf("no timeout for %+v", s)
		}
		_ = s.State()
	})
}

// identifyBlock makes IDENTIFY DEVICE data with a valid checksum.
func identifyBlock(w128, w89, w90 uint16) []byte {
	b := make([]byte, 512)
	put := func(i int, v uint16) { b[2*i], b[2*i+1] = byte(v), byte(v>>8) }
	put(0, 0x0040)
	put(82, 0x746b)
	put(89, w89)
	put(90, w90)
	put(128, w128)
	copy(b[54:], "oMed lrDvi e") // "Model Drive" byte-swapped
	b[510] = 0xa5
	var sum byte
	for _, c := range b[:511] {
		sum += c
	}
	b[511] = -sum
	return b
}

// modelDrive follows the ATA Security state machine (ACS-3 4.18.11)
// closely enough to check the order and contents of what goipa sends.
type modelDrive struct {
	supported, enabled, locked, frozen, enhanced bool
	pw                                           ATAPassword
	prepared, erased, failErase, ataBroken       bool
	erasedEnhanced                               bool
	ops                                          []uint8
	timeouts                                     map[uint8]time.Duration
}

var errAborted = errors.New("ATA command aborted (ABRT)")

func (m *modelDrive) ata(ctx context.Context, c ATACommand, data []byte, timeout time.Duration) error {
	if m.ataBroken {
		return errors.New("SG_IO: inappropriate ioctl for device")
	}
	m.ops = append(m.ops, c.Command)
	if m.timeouts == nil {
		m.timeouts = map[uint8]time.Duration{}
	}
	m.timeouts[c.Command] = timeout
	prepared := m.prepared
	m.prepared = false
	pwOf := func() (ATAPassword, bool) {
		var pw ATAPassword
		copy(pw[:], data[2:34])
		return pw, data[0]&1 == 0
	}
	switch c.Command {
	case ATAIdentifyDevice:
		var w128 uint16
		for i, b := range []bool{m.supported, m.enabled, m.locked, m.frozen, false, m.enhanced} {
			if b {
				w128 |= 1 << i
			}
		}
		copy(data, identifyBlock(w128, 1, 4))
		return nil
	case ATASecuritySetPass:
		if m.frozen || m.locked || !m.supported {
			return errAborted
		}
		m.pw, _ = pwOf()
		m.enabled = true
	case ATASecurityUnlock:
		if pw, _ := pwOf(); m.frozen || pw != m.pw {
			return errAborted
		}
		m.locked = false
	case ATASecurityErasePrep:
		if m.frozen {
			return errAborted
		}
		m.prepared = true
	case ATASecurityEraseUnit:
		pw, _ := pwOf()
		if !prepared || m.frozen || !m.enabled || pw != m.pw || m.failErase {
			return errAborted
		}
		m.erased, m.erasedEnhanced = true, data[0]&2 != 0
		m.enabled, m.locked, m.pw = false, false, ATAPassword{}
	case ATASecurityDisable:
		if pw, _ := pwOf(); m.locked || pw != m.pw {
			return errAborted
		}
		m.enabled = false
	default:
		return errAborted
	}
	return nil
}

func TestATASecureEraseFollowsIPA(t *testing.T) {
	ctx := context.Background()
	log := slog.New(slog.DiscardHandler)
	const (
		id, set, unl, prep, erase, dis = ATAIdentifyDevice, ATASecuritySetPass, ATASecurityUnlock, ATASecurityErasePrep, ATASecurityEraseUnit, ATASecurityDisable
	)

	// SEC1 with enhanced erase: set the password, prepare, erase, check.
	m := &modelDrive{supported: true, enhanced: true}
	method, err := ataSecureErase(ctx, m, "/dev/sdx", log)
	require.NoError(t, err)
	assert.Equal(t, "ata-security-erase-enhanced", method)
	assert.Equal(t, []uint8{id, set, prep, erase, id}, m.ops)
	assert.True(t, m.erased && m.erasedEnhanced)
	assert.Equal(t, 26*time.Minute, m.timeouts[erase], "twice the 8-minute estimate plus ten minutes")

	// No enhanced erase: the normal one.
	m = &modelDrive{supported: true}
	method, err = ataSecureErase(ctx, m, "/dev/sdx", log)
	require.NoError(t, err)
	assert.Equal(t, "ata-security-erase", method)
	assert.False(t, m.erasedEnhanced)

	// Locked by an earlier attempt with today's hdparm "NULL" (zeros).
	m = &modelDrive{supported: true, enabled: true, locked: true}
	_, err = ataSecureErase(ctx, m, "/dev/sdx", log)
	require.NoError(t, err)
	assert.Equal(t, []uint8{id, unl, id, prep, erase, id}, m.ops, "unlocked, then erased with the password already set")

	// Locked by an old hdparm that sent the letters N U L L.
	m = &modelDrive{supported: true, enabled: true, locked: true, pw: ATAPasswordNullText}
	_, err = ataSecureErase(ctx, m, "/dev/sdx", log)
	require.NoError(t, err, "unlocked with the letters and erased with them")
	assert.Equal(t, []uint8{id, unl, id, unl, id, prep, erase, id}, m.ops)
	assert.True(t, m.erased)

	// Someone else's password: refused, not erased.
	m = &modelDrive{supported: true, enabled: true, locked: true, pw: ATAPassword{'s', 'e', 'c', 'r', 'e', 't'}}
	_, err = ataSecureErase(ctx, m, "/dev/sdx", log)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "already has an ATA security password")
	assert.False(t, m.erased)

	// Frozen: a typed error, and nothing sent after IDENTIFY.
	m = &modelDrive{supported: true, frozen: true}
	_, err = ataSecureErase(ctx, m, "/dev/sdx", log)
	var fe *ATAFrozenError
	require.True(t, errors.As(err, &fe), "got %v", err)
	assert.Equal(t, "/dev/sdx", fe.Device)
	assert.Equal(t, []uint8{id}, m.ops)

	// No Security feature set, or no ATA at all: unsupported, fall back.
	m = &modelDrive{}
	_, err = ataSecureErase(ctx, m, "/dev/sdx", log)
	assert.ErrorIs(t, err, ErrATASecurityUnsupported)
	_, err = ataSecureErase(ctx, &modelDrive{ataBroken: true}, "/dev/vdx", log)
	assert.ErrorIs(t, err, ErrATASecurityUnsupported)

	// The erase fails: the password is disabled again so that the drive
	// does not lock at the next power-on and the overwrite can run.
	m = &modelDrive{supported: true, failErase: true}
	_, err = ataSecureErase(ctx, m, "/dev/sdx", log)
	require.Error(t, err)
	assert.False(t, m.enabled, "password removed after the failed erase")
	assert.Equal(t, []uint8{id, set, prep, erase, id, dis}, m.ops)
}
