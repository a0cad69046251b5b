package cran

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestParseDESCRIPTION(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		check   func(t *testing.T, d Description)
		wantErr string
	}{
		{
			name: "full, with continuation lines",
			in: `Package: my.pkg2
Type: Package
Version: 0.9-1
Title: A Title
    Spanning Lines
Depends: R (>= 3.5.0),
    methods
Imports:
    utils (< 2.0),
    stats(>=1.0),
LinkingTo: Rcpp
Suggests: testthat (>= 3.0.0)
Enhances: foo (== 1.0)
License: GPL (>= 2)
NeedsCompilation: yes
Priority: optional
OS_type: unix
`,
			check: func(t *testing.T, d Description) {
				want := Description{
					Package: "my.pkg2", Version: "0.9-1",
					Depends:          []Dependency{{"R", ">=", "3.5.0"}, {"methods", "", ""}},
					Imports:          []Dependency{{"utils", "<", "2.0"}, {"stats", ">=", "1.0"}},
					LinkingTo:        []Dependency{{"Rcpp", "", ""}},
					Suggests:         []Dependency{{"testthat", ">=", "3.0.0"}},
					Enhances:         []Dependency{{"foo", "==", "1.0"}},
					License:          "GPL (>= 2)",
					NeedsCompilation: "yes", Priority: "optional", OSType: "unix",
					Title: "A Title Spanning Lines",
				}
				want.Fields = d.Fields
				if !reflect.DeepEqual(d, want) {
					t.Errorf("got  %+v\nwant %+v", d, want)
				}
				if len(d.Fields) != 13 || d.Fields[1].Name != "Type" || d.Fields.Value("Imports") != "utils (< 2.0),\nstats(>=1.0)," {
					t.Errorf("raw fields not kept in order: %q", d.Fields)
				}
			},
		},
		{
			name: "the test package",
			in:   mustRead(t, filepath.Join("testdata", "src", "greeter", "DESCRIPTION")),
			check: func(t *testing.T, d Description) {
				if d.Package != "atriumgreeter" || d.Version != "0.1-2" || len(d.Imports) != 2 || d.Imports[0] != (Dependency{"atriumhello", ">=", "1.1.0"}) {
					t.Errorf("got %+v", d)
				}
			},
		},
		{
			name: "latin1 converted to UTF-8",
			in:   "Package: ab\nVersion: 1.0\nEncoding: latin1\nTitle: Caf\xe9\n",
			check: func(t *testing.T, d Description) {
				if d.Title != "Café" {
					t.Errorf("Title = %q", d.Title)
				}
			},
		},
		{name: "empty", in: "\n\n", wantErr: "DESCRIPTION is empty"},
		{name: "two paragraphs", in: "Package: ab\nVersion: 1.0\n\nFoo: bar\n", wantErr: "2 paragraphs"},
		{name: "no package", in: "Version: 1.0\n", wantErr: "no Package field"},
		{name: "no version", in: "Package: ab\n", wantErr: "no Version field"},
		{name: "one-letter name", in: "Package: a\nVersion: 1.0\n", wantErr: `invalid package name "a"`},
		{name: "underscore in name", in: "Package: a_b\nVersion: 1.0\n", wantErr: `invalid package name "a_b"`},
		{name: "name ends in dot", in: "Package: ab.\nVersion: 1.0\n", wantErr: "invalid package name"},
		{name: "name starts with digit", in: "Package: 2ab\nVersion: 1.0\n", wantErr: "invalid package name"},
		{name: "single-number version", in: "Package: ab\nVersion: 1\n", wantErr: `invalid version "1"`},
		{name: "letters in version", in: "Package: ab\nVersion: 1.0a\n", wantErr: "invalid version"},
		{name: "binary package", in: "Package: ab\nVersion: 1.0\nBuilt: R 4.4.1; ; 2024-01-01; unix\n", wantErr: "binary package"},
		{name: "bad NeedsCompilation", in: "Package: ab\nVersion: 1.0\nNeedsCompilation: maybe\n", wantErr: "NeedsCompilation"},
		{name: "bad dependency", in: "Package: ab\nVersion: 1.0\nImports: foo (>= 1.0\n", wantErr: "Imports: malformed version constraint"},
		{name: "bad operator", in: "Package: ab\nVersion: 1.0\nDepends: R (~ 4.0)\n", wantErr: "Depends: version constraint"},
		{name: "invalid UTF-8", in: "Package: ab\nVersion: 1.0\nTitle: Caf\xe9\n", wantErr: "not valid UTF-8"},
		{name: "unsupported encoding", in: "Package: ab\nVersion: 1.0\nEncoding: EUC-JP\n", wantErr: "only UTF-8 and latin1"},
		{name: "syntax error", in: "Package: ab\nVersion 1.0\n", wantErr: "line 2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := ParseDESCRIPTION([]byte(tt.in))
			if tt.wantErr != "" {
				var inv *InvalidError
				if !errors.As(err, &inv) || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want *InvalidError containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, d)
		})
	}
}

func TestParseDependencies(t *testing.T) {
	tests := []struct {
		in      string
		want    []Dependency
		wantErr bool
	}{
		{"", nil, false},
		{" , ,", nil, false},
		{"R (>= 4)", []Dependency{{"R", ">=", "4"}}, false},
		{"a.b(!=1.0-2) ,c", []Dependency{{"a.b", "!=", "1.0-2"}, {"c", "", ""}}, false},
		{"x (<= 1.0), y (> 2.0), z (== 3.0)", []Dependency{{"x", "<=", "1.0"}, {"y", ">", "2.0"}, {"z", "==", "3.0"}}, false},
		{"x (>= 1.0) trailing", nil, true},
		{"x (>= )", nil, true},
		{"x (>= 1.a)", nil, true},
		{"1x", nil, true},
		{"x y", nil, true},
	}
	for _, tt := range tests {
		got, err := ParseDependencies(tt.in)
		if (err != nil) != tt.wantErr || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("ParseDependencies(%q) = %v, %v; want %v, err %v", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
	if s := (Dependency{"R", ">=", "4.0"}).String(); s != "R (>= 4.0)" {
		t.Errorf("String() = %q", s)
	}
}

func mustRead(t testing.TB, name string) string {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
