package efi

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// DefaultVarsDir is where the kernel mounts efivarfs.
const DefaultVarsDir = "/sys/firmware/efi/efivars"

// Variable attributes (UEFI 8.2).
const (
	NonVolatile       = 0x1
	BootserviceAccess = 0x2
	RuntimeAccess     = 0x4

	bootVarAttrs = NonVolatile | BootserviceAccess | RuntimeAccess
)

// Vars reads and writes UEFI variables through an efivarfs mount. Dir
// may be any directory laid out like efivarfs (each file: a 4-byte
// attribute word, then the value), which is how the tests use it.
type Vars struct {
	Dir string
}

func (v Vars) path(name string, vendor GUID) string {
	return filepath.Join(v.Dir, name+"-"+vendor.String())
}

// Get returns a variable's attributes and value; a missing variable is
// an error satisfying errors.Is(err, fs.ErrNotExist).
func (v Vars) Get(name string, vendor GUID) (uint32, []byte, error) {
	b, err := os.ReadFile(v.path(name, vendor))
	if err != nil {
		return 0, nil, err
	}
	if len(b) < 4 {
		return 0, nil, fmt.Errorf("efi variable %s: %d bytes, no attribute word", name, len(b))
	}
	return binary.LittleEndian.Uint32(b[:4]), b[4:], nil
}

// Set writes a variable. efivarfs takes the attribute word and the value
// in a single write, and the kernel may have marked the file immutable.
func (v Vars) Set(name string, vendor GUID, attrs uint32, value []byte) error {
	p := v.path(name, vendor)
	if err := clearImmutable(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("efi variable %s: %w", name, err)
	}
	b := make([]byte, 4+len(value))
	binary.LittleEndian.PutUint32(b, attrs)
	copy(b[4:], value)
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("efi variable %s: %w", name, err)
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return fmt.Errorf("efi variable %s: %w", name, err)
	}
	return f.Close()
}

// Delete removes a variable; a missing one is not an error.
func (v Vars) Delete(name string, vendor GUID) error {
	p := v.path(name, vendor)
	if err := clearImmutable(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("efi variable %s: %w", name, err)
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("efi variable %s: %w", name, err)
	}
	return nil
}

// BootEntry is one Boot#### variable.
type BootEntry struct {
	Num uint16
	LoadOption
}

// Label is efibootmgr's "Boot0003* ubuntu\tHD(...)/File(...)" line.
func (e BootEntry) String() string {
	active := ""
	if e.Attributes&LoadOptionActive != 0 {
		active = "*"
	}
	return fmt.Sprintf("Boot%04X%s %s\t%s", e.Num, active, e.Description, e.Path)
}

var bootVarName = regexp.MustCompile(`^Boot([0-9A-Fa-f]{4})-` + regexp.QuoteMeta(GlobalVariable.String()) + `$`)

// BootEntries lists the Boot#### variables in number order. An entry
// that does not decode is skipped: firmware leaves odd ones behind, and
// they must not stop a deploy.
func (v Vars) BootEntries() ([]BootEntry, error) {
	ents, err := os.ReadDir(v.Dir)
	if err != nil {
		return nil, err
	}
	var out []BootEntry
	for _, de := range ents {
		m := bootVarName.FindStringSubmatch(de.Name())
		if m == nil {
			continue
		}
		n, _ := strconv.ParseUint(m[1], 16, 16)
		_, val, err := v.Get("Boot"+m[1], GlobalVariable)
		if err != nil {
			continue
		}
		o, err := ParseLoadOption(val)
		if err != nil {
			continue
		}
		out = append(out, BootEntry{Num: uint16(n), LoadOption: o})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Num < out[j].Num })
	return out, nil
}

// BootOrder returns the BootOrder variable (empty when unset).
func (v Vars) BootOrder() ([]uint16, error) {
	_, val, err := v.Get("BootOrder", GlobalVariable)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	order := make([]uint16, len(val)/2)
	for i := range order {
		order[i] = binary.LittleEndian.Uint16(val[2*i:])
	}
	return order, nil
}

// SetBootOrder writes BootOrder.
func (v Vars) SetBootOrder(order []uint16) error {
	b := make([]byte, 2*len(order))
	for i, n := range order {
		binary.LittleEndian.PutUint16(b[2*i:], n)
	}
	return v.Set("BootOrder", GlobalVariable, bootVarAttrs, b)
}

// AddBootEntry stores o in the first free Boot#### and puts it first in
// BootOrder, as `efibootmgr -c` does.
func (v Vars) AddBootEntry(o LoadOption) (uint16, error) {
	ents, err := v.BootEntries()
	if err != nil {
		return 0, err
	}
	used := map[uint16]bool{}
	for _, e := range ents {
		used[e.Num] = true
	}
	// Entries that did not decode still occupy their number.
	if des, err := os.ReadDir(v.Dir); err == nil {
		for _, de := range des {
			if m := bootVarName.FindStringSubmatch(de.Name()); m != nil {
				n, _ := strconv.ParseUint(m[1], 16, 16)
				used[uint16(n)] = true
			}
		}
	}
	var num uint16
	for used[num] {
		num++
		if num == 0xffff {
			return 0, errors.New("no free Boot#### variable")
		}
	}
	if err := v.Set(fmt.Sprintf("Boot%04X", num), GlobalVariable, bootVarAttrs, o.Encode()); err != nil {
		return 0, err
	}
	order, err := v.BootOrder()
	if err != nil {
		return 0, err
	}
	next := []uint16{num}
	for _, n := range order {
		if n != num {
			next = append(next, n)
		}
	}
	return num, v.SetBootOrder(next)
}

// RemoveBootEntry deletes Boot#### and drops it from BootOrder.
func (v Vars) RemoveBootEntry(num uint16) error {
	if err := v.Delete(fmt.Sprintf("Boot%04X", num), GlobalVariable); err != nil {
		return err
	}
	order, err := v.BootOrder()
	if err != nil {
		return err
	}
	kept := order[:0]
	for _, n := range order {
		if n != num {
			kept = append(kept, n)
		}
	}
	if len(kept) == len(order) {
		return nil
	}
	return v.SetBootOrder(kept)
}

// Report is `efibootmgr -v`'s listing: BootOrder, then every Boot####
// entry in its words.
func (v Vars) Report() ([]byte, error) {
	var b strings.Builder
	order, err := v.BootOrder()
	if err != nil {
		return nil, err
	}
	nums := make([]string, len(order))
	for i, n := range order {
		nums[i] = fmt.Sprintf("%04X", n)
	}
	fmt.Fprintf(&b, "BootOrder: %s\n", strings.Join(nums, ","))
	ents, err := v.BootEntries()
	if err != nil {
		return nil, err
	}
	for _, e := range ents {
		fmt.Fprintln(&b, e.String())
	}
	return []byte(b.String()), nil
}
