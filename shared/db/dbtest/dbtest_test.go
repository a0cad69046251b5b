package dbtest

import (
	"io/fs"
	"regexp"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/atrium-suite/atrium/shared/db"
)

func TestWithTimeZone(t *testing.T) {
	tests := []struct{ in, want string }{
		{"postgres://u@h:5/d?sslmode=disable", "postgres://u@h:5/d?sslmode=disable&timezone=America%2FSt_Johns"},
		{"postgresql://u@h/d", "postgresql://u@h/d?timezone=America%2FSt_Johns"},
		{"postgres://u@h/d?timezone=UTC", "postgres://u@h/d?timezone=UTC"},
		{"host=h dbname=d", "host=h dbname=d timezone=America/St_Johns"},
		{"host=h timezone=UTC", "host=h timezone=UTC"},
	}
	for _, tt := range tests {
		if got := withTimeZone(t, tt.in); got != tt.want {
			t.Errorf("withTimeZone(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestUniqueSchema(t *testing.T) {
	valid := regexp.MustCompile(`^[a-z_][a-z0-9_]*$`)
	seen := map[string]bool{}
	for range 100 {
		s := uniqueSchema(t)
		if !valid.MatchString(s) || len(s) > 63 || seen[s] {
			t.Fatalf("uniqueSchema = %q: invalid, too long or repeated", s)
		}
		seen[s] = true
	}
	t.Run(strings.Repeat("Long Name/", 20), func(t *testing.T) {
		if s := uniqueSchema(t); !valid.MatchString(s) || len(s) > 63 {
			t.Fatalf("uniqueSchema = %q", s)
		}
	})
}

func TestForEachDialect(t *testing.T) {
	migrations := fstest.MapFS{"0001_t.sql": {Data: []byte("CREATE TABLE t (id INTEGER PRIMARY KEY);")}}
	var ran []string
	ForEachDialect(t, func(t *testing.T, open func(*testing.T, fs.FS) *db.DB) {
		d := open(t, migrations)
		ran = append(ran, string(d.Dialect()))
		if v, err := d.Version(t.Context()); err != nil || v != 1 {
			t.Fatalf("Version = %d, %v; want 1", v, err)
		}
	})
	if len(ran) == 0 || ran[0] != "sqlite" {
		t.Errorf("ran %v, want sqlite first", ran)
	}
}
