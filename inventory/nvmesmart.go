package inventory

import (
	"encoding/binary"
	"fmt"
	"math/big"
	"strconv"
	"strings"
)

// The hardware package runs `smartctl -d nvme,0xffffffff -a` on each NVMe
// disk and keeps the lines its NVME_INFOS table names, under
// "SMART/<name>". goipa asks the controller itself (Identify Controller
// and the SMART / Health Information log page) and words each value as
// smartctl prints it, so that the keys and values are the same.

// Sizes of the two answers.
const (
	nvmeIdentifySize  = 4096
	nvmeHealthLogSize = 512
)

// nvmeSMARTFacts turns Identify Controller (id, 4096 bytes) and the
// health log (log, 512 bytes) into (key, value) pairs, in smartctl's
// order. Either may be nil when the controller did not answer.
func nvmeSMARTFacts(id, log []byte) [][2]string {
	var out [][2]string
	add := func(k, v string) { out = append(out, [2]string{"SMART/" + k, v}) }
	if len(id) >= nvmeIdentifySize {
		if s := nvmeString(id[24:64]); s != "" {
			add("model_number", s)
		}
		if s := nvmeString(id[4:24]); s != "" {
			add("serial_number", s)
		}
		if s := nvmeString(id[64:72]); s != "" {
			add("firmware_version", s)
		}
		if c := le128(id[280:296]); c.Sign() != 0 {
			add("total_nvm_capacity", thousands(c.String())+" ["+smartctlCapacity(c)+"]")
		}
		if k := binary.LittleEndian.Uint16(id[266:268]); k != 0 {
			add("warning_temp_threshold", celsius(k))
		}
		if k := binary.LittleEndian.Uint16(id[268:270]); k != 0 {
			add("critical_temp_threshold", celsius(k))
		}
	}
	if len(log) >= nvmeHealthLogSize {
		add("critical_warning", fmt.Sprintf("0x%02x", log[0]))
		// "35 Celsius" splits into a value and a unit, as read_smart_field
		// does for its temperature titles.
		if k := binary.LittleEndian.Uint16(log[1:3]); k != 0 {
			v, unit, _ := strings.Cut(celsius(k), " ")
			add("temperature", v)
			add("temperature_unit", unit)
		}
		add("power_cycles", thousands(le128(log[112:128]).String()))
		add("power_on_hours", thousands(le128(log[128:144]).String()))
		add("unsafe_shutdowns", thousands(le128(log[144:160]).String()))
		add("media_data_integrity_errors", thousands(le128(log[160:176]).String()))
		add("error_information_log_entries", thousands(le128(log[176:192]).String()))
	}
	return out
}

// nvmeString is an Identify ASCII field: space padded, maybe NUL ended.
func nvmeString(b []byte) string {
	if i := strings.IndexByte(string(b), 0); i >= 0 {
		b = b[:i]
	}
	return strings.TrimSpace(string(b))
}

// le128 reads a little-endian 128-bit counter.
func le128(b []byte) *big.Int {
	be := make([]byte, len(b))
	for i := range b {
		be[len(b)-1-i] = b[i]
	}
	return new(big.Int).SetBytes(be)
}

// celsius words a Kelvin temperature as smartctl does.
func celsius(kelvin uint16) string {
	return strconv.Itoa(int(kelvin)-273) + " Celsius"
}

// thousands groups digits by three with commas, as smartctl prints
// counters.
func thousands(digits string) string {
	if len(digits) <= 3 {
		return digits
	}
	var b strings.Builder
	lead := len(digits) % 3
	if lead > 0 {
		b.WriteString(digits[:lead])
	}
	for i := lead; i < len(digits); i += 3 {
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		b.WriteString(digits[i : i+3])
	}
	return b.String()
}

// smartctlCapacity is smartctl's format_capacity: decimal units, three
// significant digits ("512 GB", "1.92 TB").
func smartctlCapacity(bytes *big.Int) string {
	units := []string{"B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"}
	v, _ := new(big.Float).SetInt(bytes).Float64()
	i := 0
	for v >= 1000 && i < len(units)-1 {
		v /= 1000
		i++
	}
	switch {
	case i == 0:
		return fmt.Sprintf("%.0f %s", v, units[i])
	case v < 10:
		return fmt.Sprintf("%.2f %s", v, units[i])
	case v < 100:
		return fmt.Sprintf("%.1f %s", v, units[i])
	}
	return fmt.Sprintf("%.0f %s", v, units[i])
}
