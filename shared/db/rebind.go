package db

import (
	"strconv"
	"strings"
)

// Rebind rewrites the '?' placeholders of q for the dialect: unchanged on
// SQLite, $1, $2, … in order on PostgreSQL.
//
// A '?' inside a single- or double-quoted string, a -- comment or a /* */
// comment is left alone, so a literal like 'why?' or a comment with an
// apostrophe cannot shift the numbering. Not understood: backslash escapes in
// E'…' strings, dollar-quoted strings and nested block comments; keep such
// text out of queries (pass it as an argument instead).
func (d Dialect) Rebind(q string) string {
	if d != Postgres || strings.IndexByte(q, '?') < 0 {
		return q
	}
	var b strings.Builder
	b.Grow(len(q) + 8)
	n := 0
	// Byte-wise is safe for UTF-8: every byte looked at here is ASCII, and
	// bytes of multi-byte characters never are.
	for i := 0; i < len(q); i++ {
		c := q[i]
		switch {
		case c == '\'' || c == '"':
			// Doubled quotes ('it''s') need no special case: they close and
			// reopen the literal.
			end := strings.IndexByte(q[i+1:], c)
			if end < 0 {
				b.WriteString(q[i:])
				return b.String()
			}
			b.WriteString(q[i : i+end+2])
			i += end + 1
		case c == '-' && strings.HasPrefix(q[i:], "--"):
			end := strings.IndexByte(q[i:], '\n')
			if end < 0 {
				b.WriteString(q[i:])
				return b.String()
			}
			b.WriteString(q[i : i+end+1])
			i += end
		case c == '/' && strings.HasPrefix(q[i:], "/*"):
			end := strings.Index(q[i+2:], "*/")
			if end < 0 {
				b.WriteString(q[i:])
				return b.String()
			}
			b.WriteString(q[i : i+2+end+2])
			i += 2 + end + 1
		case c == '?':
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}
