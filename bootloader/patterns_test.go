package bootloader

import (
	"errors"
	"testing"
)

func TestMatchPatterns(t *testing.T) {
	for _, tt := range []struct {
		name       string
		raw        any
		match, not []string // device paths as efibootmgr prints them
		bad        bool
	}{
		{"IPA's defaults", nil,
			[]string{`HD(1,GPT,2b7b4a3c-1d6e-4f2a-9c8b-0123456789ab,0x800,0x100000)/File(\EFI\debian\shimx64.efi)`, `VenHw(1234)/File(\EFI\tools\GRUBX64.EFI)`},
			[]string{`PciRoot(0x0)/Pci(0x3,0x0)/MAC(525400123456,1)/IPv4(0.0.0.0)`}, false},
		{"a list from JSON, case-insensitive", []any{"pxe", "^pciroot"}, []string{"UEFI PXEv4", `PciRoot(0x0)/Pci(0x1,0x1)`}, []string{`HD(1,GPT)`}, false},
		{"an empty list matches nothing", []any{}, nil, []string{`HD(1,GPT)`}, false},
		{"not a list", "not a list", nil, nil, true},
		{"a number in the list", []any{"shim", 5}, nil, nil, true},
		{"not a regular expression", []any{"(unclosed"}, nil, nil, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			res, err := MatchPatterns(tt.raw)
			if tt.bad {
				var pe *PatternsError
				if !errors.As(err, &pe) {
					t.Fatalf("MatchPatterns(%v) = %v; want a PatternsError", tt.raw, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			matches := func(s string) bool {
				for _, re := range res {
					if re.MatchString(s) {
						return true
					}
				}
				return false
			}
			for _, s := range tt.match {
				if !matches(s) {
					t.Errorf("%q not matched", s)
				}
			}
			for _, s := range tt.not {
				if matches(s) {
					t.Errorf("%q matched", s)
				}
			}
		})
	}
}
