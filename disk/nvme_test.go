package disk

import (
	"encoding/binary"
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

type nvmeVectors struct {
	Cdw10 map[string]string `json:"cdw10"`
	Logs  []struct {
		Name, Log string
		Want      struct {
			Progress         uint16 `json:"progress"`
			Status           uint8  `json:"status"`
			OverwritePasses  uint8  `json:"overwrite_passes"`
			GlobalDataErased bool   `json:"global_data_erased"`
			Cdw10            uint32 `json:"cdw10"`
			EstOverwrite     uint32 `json:"est_overwrite"`
			EstBlockErase    uint32 `json:"est_block_erase"`
			EstCryptoErase   uint32 `json:"est_crypto_erase"`
			Done             bool   `json:"done"`
			OK               bool   `json:"ok"`
			Error            bool   `json:"error"`
		}
	}
}

func TestNVMeSanitizeCommandVectors(t *testing.T) {
	var v nvmeVectors
	readVectors(t, "nvme_sanitize.json", &v)
	x := func(n uint32) string { return fmt.Sprintf("%08x", n) }
	assert.Equal(t, v.Cdw10["sanitize-block-erase"], x(SanitizeCdw10(NVMeSanitizeBlockErase, 1)), "OWPASS only for overwrite")
	assert.Equal(t, v.Cdw10["sanitize-crypto-erase"], x(SanitizeCdw10(NVMeSanitizeCryptoErase, 0)))
	assert.Equal(t, v.Cdw10["sanitize-overwrite-1-pass"], x(SanitizeCdw10(NVMeSanitizeOverwrite, 1)))
	assert.Equal(t, v.Cdw10["get-log-sanitize-512"], x(GetLogPageCdw10(nvmeLogSanitize, nvmeSanitizeLogSize)))
}

func TestParseSanitizeStatusVectors(t *testing.T) {
	var v nvmeVectors
	readVectors(t, "nvme_sanitize.json", &v)
	require.GreaterOrEqual(t, len(v.Logs), 8)
	for _, c := range v.Logs {
		t.Run(c.Name, func(t *testing.T) {
			s, err := ParseSanitizeStatus(unhex(t, c.Log))
			if c.Want.Error {
				assert.Error(t, err)
				return
			}
			require.NoError(t, err)
			w := c.Want
			assert.Equal(t, NVMeSanitizeStatus{Progress: w.Progress, Status: w.Status, OverwritePasses: w.OverwritePasses,
				GlobalDataErased: w.GlobalDataErased, Cdw10: w.Cdw10, EstOverwrite: w.EstOverwrite,
				EstBlockErase: w.EstBlockErase, EstCryptoErase: w.EstCryptoErase}, s)
			done, ok := s.Done()
			assert.Equal(t, [2]bool{w.Done, w.OK}, [2]bool{done, ok}, "done, ok")
			assert.NotEmpty(t, s.String())
		})
	}
}

func FuzzParseSanitizeStatus(f *testing.F) {
	var v nvmeVectors
	readVectors(f, "nvme_sanitize.json", &v)
	for _, c := range v.Logs {
		f.Add(unhex(f, c.Log))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := ParseSanitizeStatus(b)
		if err == nil {
			_ = s.String()
			_, _ = s.Done()
		}
	})
}

func TestSANICAPAndSanitizeChoice(t *testing.T) {
	id := make([]byte, 4096)
	binary.LittleEndian.PutUint32(id[328:], 1<<29|0x7)
	c, err := ParseIdentifyController(id)
	require.NoError(t, err)
	assert.Equal(t, NVMeController{SanitizeCrypto: true, SanitizeBlock: true, SanitizeOverwrite: true, NoDeallocInhibited: true}, c)

	for _, tc := range []struct {
		ctrl   NVMeController
		want   uint8
		act    uint8
		method string
	}{
		{NVMeController{SanitizeCrypto: true, SanitizeBlock: true}, 0, NVMeSanitizeBlockErase, "nvme-sanitize-block-erase"},
		{NVMeController{SanitizeCrypto: true}, 0, NVMeSanitizeCryptoErase, "nvme-sanitize-crypto-erase"},
		{NVMeController{SanitizeOverwrite: true}, 0, 0, ""}, // overwrite only on request
		{NVMeController{SanitizeOverwrite: true}, NVMeSanitizeOverwrite, NVMeSanitizeOverwrite, "nvme-sanitize-overwrite"},
		{NVMeController{SanitizeBlock: true}, NVMeSanitizeCryptoErase, 0, ""},
		{NVMeController{FormatSupported: true, CryptoErase: true}, 0, 0, ""}, // QEMU 7.2: SANICAP 0
	} {
		act, method, ok := nvmeSanitizeMethod(tc.ctrl, tc.want)
		assert.Equal(t, tc.act, act, "%+v", tc)
		assert.Equal(t, tc.method, method)
		assert.Equal(t, tc.method != "", ok)
	}
}
