package inventory

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"sort"
	"strconv"
	"strings"
)

// MinRootDiskSize is IPA's smallest default install disk: 4 GiB.
const MinRootDiskSize = 4 << 30

var stringHints = map[string]bool{
	"model": true, "vendor": true, "serial": true, "wwn": true, "wwn_with_extension": true,
	"wwn_vendor_extension": true, "name": true, "hctl": true, "by_path": true, "tran": true,
}

// Hints are parsed root device hints: name -> normalised expression.
type Hints map[string]string

// ParseHints validates Ironic's root_device dict (instance_info first,
// then properties) as IPA does: unknown names and malformed values are
// errors; strings without an operator mean "s==", sizes "==".
func ParseHints(raw map[string]any) (Hints, error) {
	if len(raw) == 0 {
		return nil, nil
	}
	h := Hints{}
	for k, v := range raw {
		switch {
		case k == "size":
			expr, err := sizeExpr(v)
			if err != nil {
				return nil, fmt.Errorf("root device hint size=%v: %w", v, err)
			}
			h[k] = expr
		case k == "rotational":
			b, err := boolHint(v)
			if err != nil {
				return nil, fmt.Errorf("root device hint rotational=%v: %w", v, err)
			}
			h[k] = strconv.FormatBool(b)
		case stringHints[k]:
			s, ok := v.(string)
			if !ok {
				if n, isNum := v.(float64); isNum {
					s = strconv.FormatFloat(n, 'f', -1, 64)
				} else {
					return nil, fmt.Errorf("root device hint %s=%v: must be a string", k, v)
				}
			}
			if strings.TrimSpace(s) == "" {
				return nil, fmt.Errorf("root device hint %s is empty", k)
			}
			if k == "name" && !strings.HasPrefix(s, "/dev/") && !hasOperator(s) {
				s = "/dev/" + s
			}
			expr, err := stringExpr(s)
			if err != nil {
				return nil, fmt.Errorf("root device hint %s=%q: %w", k, s, err)
			}
			h[k] = expr
		default:
			return nil, fmt.Errorf("unknown root device hint %q", k)
		}
	}
	return h, nil
}

func boolHint(v any) (bool, error) {
	switch b := v.(type) {
	case bool:
		return b, nil
	case string:
		switch strings.ToLower(strings.TrimSpace(b)) {
		case "1", "true", "yes", "on", "t", "y":
			return true, nil
		case "0", "false", "no", "off", "f", "n":
			return false, nil
		}
	case float64:
		if b == 0 || b == 1 {
			return b == 1, nil
		}
	}
	return false, errors.New("not a boolean")
}

var numericOps = []string{"<range-in>", "<all-in>", "<in>", "<or>", "==", "!=", ">=", "<=", "=", ">", "<"}
var stringOps = []string{"<range-in>", "<all-in>", "<in>", "<or>", "s==", "s!=", "s>=", "s<=", "s>", "s<"}

func hasOperator(s string) bool {
	f := strings.Fields(s)
	if len(f) == 0 {
		return false
	}
	for _, op := range append(append([]string{}, numericOps...), stringOps...) {
		if f[0] == op {
			return true
		}
	}
	return false
}

func sizeExpr(v any) (string, error) {
	switch n := v.(type) {
	case float64:
		if n <= 0 || n != float64(int64(n)) {
			return "", errors.New("must be a positive whole number of GiB")
		}
		return fmt.Sprintf("== %d", int64(n)), nil
	case string:
		s := strings.TrimSpace(n)
		if i, err := strconv.ParseInt(s, 10, 64); err == nil {
			if i <= 0 {
				return "", errors.New("must be a positive whole number of GiB")
			}
			return fmt.Sprintf("== %d", i), nil
		}
		if !hasOperator(s) {
			return "", errors.New("not a number of GiB or an expression like \">= 20\"")
		}
		if _, err := parseExpr(s, true); err != nil {
			return "", err
		}
		return s, nil
	}
	return "", errors.New("must be a number of GiB")
}

// stringExpr lower-cases and URL-quotes the operands, as IPA normalises
// both the hint and the device's value.
func stringExpr(s string) (string, error) {
	s = strings.TrimSpace(s)
	if !hasOperator(s) {
		return "s== " + normString(s), nil
	}
	e, err := parseExpr(s, false)
	if err != nil {
		return "", err
	}
	for i := range e.args {
		e.args[i] = normString(e.args[i])
	}
	return e.String(), nil
}

