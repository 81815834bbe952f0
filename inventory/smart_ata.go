package inventory

import (
	"encoding/binary"
	"fmt"
	"strconv"
	"strings"
)

// The hardware package's read_smart_ata keeps, of `smartctl -a` on an
// ATA disk, the identity lines (device_model, serial_number,
// firmware_version, rotation_rate) and each row of the attribute table as
// SMART/<name>(<id>)/{value,worst,thresh,when_failed,raw}. goipa asks the
// disk itself (IDENTIFY DEVICE, SMART READ DATA and READ THRESHOLDS
// through the SCSI-ATA translation) and words the rows as smartctl does.

// ataSMARTAttrNames are smartctl's default attribute names (its
// drive database names some differently for particular models).
var ataSMARTAttrNames = map[byte]string{
	1: "Raw_Read_Error_Rate", 2: "Throughput_Performance", 3: "Spin_Up_Time", 4: "Start_Stop_Count",
	5: "Reallocated_Sector_Ct", 6: "Read_Channel_Margin", 7: "Seek_Error_Rate", 8: "Seek_Time_Performance",
	9: "Power_On_Hours", 10: "Spin_Retry_Count", 11: "Calibration_Retry_Count", 12: "Power_Cycle_Count",
	13: "Read_Soft_Error_Rate", 175: "Program_Fail_Count_Chip", 176: "Erase_Fail_Count_Chip",
	177: "Wear_Leveling_Count", 178: "Used_Rsvd_Blk_Cnt_Chip", 179: "Used_Rsvd_Blk_Cnt_Tot",
	180: "Unused_Rsvd_Blk_Cnt_Tot", 181: "Program_Fail_Cnt_Total", 182: "Erase_Fail_Count_Total",
	183: "Runtime_Bad_Block", 184: "End-to-End_Error", 187: "Reported_Uncorrect", 188: "Command_Timeout",
	189: "High_Fly_Writes", 190: "Airflow_Temperature_Cel", 191: "G-Sense_Error_Rate",
	192: "Power-Off_Retract_Count", 193: "Load_Cycle_Count", 194: "Temperature_Celsius",
	195: "Hardware_ECC_Recovered", 196: "Reallocated_Event_Count", 197: "Current_Pending_Sector",
	198: "Offline_Uncorrectable", 199: "UDMA_CRC_Error_Count", 200: "Multi_Zone_Error_Rate",
	201: "Soft_Read_Error_Rate", 202: "Data_Address_Mark_Errs", 203: "Run_Out_Cancel",
	204: "Soft_ECC_Correction", 205: "Thermal_Asperity_Rate", 206: "Flying_Height", 207: "Spin_High_Current",
	208: "Spin_Buzz", 209: "Offline_Seek_Performnce", 220: "Disk_Shift", 221: "G-Sense_Error_Rate",
	222: "Loaded_Hours", 223: "Load_Retry_Count", 224: "Load_Friction", 225: "Load_Cycle_Count",
	226: "Load-in_Time", 227: "Torq-amp_Count", 228: "Power-off_Retract_Count", 230: "Head_Amplitude",
	231: "Temperature_Celsius", 232: "Available_Reservd_Space", 233: "Media_Wearout_Indicator",
	240: "Head_Flying_Hours", 241: "Total_LBAs_Written", 242: "Total_LBAs_Read",
	250: "Read_Error_Retry_Rate", 254: "Free_Fall_Sensor",
}

// ataString is an IDENTIFY text field: byte-swapped words, space padded.
func ataIdentifyString(id []byte, fromWord, toWord int) string {
	var b []byte
	for w := fromWord; w <= toWord && 2*w+1 < len(id); w++ {
		b = append(b, id[2*w+1], id[2*w])
	}
	return strings.TrimSpace(strings.TrimRight(string(b), "\x00"))
}

// ataSMARTEnabled says whether IDENTIFY reports the SMART feature set
// supported (word 82 bit 0) and enabled (word 85 bit 0).
func ataSMARTEnabled(id []byte) bool {
	if len(id) < 512 {
		return false
	}
	w := func(n int) uint16 { return binary.LittleEndian.Uint16(id[2*n:]) }
	return w(82)&1 != 0 && w(85)&1 != 0 && w(82) != 0xffff
}

