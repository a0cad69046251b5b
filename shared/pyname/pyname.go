// Package pyname is Python project names as the packaging standards
// compare them: Package Manager keys its projects by them, and Connect
// reports the packages content runs with by them.
package pyname

import "strings"

// Normalize is PEP 503's project name normalization: lower case, and every
// run of '-', '_' and '.' becomes one '-'. "Foo.Bar__baz" → "foo-bar-baz".
func Normalize(name string) string {
	var b strings.Builder
	b.Grow(len(name))
	sep := false
	for i := 0; i < len(name); i++ {
		c := name[i]
		if c == '-' || c == '_' || c == '.' {
			sep = true
			continue
		}
		if sep {
			b.WriteByte('-')
			sep = false
		}
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		b.WriteByte(c)
	}
	if sep {
		b.WriteByte('-')
	}
	return b.String()
}