func normString(s string) string {
	return strings.ReplaceAll(url.PathEscape(strings.ToLower(strings.TrimSpace(s))), "%2F", "/")
}

// expr is one parsed hint expression.
type expr struct {
	op   string
	args []string
	// range bounds inclusive?
	loIncl, hiIncl bool
}

func (e expr) String() string {
	switch e.op {
	case "<or>":
		return "<or> " + strings.Join(e.args, " <or> ")
	case "<range-in>":
		l, r := "(", ")"
		if e.loIncl {
			l = "["
		}
		if e.hiIncl {
			r = "]"
		}
		return fmt.Sprintf("<range-in> %s %s %s %s", l, e.args[0], e.args[1], r)
	}
	return e.op + " " + strings.Join(e.args, " ")
}

func parseExpr(s string, numeric bool) (expr, error) {
	f := strings.Fields(s)
	if len(f) < 2 {
		return expr{}, errors.New("an operator needs a value")
	}
	e := expr{op: f[0]}
	ops := stringOps
	if numeric {
		ops = numericOps
	}
	ok := false
	for _, op := range ops {
		ok = ok || op == e.op
	}
	if !ok {
		return expr{}, fmt.Errorf("operator %q is not allowed here", e.op)
	}
	switch e.op {
	case "<or>":
		// "<or> a <or> b": values between the operators.
		var cur []string
		for _, w := range f[1:] {
			if w == "<or>" {
				e.args = append(e.args, strings.Join(cur, " "))
				cur = nil
				continue
			}
			cur = append(cur, w)
		}
		e.args = append(e.args, strings.Join(cur, " "))
		for _, a := range e.args {
			if a == "" {
				return expr{}, errors.New("empty <or> value")
			}
		}
	case "<range-in>":
		joined := strings.Join(f[1:], " ")
		if len(joined) < 2 {
			return expr{}, errors.New("<range-in> needs [ lo hi ]")
		}
		l, r := joined[0], joined[len(joined)-1]
		inner := strings.Fields(joined[1 : len(joined)-1])
		if (l != '[' && l != '(') || (r != ']' && r != ')') || len(inner) != 2 {
			return expr{}, errors.New("<range-in> needs [ lo hi ] or ( lo hi )")
		}
		for _, x := range inner {
			if _, err := strconv.ParseFloat(x, 64); err != nil {
				return expr{}, fmt.Errorf("<range-in> bound %q is not a number", x)
			}
		}
		e.args, e.loIncl, e.hiIncl = inner, l == '[', r == ']'
	case "<all-in>":
		e.args = f[1:]
	default:
		e.args = []string{strings.Join(f[1:], " ")}
		if numeric && e.op != "<in>" {
			if _, err := strconv.ParseFloat(e.args[0], 64); err != nil {
				return expr{}, fmt.Errorf("%q is not a number", e.args[0])
			}
		}
	}
	return e, nil
}

// matchNumeric evaluates a size expression against GiB.
func matchNumeric(exprText string, v float64) bool {
	e, err := parseExpr(exprText, true)
	if err != nil {
		return false
	}
	num := func(s string) float64 { f, _ := strconv.ParseFloat(s, 64); return f }
	switch e.op {
	case "=", ">=":
		return v >= num(e.args[0])
	case "==":
		return v == num(e.args[0])
	case "!=":
		return v != num(e.args[0])
	case "<=":
		return v <= num(e.args[0])
	case ">":
		return v > num(e.args[0])
	case "<":
		return v < num(e.args[0])
	case "<or>":
		for _, a := range e.args {
			if v == num(a) {
				return true
			}
		}
		return false
	case "<range-in>":
		lo, hi := num(e.args[0]), num(e.args[1])
		return (v > lo || e.loIncl && v == lo) && (v < hi || e.hiIncl && v == hi)
	case "<in>":
		return strings.Contains(strconv.FormatFloat(v, 'f', -1, 64), e.args[0])
	}
	return false
}

// matchString evaluates a normalised string expression.
func matchString(exprText, value string) bool {
	e, err := parseExpr(exprText, false)
	if err != nil {
		return false
	}
	v := normString(value)
	switch e.op {
	case "s==":
		return v == e.args[0]
	case "s!=":
		return v != e.args[0]
	case "s>=":
		return v >= e.args[0]
	case "s<=":
		return v <= e.args[0]
	case "s>":
		return v > e.args[0]
	case "s<":
		return v < e.args[0]
	case "<in>":
		return strings.Contains(v, e.args[0])
	case "<or>":
		for _, a := range e.args {
			if v == a {
				return true
			}
		}
	case "<all-in>":
		for _, a := range e.args {
			if !strings.Contains(v, a) {
				return false
			}
		}
		return true
	}
	return false
}

