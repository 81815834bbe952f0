package bootloader

import (
	"fmt"
	"regexp"
)

// DefaultNVRAMPatterns are IPA's clean_uefi_nvram defaults: entries on a
// disk partition, and shim and grub loaders anywhere.
var DefaultNVRAMPatterns = []string{`^HD\(`, `shim.*\.efi`, `grub.*\.efi`}

// PatternsError: clean_uefi_nvram's match_patterns is not a list of
// regular expressions (IPA's words).
type PatternsError struct{ Value any }

func (e *PatternsError) Error() string {
	return fmt.Sprintf("The match_patterns must be a list of strings: %v", e.Value)
}

// MatchPatterns compiles clean_uefi_nvram's match_patterns (a JSON list
// of strings; nil for DefaultNVRAMPatterns) case-insensitively, as IPA
// does. Errors are *PatternsError.
func MatchPatterns(raw any) ([]*regexp.Regexp, error) {
	if raw == nil {
		raw = DefaultNVRAMPatterns
	}
	var list []string
	switch l := raw.(type) {
	case []string:
		list = l
	case []any:
		for _, p := range l {
			s, ok := p.(string)
			if !ok {
				return nil, &PatternsError{raw}
			}
			list = append(list, s)
		}
	default:
		return nil, &PatternsError{raw}
	}
	patterns := make([]*regexp.Regexp, 0, len(list))
	for _, s := range list {
		re, err := regexp.Compile("(?i)" + s)
		if err != nil {
			return nil, &PatternsError{raw}
		}
		patterns = append(patterns, re)
	}
	return patterns, nil
}
