package pypi

import (
	"slices"
	"strings"
	"testing"
)

func TestParseMetadata(t *testing.T) {
	tests := []struct {
		name  string
		in    string
		check func(t *testing.T, m Metadata)
		err   bool
	}{
		{
			name: "wheel METADATA with body",
			in: "Metadata-Version: 2.1\r\nName: demo-pkg\r\nVersion: 1.0.0\r\nSummary: A demo\r\n" +
				"Requires-Python: >=3.8\r\nRequires-Dist: packaging>=20\r\nProvides-Extra: http\r\n" +
				"Requires-Dist: requests>=2; extra == \"http\"\r\nClassifier: A\r\nClassifier: B\r\n\r\n# Title\r\n\r\nbody\r\n",
			check: func(t *testing.T, m Metadata) {
				if m.MetadataVersion != "2.1" || m.Name != "demo-pkg" || m.Version != "1.0.0" || m.Summary != "A demo" || m.RequiresPython != ">=3.8" {
					t.Errorf("got %+v", m)
				}
				if !slices.Equal(m.RequiresDist, []string{"packaging>=20", `requests>=2; extra == "http"`}) {
					t.Errorf("RequiresDist = %q", m.RequiresDist)
				}
				if !slices.Equal(m.Classifiers, []string{"A", "B"}) || !slices.Equal(m.ProvidesExtra, []string{"http"}) {
					t.Errorf("Classifiers = %q, ProvidesExtra = %q", m.Classifiers, m.ProvidesExtra)
				}
				if m.Description != "# Title\r\n\r\nbody\r\n" {
					t.Errorf("Description = %q", m.Description)
				}
			},
		},
		{
			name: "continuation lines and header description",
			in:   "Metadata-Version: 1.1\nname: x\nVERSION: 1\nLicense: line one\n        line two\nDescription: first\n        |second\n        |\n        |third\n",
			check: func(t *testing.T, m Metadata) {
				if m.Name != "x" || m.Version != "1" {
					t.Errorf("case-insensitive keys: %+v", m)
				}
				if m.License != "line one\nline two" {
					t.Errorf("License = %q", m.License)
				}
				if m.Description != "first\nsecond\n\nthird" {
					t.Errorf("Description = %q", m.Description)
				}
			},
		},
		{
			name: "first of a single-valued field wins, all are kept",
			in:   "Name: a\nName: b\nX-Custom: 1\n",
			check: func(t *testing.T, m Metadata) {
				if m.Name != "a" || !slices.Equal(m.Fields["name"], []string{"a", "b"}) || m.Get("x-custom") != "1" {
					t.Errorf("got %+v", m)
				}
			},
		},
		{
			name: "a non-header line starts the body",
			in:   "Name: a\nthis is not a header\nVersion: 2\n",
			check: func(t *testing.T, m Metadata) {
				if m.Version != "" || !strings.HasPrefix(m.Description, "this is not") {
					t.Errorf("got %+v", m)
				}
			},
		},
		{
			name: "BOM and invalid UTF-8",
			in:   "\xef\xbb\xbfName: a\nSummary: caf\xe9\n",
			check: func(t *testing.T, m Metadata) {
				if m.Name != "a" || m.Summary != "caf\uFFFD" {
					t.Errorf("got %+v", m)
				}
			},
		},
		{name: "empty", in: "", err: true},
		{name: "body only", in: "\nhello", err: true},
		{name: "starts with continuation", in: " Name: a\n", err: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := ParseMetadata([]byte(tt.in))
			if (err != nil) != tt.err {
				t.Fatalf("err = %v, want error %v", err, tt.err)
			}
			if tt.check != nil {
				tt.check(t, m)
			}
		})
	}
}

func FuzzParseMetadata(f *testing.F) {
	f.Add([]byte(metadataFile("demo", "1.0")))
	f.Add([]byte("Name: a\n continued\n\tmore\nDescription: x\n |y\n\nbody"))
	f.Add([]byte("\r\n\r\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := ParseMetadata(b)
		if err != nil {
			return
		}
		for k, vs := range m.Fields {
			if k != strings.ToLower(k) || strings.ContainsAny(k, ": \t\r\n") {
				t.Fatalf("bad key %q", k)
			}
			for _, v := range vs {
				if v != strings.TrimSpace(v) {
					t.Fatalf("untrimmed value %q", v)
				}
			}
		}
		if m.Name != m.Get("name") {
			t.Fatalf("Name %q vs Fields %q", m.Name, m.Get("name"))
		}
	})
}
