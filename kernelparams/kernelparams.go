package kernelparams

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"sort"
	"strings"
)

// Split splits a kernel command line into key=value pairs the way the
// kernel does: white space separates, double quotes group (and are
// dropped). Words without "=" carry no value and are left out, as IPA
// leaves them out; a key given twice keeps its last value.
func Split(cmdline string) map[string]string {
	out := map[string]string{}
	var word strings.Builder
	inQuote := false
	flush := func() {
		w := word.String()
		word.Reset()
		k, v, ok := strings.Cut(w, "=")
		if !ok || k == "" {
			return
		}
		out[k] = v
	}
	for _, r := range cmdline {
		switch {
		case r == '"':
			inQuote = !inQuote
		case !inQuote && (r == ' ' || r == '\t' || r == '\n' || r == '\r'):
			flush()
		default:
			word.WriteRune(r)
		}
	}
	flush()
	return out
}

// Param is one setting of T: its name on the kernel command line and as
// a flag, its default (text, parsed like any given value, so a default
// is checked as strictly as the operator's value) and how a value lands
// in T.
type Param[T any] struct {
	Name    string
	Default string
	Usage   string
	Set     func(into *T, value string) error
}

// Error names the parameter whose value is malformed.
type Error struct {
	Param string
	Value string
	Err   error
}

func (e *Error) Error() string {
	return fmt.Sprintf("parameter %s=%q: %v", e.Param, e.Value, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// Parse sets into from params: each parameter's default, replaced by the
// kernel command line's value, replaced by a flag of the same name in
// args (--name=value or -name value). Kernel words that name no
// parameter are ignored (the kernel's own and other programs' are on the
// same line); an unknown flag or a positional argument is an error. A
// value its setter refuses is an *Error naming the parameter. It returns
// the value each parameter was set from.
func Parse[T any](params []Param[T], into *T, cmdline string, args []string) (map[string]string, error) {
	values := map[string]string{}
	for _, p := range params {
		values[p.Name] = p.Default
	}
	for k, v := range Split(cmdline) {
		if _, known := values[k]; known {
			values[k] = v
		}
	}
	fs := flag.NewFlagSet("kernelparams", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	flagVals := map[string]*string{}
	for _, p := range params {
		flagVals[p.Name] = fs.String(p.Name, p.Default, p.Usage)
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	fs.Visit(func(f *flag.Flag) { values[f.Name] = *flagVals[f.Name] })
	for _, p := range params {
		if err := p.Set(into, values[p.Name]); err != nil {
			return nil, &Error{Param: p.Name, Value: values[p.Name], Err: err}
		}
	}
	return values, nil
}

// Set sets the one parameter name to value after Parse, as a later
// source of settings (an mDNS answer, say) does. An unknown name or a
// refused value is an *Error.
func Set[T any](params []Param[T], into *T, name, value string) error {
	for _, p := range params {
		if p.Name == name {
			if err := p.Set(into, value); err != nil {
				return &Error{Param: name, Value: value, Err: err}
			}
			return nil
		}
	}
	return &Error{Param: name, Value: value, Err: errors.New("unknown parameter")}
}

// PrintDefaults writes every parameter, sorted by name, with its default
// and meaning, as flag.PrintDefaults lays them out.
func PrintDefaults[T any](w io.Writer, params []Param[T]) {
	ps := append([]Param[T](nil), params...)
	sort.Slice(ps, func(i, j int) bool { return ps[i].Name < ps[j].Name })
	for _, p := range ps {
		fmt.Fprintf(w, "  --%s=%q\n\t%s\n", p.Name, p.Default, p.Usage)
	}
}
