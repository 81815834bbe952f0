package ironicapi

import (
	"fmt"
	"strconv"
	"strings"
)

// Version is an Ironic API microversion "major.minor".
type Version struct{ Major, Minor int }

// ParseVersion reads "1.68" (white space around it allowed).
func ParseVersion(s string) (Version, error) {
	maj, min, ok := strings.Cut(strings.TrimSpace(s), ".")
	a, err1 := strconv.Atoi(maj)
	b, err2 := strconv.Atoi(min)
	if !ok || err1 != nil || err2 != nil || a < 0 || b < 0 {
		return Version{}, fmt.Errorf("%q is not an API version like 1.68", s)
	}
	return Version{a, b}, nil
}

func (v Version) String() string { return fmt.Sprintf("%d.%d", v.Major, v.Minor) }

// Less reports whether v is older than o.
func (v Version) Less(o Version) bool {
	return v.Major < o.Major || (v.Major == o.Major && v.Minor < o.Minor)
}

// AtLeast reports whether v >= s, s a constant like "1.68".
func (v Version) AtLeast(s string) bool {
	o, _ := ParseVersion(s)
	return !v.Less(o)
}

// Capped returns the older of v and s (s a constant like "1.68"): the
// version to ask for when the client wants s and the server offers v.
func (v Version) Capped(s string) string {
	o, _ := ParseVersion(s)
	if v.Less(o) {
		return v.String()
	}
	return o.String()
}
