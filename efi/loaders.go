package efi

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io/fs"
	"path"
	"strings"
	"unicode/utf16"
)

// loaderNames are the file names that make a boot loader on an ESP, as
// IPA matches them (case-insensitive). CSV files are shim's fallback
// hints, naming the real loader and the entry's label.
var loaderNames = map[string]bool{
	"bootx64.csv": true, "bootaa64.csv": true, "boot.csv": true,
	"bootia32.efi": true, "bootx64.efi": true, "bootia64.efi": true, "bootarm.efi": true,
	"bootaa64.efi": true, "bootriscv32.efi": true, "bootriscv64.efi": true, "bootriscv128.efi": true,
	"grubaa64.efi": true, "winload.efi": true,
}

// Loader is a boot entry to create: the loader's path on the ESP in
// UEFI form (`\EFI\ubuntu\shimx64.efi`) and the entry's label.
type Loader struct {
	Path  string
	Label string
}

// Loaders finds the boot loaders on an ESP, walking it in lexical order
// as IPA walks it: the first CSV hint wins alone (it is authoritative
// for the loader and the label); otherwise every known loader file, with
// the labels ironic1, ironic2... IPA gives them. None found is not an
// error: an empty ESP means the image brings no UEFI loader.
func Loaders(esp fs.FS) ([]Loader, error) {
	var found []Loader
	var csv *Loader
	err := fs.WalkDir(esp, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() || !loaderNames[strings.ToLower(d.Name())] {
			return nil
		}
		if strings.HasSuffix(strings.ToLower(p), ".csv") {
			b, err := fs.ReadFile(esp, p)
			if err != nil {
				return err
			}
			file, label, err := parseBootCSV(b)
			if err != nil {
				return fmt.Errorf("%s: %w", p, err)
			}
			csv = &Loader{Path: uefiPath(path.Join(path.Dir(p), file)), Label: label}
			return fs.SkipAll
		}
		found = append(found, Loader{Path: uefiPath(p), Label: fmt.Sprintf("ironic%d", len(found)+1)})
		return nil
	})
	if err != nil {
		return nil, err
	}
	if csv != nil {
		return []Loader{*csv}, nil
	}
	return found, nil
}

func uefiPath(p string) string { return `\` + strings.ReplaceAll(p, "/", `\`) }

// parseBootCSV reads shim's BOOT*.CSV: UTF-16 (little-endian, with or
// without a byte order mark) "loader,label,options,description" lines;
// the first line counts.
func parseBootCSV(b []byte) (file, label string, err error) {
	if len(b) >= 2 && b[0] == 0xfe && b[1] == 0xff { // big-endian BOM
		u := make([]uint16, 0, len(b)/2)
		for i := 2; i+1 < len(b); i += 2 {
			u = append(u, binary.BigEndian.Uint16(b[i:]))
		}
		b = []byte(string(utf16.Decode(u)))
	} else {
		b = bytes.TrimPrefix(b, []byte{0xff, 0xfe})
		u := make([]uint16, 0, len(b)/2)
		for i := 0; i+1 < len(b); i += 2 {
			u = append(u, binary.LittleEndian.Uint16(b[i:]))
		}
		b = []byte(string(utf16.Decode(u)))
	}
	line, _, _ := strings.Cut(strings.TrimLeft(string(b), "\r\n"), "\n")
	f := strings.SplitN(strings.TrimRight(line, "\r"), ",", 4)
	if len(f) < 2 || strings.TrimSpace(f[0]) == "" {
		return "", "", fmt.Errorf("boot CSV %q: want loader,label", line)
	}
	if strings.ContainsAny(f[0], `/\`) || f[0] == ".." {
		return "", "", fmt.Errorf("boot CSV names %q: a loader must sit beside its CSV", f[0])
	}
	return strings.TrimSpace(f[0]), f[1], nil
}
