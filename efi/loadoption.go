package efi

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// LoadOptionActive marks a boot entry the firmware may boot (the "*" in
// efibootmgr's listing).
const LoadOptionActive = 0x00000001

// LoadOption is an EFI_LOAD_OPTION, the value of a Boot#### variable.
type LoadOption struct {
	Attributes   uint32
	Description  string
	Path         DevicePath
	OptionalData []byte
}

// Encode returns the variable's value (without efivarfs' attribute word).
func (o LoadOption) Encode() []byte {
	fp := o.Path.Encode()
	b := make([]byte, 6, 6+len(fp)+2*len(o.Description)+2+len(o.OptionalData))
	binary.LittleEndian.PutUint32(b[0:4], o.Attributes)
	binary.LittleEndian.PutUint16(b[4:6], uint16(len(fp)))
	b = append(b, ucs2z(o.Description)...)
	b = append(b, fp...)
	return append(b, o.OptionalData...)
}

// ParseLoadOption decodes a Boot#### value as the firmware would, with
// an error rather than a guess for a value it would reject.
func ParseLoadOption(b []byte) (LoadOption, error) {
	var o LoadOption
	if len(b) < 6 {
		return o, errors.New("load option: shorter than its header")
	}
	o.Attributes = binary.LittleEndian.Uint32(b[0:4])
	fpLen := int(binary.LittleEndian.Uint16(b[4:6]))
	rest := b[6:]
	end := -1
	for i := 0; i+1 < len(rest); i += 2 {
		if rest[i] == 0 && rest[i+1] == 0 {
			end = i
			break
		}
	}
	if end < 0 {
		return o, errors.New("load option: description is not terminated")
	}
	o.Description = fromUCS2(rest[:end])
	rest = rest[end+2:]
	if fpLen > len(rest) {
		return o, fmt.Errorf("load option: file path list of %d bytes, %d left", fpLen, len(rest))
	}
	p, err := ParseDevicePath(rest[:fpLen])
	if err != nil {
		return o, err
	}
	o.Path = p
	if len(rest) > fpLen {
		o.OptionalData = rest[fpLen:]
	}
	return o, nil
}