// ataIdentityFacts are smartctl's "Device Model", "Serial Number",
// "Firmware Version" and "Rotation Rate" lines.
func ataIdentityFacts(id []byte) [][2]string {
	if len(id) < 512 {
		return nil
	}
	var out [][2]string
	add := func(k, v string) {
		if v != "" {
			out = append(out, [2]string{"SMART/" + k, v})
		}
	}
	add("device_model", ataIdentifyString(id, 27, 46))
	add("serial_number", ataIdentifyString(id, 10, 19))
	add("firmware_version", ataIdentifyString(id, 23, 26))
	switch rate := binary.LittleEndian.Uint16(id[2*217:]); {
	case rate == 1:
		add("rotation_rate", "Solid State Device")
	case rate >= 0x401 && rate < 0xffff:
		add("rotation_rate", strconv.Itoa(int(rate))+" rpm")
	}
	return out
}

// ataSMARTAttrFacts turns SMART READ DATA and READ THRESHOLDS (512 bytes
// each, 30 twelve-byte entries from offset 2) into smartctl's rows.
func ataSMARTAttrFacts(data, thresh []byte) [][2]string {
	if len(data) < 362 {
		return nil
	}
	thresholds := map[byte]byte{}
	if len(thresh) >= 362 {
		for i := range 30 {
			e := thresh[2+12*i : 14+12*i]
			if e[0] != 0 {
				thresholds[e[0]] = e[1]
			}
		}
	}
	var out [][2]string
	for i := range 30 {
		e := data[2+12*i : 14+12*i]
		id := e[0]
		if id == 0 {
			continue
		}
		name, ok := ataSMARTAttrNames[id]
		if !ok {
			name = "Unknown_Attribute"
		}
		value, worst, th := e[3], e[4], thresholds[id]
		failed := "NEVER" // smartctl's "-", which read_smart_ata renames
		switch {
		case th > 0 && value <= th:
			failed = "FAILING_NOW"
		case th > 0 && worst <= th:
			failed = "In_the_past"
		}
		prefix := fmt.Sprintf("SMART/%s(%d)/", name, id)
		out = append(out,
			[2]string{prefix + "value", fmt.Sprintf("%03d", value)},
			[2]string{prefix + "worst", fmt.Sprintf("%03d", worst)},
			[2]string{prefix + "thresh", fmt.Sprintf("%03d", th)},
			[2]string{prefix + "when_failed", failed},
			// read_smart_ata joins the raw value's words each after a
			// space, leading one included.
			[2]string{prefix + "raw", " " + ataRawValue(id, e[5:11])},
		)
	}
	return out
}

// ataRawValue words a raw value with smartctl's default format for the
// attribute: temperatures as "35 (Min/Max 20/45)", counters whose upper
// words hold something else as "N (a b)", the rest as a 48-bit number.
func ataRawValue(id byte, raw []byte) string {
	word := func(i int) uint16 { return binary.LittleEndian.Uint16(raw[2*i:]) }
	var r48 uint64
	for i := 5; i >= 0; i-- {
		r48 = r48<<8 | uint64(raw[i])
	}
	switch id {
	case 190, 194, 231: // tempminmax
		t := int(raw[0])
		lo, hi := int(raw[2]), int(raw[4])
		if lo != 0 || hi != 0 {
			if lo > hi {
				lo, hi = hi, lo
			}
			return fmt.Sprintf("%d (Min/Max %d/%d)", t, lo, hi)
		}
		return strconv.Itoa(t)
	case 3: // raw16(avg16)
		if word(1) != 0 {
			return fmt.Sprintf("%d (Average %d)", word(0), word(1))
		}
		return strconv.Itoa(int(word(0)))
	case 5, 196: // raw16(raw16)
		if word(1) != 0 || word(2) != 0 {
			return fmt.Sprintf("%d (%d %d)", word(0), word(2), word(1))
		}
		return strconv.Itoa(int(word(0)))
	case 9: // raw24(raw8)
		if raw[3] != 0 || word(2) != 0 {
			return fmt.Sprintf("%d (%d %d)", r48&0xffffff, word(2), raw[3])
		}
		return strconv.FormatUint(r48&0xffffff, 10)
	}
	return strconv.FormatUint(r48, 10)
}
