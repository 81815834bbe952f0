package inventory

import (
	"encoding/binary"
	"testing"

	"github.com/stretchr/testify/assert"
)

// ataAnswers lays out IDENTIFY DEVICE, SMART READ DATA and READ
// THRESHOLDS as ACS-3 gives them (text fields as byte-swapped words),
// with attributes shaped like QEMU's emulated disk's table (hw/ide) plus
// a temperature with its min/max and a failing attribute.
func ataAnswers() (id, data, thresh []byte) {
	id = make([]byte, 512)
	put := func(fromWord int, s string, words int) {
		b := []byte(s)
		for len(b) < 2*words {
			b = append(b, ' ')
		}
		for i := 0; i < words; i++ {
			id[2*(fromWord+i)], id[2*(fromWord+i)+1] = b[2*i+1], b[2*i]
		}
	}
	put(10, "goipa-sata-0", 10)
	put(23, "2.5+", 4)
	put(27, "GOIPA SATA SSD", 20)
	binary.LittleEndian.PutUint16(id[2*82:], 0x0001) // SMART supported
	binary.LittleEndian.PutUint16(id[2*85:], 0x0001) // SMART enabled
	binary.LittleEndian.PutUint16(id[2*217:], 1)     // non-rotating
	data = make([]byte, 512)
	thresh = make([]byte, 512)
	entry := func(i int, attr, flags, value, worst byte, raw [6]byte, th byte) {
		e := data[2+12*i:]
		e[0], e[1], e[3], e[4] = attr, flags, value, worst
		copy(e[5:11], raw[:])
		t := thresh[2+12*i:]
		t[0], t[1] = attr, th
	}
	entry(0, 1, 0x03, 100, 100, [6]byte{}, 6)
	entry(1, 5, 0x03, 100, 100, [6]byte{3}, 36)
	entry(2, 9, 0x03, 100, 100, [6]byte{0x39, 0x30}, 0) // 12345 hours
	entry(3, 194, 0x22, 69, 40, [6]byte{31, 0, 20, 0, 45, 0}, 0)
	entry(4, 197, 0x12, 5, 5, [6]byte{0x10}, 10) // failing now
	entry(5, 201, 0x0a, 100, 9, [6]byte{}, 10)   // failed in the past
	return id, data, thresh
}

// TestATASMARTFacts checks keys and values against what read_smart_ata
// keeps of smartctl's attribute table for the same answers.
func TestATASMARTFacts(t *testing.T) {
	id, data, thresh := ataAnswers()
	assert.True(t, ataSMARTEnabled(id))
	assert.Equal(t, [][2]string{
		{"SMART/device_model", "GOIPA SATA SSD"},
		{"SMART/serial_number", "goipa-sata-0"},
		{"SMART/firmware_version", "2.5+"},
		{"SMART/rotation_rate", "Solid State Device"},
	}, ataIdentityFacts(id))
	got := map[string]string{}
	for _, kv := range ataSMARTAttrFacts(data, thresh) {
		got[kv[0]] = kv[1]
	}
	want := map[string]string{
		"SMART/Raw_Read_Error_Rate(1)/value": "100", "SMART/Raw_Read_Error_Rate(1)/worst": "100",
		"SMART/Raw_Read_Error_Rate(1)/thresh": "006", "SMART/Raw_Read_Error_Rate(1)/when_failed": "NEVER",
		"SMART/Raw_Read_Error_Rate(1)/raw":   " 0",
		"SMART/Reallocated_Sector_Ct(5)/raw": " 3", "SMART/Reallocated_Sector_Ct(5)/thresh": "036",
		"SMART/Power_On_Hours(9)/raw":          " 12345",
		"SMART/Temperature_Celsius(194)/raw":   " 31 (Min/Max 20/45)",
		"SMART/Temperature_Celsius(194)/value": "069", "SMART/Temperature_Celsius(194)/worst": "040",
		"SMART/Current_Pending_Sector(197)/when_failed": "FAILING_NOW",
		"SMART/Soft_Read_Error_Rate(201)/when_failed":   "In_the_past",
	}
	for k, v := range want {
		assert.Equal(t, v, got[k], k)
	}
	assert.Len(t, got, 6*5, "five keys per attribute, empty slots skipped")

	// SMART disabled: no attribute reading.
	off := append([]byte(nil), id...)
	binary.LittleEndian.PutUint16(off[2*85:], 0)
	assert.False(t, ataSMARTEnabled(off))
	assert.Nil(t, ataSMARTAttrFacts(data[:100], nil))
	rot := append([]byte(nil), id...)
	binary.LittleEndian.PutUint16(rot[2*217:], 7200)
	assert.Contains(t, ataIdentityFacts(rot), [2]string{"SMART/rotation_rate", "7200 rpm"})
}

func FuzzATASMART(f *testing.F) {
	id, data, thresh := ataAnswers()
	f.Add(id, data, thresh)
	f.Add([]byte{}, make([]byte, 362), []byte{1})
	f.Fuzz(func(t *testing.T, id, data, thresh []byte) {
		_ = ataSMARTEnabled(id)
		_ = ataIdentityFacts(id)
		if n := len(ataSMARTAttrFacts(data, thresh)); n%5 != 0 {
			t.Fatalf("%d keys", n)
		}
	})
}
