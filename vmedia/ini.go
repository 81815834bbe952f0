package vmedia

import (
	"bufio"
	"fmt"
	"io"
	"strings"
)

// INI is one oslo.config file: section -> option -> value. Section names
// keep their case except DEFAULT, which oslo matches in any case; option
// names are lower-cased with '-' as '_', as oslo normalises them.
type INI map[string]map[string]string

// ParseError says where an INI file is malformed.
type ParseError struct {
	Line int
	Msg  string
}

func (e *ParseError) Error() string { return fmt.Sprintf("line %d: %s", e.Line, e.Msg) }

// normalizeOption is how oslo.config finds an option whatever its
// spelling in the file: guard-special-filesystems == guard_special_filesystems.
func normalizeOption(k string) string {
	return strings.ReplaceAll(strings.ToLower(strings.TrimSpace(k)), "-", "_")
}

func normalizeSection(s string) string {
	if strings.EqualFold(s, "default") {
		return "DEFAULT"
	}
	return s
}

// ParseINI reads an oslo.config file: [section] headers, "key = value" or
// "key: value", '#' and ';' comment lines, and continuation lines (an
// indented line extends the previous value, joined with a newline, as
// oslo's iniparser does). A later key in the same file wins. An option
// before any section header is an error, as in oslo.
func ParseINI(r io.Reader) (INI, error) {
	out := INI{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	section := ""
	lastKey := ""
	n := 0
	for sc.Scan() {
		n++
		raw := sc.Text()
		if n == 1 {
			raw = strings.TrimPrefix(raw, "\ufeff")
		}
		line := strings.TrimSpace(raw)
		if line == "" {
			lastKey = ""
			continue
		}
		if line[0] == '#' || line[0] == ';' {
			continue
		}
		if (raw[0] == ' ' || raw[0] == '\t') && lastKey != "" {
			sec := out[section]
			if sec[lastKey] == "" {
				sec[lastKey] = line
			} else {
				sec[lastKey] += "\n" + line
			}
			continue
		}
		if line[0] == '[' {
			if !strings.HasSuffix(line, "]") {
				return nil, &ParseError{n, "section header without ']'"}
			}
			section = normalizeSection(strings.TrimSpace(line[1 : len(line)-1]))
			if section == "" {
				return nil, &ParseError{n, "empty section name"}
			}
			if out[section] == nil {
				out[section] = map[string]string{}
			}
			lastKey = ""
			continue
		}
		i := strings.IndexAny(line, "=:")
		if i < 0 {
			return nil, &ParseError{n, fmt.Sprintf("%q is neither a section, an option nor a comment", line)}
		}
		key := normalizeOption(line[:i])
		if key == "" {
			return nil, &ParseError{n, "option without a name"}
		}
		if section == "" {
			return nil, &ParseError{n, fmt.Sprintf("option %q before any [section]", key)}
		}
		out[section][key] = strings.TrimSpace(line[i+1:])
		lastKey = key
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return out, nil
}
