package db_test

import (
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/atrium-suite/atrium/shared/db"
)

func TestRebind(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"no placeholders", "SELECT 1", "SELECT 1"},
		{"one", "SELECT * FROM t WHERE id = ?", "SELECT * FROM t WHERE id = $1"},
		{"several", "INSERT INTO t (a, b, c) VALUES (?, ?, ?)", "INSERT INTO t (a, b, c) VALUES ($1, $2, $3)"},
		{"adjacent", "??", "$1$2"},
		{"ten and more", strings.Repeat("?,", 11), "$1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,"},
		{"in string literal", "SELECT 'why?' WHERE a = ?", "SELECT 'why?' WHERE a = $1"},
		{"doubled quote in literal", "SELECT 'it''s ?' , ?", "SELECT 'it''s ?' , $1"},
		{"quoted identifier", `SELECT "a?b" FROM t WHERE x = ?`, `SELECT "a?b" FROM t WHERE x = $1`},
		{"apostrophe in line comment", "SELECT ? -- don't\n, ?", "SELECT $1 -- don't\n, $2"},
		{"placeholder in line comment", "SELECT ? -- why?", "SELECT $1 -- why?"},
		{"block comment", "SELECT /* it's ? */ ?", "SELECT /* it's ? */ $1"},
		{"unterminated literal", "SELECT ? 'oops ?", "SELECT $1 'oops ?"},
		{"unterminated block comment", "SELECT ? /* ?", "SELECT $1 /* ?"},
		{"lone dash and slash", "SELECT ? - ? / ?", "SELECT $1 - $2 / $3"},
		{"multi-byte text", "SELECT 'héllo?' , ? , '日本?'", "SELECT 'héllo?' , $1 , '日本?'"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := db.Postgres.Rebind(tt.in); got != tt.want {
				t.Errorf("Postgres.Rebind(%q) = %q, want %q", tt.in, got, tt.want)
			}
			if got := db.SQLite.Rebind(tt.in); got != tt.in {
				t.Errorf("SQLite.Rebind(%q) = %q, want it unchanged", tt.in, got)
			}
		})
	}
}

// token splits SQL into what Rebind must skip (quoted text and comments,
// terminated or running to the end) and single characters. It is a second,
// independent reading of the same rules, for the fuzz test to compare against.
var token = regexp.MustCompile(`(?s)'[^']*(?:'|$)|"[^"]*(?:"|$)|--[^\n]*|/\*.*?(?:\*/|$)|.`)

func placeholdersOutsideQuotes(q string) int {
	n := 0
	for _, tok := range token.FindAllString(q, -1) {
		if tok == "?" {
			n++
		}
	}
	return n
}

func FuzzRebind(f *testing.F) {
	for _, s := range []string{
		"SELECT * FROM t WHERE a = ? AND b = '?'",
		"'it''s' ? \"?\" -- ?\n ? /* ? */ ?",
		"?1 ?? '", "/*/ ? */ ?", "-- only a comment ?",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, q string) {
		if got := db.SQLite.Rebind(q); got != q {
			t.Fatalf("SQLite.Rebind changed %q to %q", q, got)
		}
		if strings.Contains(q, "$") {
			return // the checks below use '$' to find the placeholders
		}
		out := db.Postgres.Rebind(q)
		want := placeholdersOutsideQuotes(q)
		// Every '$' must be the next placeholder number, and turning them
		// back into '?' must give the input: nothing else was changed.
		var back strings.Builder
		rest := out
		n := 0
		for {
			i := strings.IndexByte(rest, '$')
			if i < 0 {
				back.WriteString(rest)
				break
			}
			n++
			num := "$" + strconv.Itoa(n)
			if !strings.HasPrefix(rest[i:], num) {
				t.Fatalf("Rebind(%q) = %q: placeholder %d is not %s", q, out, n, num)
			}
			back.WriteString(rest[:i])
			back.WriteByte('?')
			rest = rest[i+len(num):]
		}
		if n != want {
			t.Fatalf("Rebind(%q) = %q has %d placeholders, want %d", q, out, n, want)
		}
		if back.String() != q {
			t.Fatalf("Rebind(%q) = %q changed more than the placeholders", q, out)
		}
	})
}
