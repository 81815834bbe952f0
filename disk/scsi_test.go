package disk

import (
	"encoding/hex"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

type scsiVectors struct {
	Sense []struct {
		Name, Sense string
		Want        struct {
			Key         uint8  `json:"key"`
			ASC         uint8  `json:"asc"`
			ASCQ        uint8  `json:"ascq"`
			Progress    uint16 `json:"progress"`
			HasProgress bool   `json:"has_progress"`
			InProgress  bool   `json:"in_progress"`
			Failed      bool   `json:"failed"`
			ATAStatus   uint8  `json:"ata_status"`
			ATAError    uint8  `json:"ata_error"`
			ATACount    uint16 `json:"ata_count"`
			Error       bool   `json:"error"`
		}
	}
	CDBs map[string]string `json:"cdbs"`
	RSOC []struct{ Name, Data, Want string }
}

func TestParseSenseVectors(t *testing.T) {
	var v scsiVectors
	readVectors(t, "scsi_sense.json", &v)
	require.GreaterOrEqual(t, len(v.Sense), 10)
	for _, c := range v.Sense {
		t.Run(c.Name, func(t *testing.T) {
			s, err := ParseSense(unhex(t, c.Sense))
			if c.Want.Error {
				assert.Error(t, err)
				return
			}
			require.NoError(t, err)
			w := c.Want
			assert.Equal(t, w.Key, s.Key, "key")
			assert.Equal(t, [2]uint8{w.ASC, w.ASCQ}, [2]uint8{s.ASC, s.ASCQ}, "ASC/ASCQ")
			assert.Equal(t, w.HasProgress, s.HasProgress)
			assert.Equal(t, w.Progress, s.Progress)
			assert.Equal(t, w.InProgress, s.SanitizeInProgress())
			assert.Equal(t, w.Failed, s.SanitizeFailed())
			if w.ATAStatus != 0 {
				require.NotNil(t, s.ATA)
				assert.Equal(t, w.ATAStatus, s.ATA.Status)
				assert.Equal(t, w.ATAError, s.ATA.Error)
				assert.Equal(t, w.ATACount, s.ATA.Count)
			} else {
				assert.Nil(t, s.ATA)
			}
			assert.NotEmpty(t, s.String())
		})
	}
}

func TestSCSICommandVectors(t *testing.T) {
	var v scsiVectors
	readVectors(t, "scsi_sense.json", &v)
	h := hex.EncodeToString
	assert.Equal(t, v.CDBs["sanitize-block-erase"], h(SanitizeCDB(SanitizeBlockErase, 0)))
	assert.Equal(t, v.CDBs["sanitize-crypto-erase"], h(SanitizeCDB(SanitizeCryptoErase, 0)))
	assert.Equal(t, v.CDBs["sanitize-overwrite-8"], h(SanitizeCDB(SanitizeOverwrite, 8)))
	assert.Equal(t, v.CDBs["overwrite-params-1-pass-zero"], h(SanitizeOverwriteParams(1, make([]byte, 4))))
	assert.Equal(t, v.CDBs["rsoc-sanitize-block-erase-64"], h(ReportSupportedOpCDB(scsiSanitize, SanitizeBlockErase, 64)))
	assert.Equal(t, v.CDBs["request-sense-desc-252"], h(RequestSenseCDB(252)))
	for _, c := range v.RSOC {
		ok, err := ParseOneCommandSupport(unhex(t, c.Data))
		switch c.Want {
		case "supported":
			assert.True(t, ok && err == nil, c.Name)
		case "unsupported":
			assert.True(t, !ok && err == nil, c.Name)
		case "not-reported":
			assert.ErrorIs(t, err, ErrOpNotReported, c.Name)
		default:
			assert.Error(t, err, c.Name)
		}
	}
}

func FuzzParseSense(f *testing.F) {
	var v scsiVectors
	readVectors(f, "scsi_sense.json", &v)
	for _, c := range v.Sense {
		b, _ := hex.DecodeString(c.Sense)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := ParseSense(b)
		if err == nil {
			_ = s.String()
		}
		ParseOneCommandSupport(b)
	})
}