func deref(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

// matches reports whether every hint matches the disk.
func (h Hints) matches(d Disk) bool {
	for k, e := range h {
		var ok bool
		switch k {
		case "size":
			ok = matchNumeric(e, float64(d.Size)/float64(1<<30))
		case "rotational":
			ok = e == strconv.FormatBool(d.Rotational)
		default:
			var vals []string
			switch k {
			case "name":
				vals = []string{d.Name}
			case "model":
				vals = []string{deref(d.Model)}
			case "vendor":
				vals = []string{deref(d.Vendor)}
			case "serial":
				vals = []string{deref(d.Serial)}
			case "wwn":
				vals = []string{deref(d.WWN)}
			case "wwn_with_extension":
				vals = []string{deref(d.WWNWithExtension)}
			case "wwn_vendor_extension":
				vals = []string{deref(d.WWNVendorExtension)}
			case "hctl":
				vals = []string{deref(d.HCTL)}
			case "by_path":
				vals = []string{deref(d.ByPath)}
			case "tran":
				vals = []string{deref(d.Tran)}
			}
			for _, v := range vals {
				if v != "" && matchString(e, v) {
					ok = true
				}
			}
		}
		if !ok {
			return false
		}
	}
	return true
}

// DeviceNotFoundError says no disk satisfied the hints (or the default
// rule), naming both and the disks that were seen.
type DeviceNotFoundError struct {
	Hints map[string]any
	Seen  []Disk
}

func (e *DeviceNotFoundError) Error() string {
	var seen []string
	for _, d := range e.Seen {
		seen = append(seen, fmt.Sprintf("%s (%d bytes, model %q, serial %q)", d.Name, d.Size, deref(d.Model), deref(d.Serial)))
	}
	if len(seen) == 0 {
		seen = []string{"none"}
	}
	if len(e.Hints) == 0 {
		return fmt.Sprintf("no disk of at least %d GiB found for the default install disk rule; disks seen: %s", MinRootDiskSize>>30, strings.Join(seen, ", "))
	}
	b, _ := json.Marshal(e.Hints)
	return fmt.Sprintf("no disk matches the root device hints %s; disks seen: %s", b, strings.Join(seen, ", "))
}

// SelectRootDisk picks the install disk: the first disk, in list order,
// that matches all hints; without hints the smallest disk of at least
// 4 GiB (IPA's rule, spec 7.2).
func SelectRootDisk(disks []Disk, raw map[string]any) (Disk, error) {
	h, err := ParseHints(raw)
	if err != nil {
		return Disk{}, err
	}
	if len(h) == 0 {
		sorted := append([]Disk(nil), disks...)
		sort.SliceStable(sorted, func(i, j int) bool {
			if sorted[i].Size != sorted[j].Size {
				return sorted[i].Size < sorted[j].Size
			}
			return sorted[i].Name < sorted[j].Name
		})
		for _, d := range sorted {
			if d.Size >= MinRootDiskSize {
				return d, nil
			}
		}
		return Disk{}, &DeviceNotFoundError{Seen: disks}
	}
	for _, d := range disks {
		if h.matches(d) {
			return d, nil
		}
	}
	return Disk{}, &DeviceNotFoundError{Hints: raw, Seen: disks}
}

// Matches reports whether d satisfies every hint in raw (as in
// properties.skip_block_devices entries).
func Matches(d Disk, raw map[string]any) (bool, error) {
	h, err := ParseHints(raw)
	if err != nil {
		return false, err
	}
	if len(h) == 0 {
		return false, nil
	}
	return h.matches(d), nil
}

// NodeRootDeviceHints are the root device hints of the node Ironic sent:
// instance_info's root_device, else properties' (nil for none).
func NodeRootDeviceHints(node map[string]any) map[string]any {
	for _, key := range []string{"instance_info", "properties"} {
		if m, ok := node[key].(map[string]any); ok {
			if h, ok := m["root_device"].(map[string]any); ok && len(h) > 0 {
				return h
			}
		}
	}
	return nil
}
