package kernelparams

import (
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// ParseBool reads a boolean as oslo's bool_from_string does for IPA:
// 1/0, true/false, yes/no, on/off, y/n, t/f in any case; empty is false.
func ParseBool(v string) (bool, error) {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "1", "true", "yes", "on", "y", "t":
		return true, nil
	case "0", "false", "no", "off", "n", "f", "":
		return false, nil
	}
	return false, errors.New("not a boolean (1/0, true/false, yes/no, on/off)")
}

// ParseSeconds reads IPA's float seconds ("1.5", "1e3") as a duration,
// refusing negative, NaN and absurd (over 10^9 s) values, which would
// overflow time.Duration or stand for a misread value.
func ParseSeconds(v string) (time.Duration, error) {
	s, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
	if err != nil || s != s { // s != s: NaN
		return 0, errors.New("not a number of seconds")
	}
	if s < 0 || s > 1e9 {
		return 0, errors.New("seconds out of range")
	}
	return time.Duration(s * float64(time.Second)), nil
}

// SplitList splits a comma list, trimming white space and dropping empty
// items; an empty list is nil.
func SplitList(v string) []string {
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// CheckHTTPURL says what is wrong with v as an http:// or https:// URL
// with a host, or nil.
func CheckHTTPURL(v string) error {
	u, err := url.Parse(v)
	if err != nil {
		return err
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return errors.New("URL needs an http:// or https:// scheme")
	}
	if u.Host == "" {
		return errors.New("URL has no host")
	}
	return nil
}

// String is a setter storing the value as it is.
func String[T any](field func(*T) *string) func(*T, string) error {
	return func(c *T, v string) error { *field(c) = v; return nil }
}

// Bool is a setter reading the value with ParseBool.
func Bool[T any](field func(*T) *bool) func(*T, string) error {
	return func(c *T, v string) error {
		b, err := ParseBool(v)
		if err != nil {
			return err
		}
		*field(c) = b
		return nil
	}
}

// Int is a setter reading a whole number of at least min.
func Int[T any](field func(*T) *int, min int) func(*T, string) error {
	return func(c *T, v string) error {
		n, err := strconv.Atoi(strings.TrimSpace(v))
		if err != nil {
			return errors.New("not a whole number")
		}
		if n < min {
			return fmt.Errorf("must be at least %d", min)
		}
		*field(c) = n
		return nil
	}
}

// Port is a setter reading a TCP or UDP port, 1 to 65535.
func Port[T any](field func(*T) *int) func(*T, string) error {
	return func(c *T, v string) error {
		n, err := strconv.Atoi(strings.TrimSpace(v))
		if err != nil {
			return errors.New("not a port number")
		}
		if n < 1 || n > 65535 {
			return errors.New("port out of range 1-65535")
		}
		*field(c) = n
		return nil
	}
}

// Seconds is a setter reading the value with ParseSeconds.
func Seconds[T any](field func(*T) *time.Duration) func(*T, string) error {
	return func(c *T, v string) error {
		d, err := ParseSeconds(v)
		if err != nil {
			return err
		}
		*field(c) = d
		return nil
	}
}

// List is a setter reading the value with SplitList.
func List[T any](field func(*T) *[]string) func(*T, string) error {
	return func(c *T, v string) error { *field(c) = SplitList(v); return nil }
}
