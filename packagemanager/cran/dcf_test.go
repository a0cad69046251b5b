package cran

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestParseDCF(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    []Record
		wantErr string
	}{
		{
			name: "one record",
			in:   "Package: a1\nVersion: 1.0\n",
			want: []Record{{{"Package", "a1"}, {"Version", "1.0"}}},
		},
		{
			name: "records separated by blank and blank-only lines, extra blanks ignored",
			in:   "\n\nPackage: a1\n\n \t\nPackage: b2\nVersion: 2.0\n\n\n",
			want: []Record{{{"Package", "a1"}}, {{"Package", "b2"}, {"Version", "2.0"}}},
		},
		{
			name: "continuation lines join with newline; ' .' is an empty line",
			in:   "Description: first\n    second  \n\t.\n  third\nLicense: MIT\n",
			want: []Record{{{"Description", "first\nsecond\n\nthird"}, {"License", "MIT"}}},
		},
		{
			name: "value starting on a continuation line",
			in:   "Imports:\n    a,\n    b\n",
			want: []Record{{{"Imports", "a,\nb"}}},
		},
		{
			name: "CRLF line endings and no final newline",
			in:   "Package: a1\r\nTitle:  spaced  \r\n\r\nPackage: b2",
			want: []Record{{{"Package", "a1"}, {"Title", "spaced"}}, {{"Package", "b2"}}},
		},
		{
			name: "colon in value and empty value",
			in:   "URL: https://example.org/x:y\nEmpty:\n",
			want: []Record{{{"URL", "https://example.org/x:y"}, {"Empty", ""}}},
		},
		{name: "empty input", in: "", want: nil},
		{name: "duplicate field", in: "Package: a\nVersion: 1\nPackage: b\n", wantErr: `line 3: field "Package" appears twice`},
		{name: "continuation first", in: "  oops\nPackage: a\n", wantErr: "line 1: continuation line"},
		{name: "continuation after blank line", in: "Package: a\n\n  oops\n", wantErr: "line 3: continuation line"},
		{name: "no colon", in: "Package: a\nVersion 1.0\n", wantErr: `line 2: expected "Field: value"`},
		{name: "empty field name", in: ": value\n", wantErr: "line 1: empty field name"},
		{name: "space in field name", in: "Pack age: a\n", wantErr: "line 1: field name"},
		{name: "field name starting with dash", in: "-X: a\n", wantErr: "may not start with"},
		{name: "line too long", in: "A: " + strings.Repeat("x", maxDCFLine) + "\n", wantErr: "line 1: line longer than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseDCF(strings.NewReader(tt.in))
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
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %q\nwant %q", got, tt.want)
			}
		})
	}
}

func TestRecordGet(t *testing.T) {
	r := Record{{"Package", "a"}, {"Empty", ""}}
	if v, ok := r.Get("Empty"); !ok || v != "" {
		t.Errorf("Get(Empty) = %q, %v", v, ok)
	}
	if _, ok := r.Get("package"); ok {
		t.Error("field names must be case-sensitive")
	}
	if r.Value("Package") != "a" || r.Value("Missing") != "" {
		t.Error("Value")
	}
}
