package vmedia

import "strings"

// ParseParams reads the virtual floppy's parameters.txt as IPA does:
// words separated by any whitespace, each "key=value" split at the first
// '='; words without '=' are dropped, a later key wins. Quotes are not
// special (IPA splits on whitespace only).
func ParseParams(text string) map[string]string {
	out := map[string]string{}
	for _, w := range strings.Fields(text) {
		k, v, ok := strings.Cut(w, "=")
		if !ok {
			continue
		}
		out[k] = v
	}
	return out
}
