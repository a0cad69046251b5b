package pypi

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from golden file:\n%s", name, got)
	}
}

var sampleProject = Project{
	Name: "Demo.Pkg",
	Files: []File{
		{
			Filename:           "demo_pkg-1.0.0-py3-none-any.whl",
			URL:                "../../packages/1/demo_pkg-1.0.0-py3-none-any.whl",
			SHA256:             "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
			RequiresPython:     ">=3.8",
			CoreMetadataSHA256: "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb",
			Size:               1234,
			UploadTime:         time.Date(2024, 5, 6, 7, 8, 9, 123456789, time.FixedZone("CEST", 2*3600)),
		},
		{
			Filename:     "demo-pkg-1.0.0.tar.gz",
			URL:          "https://files.example.com/packages/2/demo-pkg-1.0.0.tar.gz",
			SHA256:       "cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc",
			Yanked:       true,
			YankedReason: `broken "build" <oops>`,
			Size:         5678,
			UploadTime:   time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC),
		},
		{
			Filename:       "demo_pkg-0.9+local.1-py3-none-any.whl",
			URL:            "/packages/3/demo_pkg-0.9+local.1-py3-none-any.whl",
			SHA256:         "dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd",
			RequiresPython: "<4,>=3.7",
			Yanked:         true,
		},
	},
	Versions: []string{"1.0.0", "0.9+local.1", "1.0.0rc1", "0.9+local.1"},
}

func TestWriteProjectGolden(t *testing.T) {
	for _, f := range []Format{FormatHTML, FormatJSON} {
		var buf bytes.Buffer
		if err := WriteProject(&buf, f, sampleProject); err != nil {
			t.Fatal(err)
		}
		golden(t, "project."+f.String(), buf.Bytes())
	}
}

func TestWriteIndexGolden(t *testing.T) {
	names := []string{"Demo.Pkg", "requests", "zope.interface", "<script>"}
	for _, f := range []Format{FormatHTML, FormatJSON} {
		var buf bytes.Buffer
		if err := WriteIndex(&buf, f, names); err != nil {
			t.Fatal(err)
		}
		golden(t, "index."+f.String(), buf.Bytes())
	}
}

// TestWriteProjectJSONShape checks the PEP 691/700 types that clients
// depend on, independent of the golden bytes.
func TestWriteProjectJSONShape(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteProject(&buf, FormatJSON, sampleProject); err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Meta     map[string]string `json:"meta"`
		Name     string            `json:"name"`
		Files    []map[string]any  `json:"files"`
		Versions []string          `json:"versions"`
	}
	if err := json.Unmarshal(buf.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	if doc.Meta["api-version"] != "1.1" || doc.Name != "demo-pkg" {
		t.Errorf("meta %v name %q", doc.Meta, doc.Name)
	}
	if strings.Join(doc.Versions, " ") != "0.9+local.1 1.0.0rc1 1.0.0" {
		t.Errorf("versions = %q", doc.Versions)
	}
	f0, f1, f2 := doc.Files[0], doc.Files[1], doc.Files[2]
	if f0["core-metadata"].(map[string]any)["sha256"] != sampleProject.Files[0].CoreMetadataSHA256 || f0["dist-info-metadata"] == nil {
		t.Errorf("core-metadata = %v", f0["core-metadata"])
	}
	if f0["yanked"] != false || f1["yanked"] != `broken "build" <oops>` || f2["yanked"] != true {
		t.Errorf("yanked = %v, %v, %v", f0["yanked"], f1["yanked"], f2["yanked"])
	}
	// Without metadata the keys are absent, not false: pip 23.0 crashes on
	// a boolean there.
	_, hasCore := f1["core-metadata"]
	_, hasDist := f1["dist-info-metadata"]
	if hasCore || hasDist || f0["upload-time"] != "2024-05-06T05:08:09.123456Z" || f1["upload-time"] != "2024-05-06T07:08:09Z" {
		t.Errorf("core-metadata %v, dist-info-metadata %v, upload-time %v %v", f1["core-metadata"], f1["dist-info-metadata"], f0["upload-time"], f1["upload-time"])
	}
	if _, ok := f2["upload-time"]; ok || f0["size"] != float64(1234) {
		t.Errorf("upload-time present on a file without one, or size %v", f0["size"])
	}
}

func TestNegotiate(t *testing.T) {
	tests := []struct {
		name, accept string
		format       Format
		contentType  string
		ok           bool
	}{
		{"pip", "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html; q=0.1, text/html; q=0.01", FormatJSON, ContentTypeJSON, true},
		{"uv", "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html;q=0.2, text/html;q=0.01", FormatJSON, ContentTypeJSON, true},
		{"uv JSON only (flat index probe)", "application/vnd.pypi.simple.v1+json", FormatJSON, ContentTypeJSON, true},
		{"missing header", "", FormatHTML, ContentTypeTextHTML, true},
		{"curl", "*/*", FormatHTML, ContentTypeTextHTML, true},
		{"browser", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", FormatHTML, ContentTypeTextHTML, true},
		{"latest json", "application/vnd.pypi.simple.latest+json", FormatJSON, ContentTypeJSON, true},
		{"latest html", "application/vnd.pypi.simple.latest+html", FormatHTML, ContentTypeHTML, true},
		{"v1 html", "application/vnd.pypi.simple.v1+html", FormatHTML, ContentTypeHTML, true},
		{"html preferred by q", "application/vnd.pypi.simple.v1+json;q=0.5, text/html", FormatHTML, ContentTypeTextHTML, true},
		{"tie goes to first listed", "text/html, application/vnd.pypi.simple.v1+json", FormatHTML, ContentTypeTextHTML, true},
		{"tie goes to first listed, json", "application/vnd.pypi.simple.v1+json, text/html", FormatJSON, ContentTypeJSON, true},
		{"application wildcard", "application/*", FormatHTML, ContentTypeHTML, true},
		{"specific q=0 excludes under wildcard", "*/*, text/html;q=0, application/vnd.pypi.simple.v1+html;q=0", FormatJSON, ContentTypeJSON, true},
		{"case and spaces", "  Application/VND.PyPI.Simple.V1+JSON ; Q=1.0 ", FormatJSON, ContentTypeJSON, true},
		{"v2 only", "application/vnd.pypi.simple.v2+json", FormatHTML, "", false},
		{"json only", "application/json", FormatHTML, "", false},
		{"everything q=0", "*/*;q=0", FormatHTML, "", false},
		{"bad q ignored", "application/vnd.pypi.simple.v1+json;q=2, text/html;q=0.5", FormatHTML, ContentTypeTextHTML, true},
		{"garbage", ",,;;==", FormatHTML, ContentTypeTextHTML, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, ct, ok := Negotiate(tt.accept)
			if ok != tt.ok || ok && (f != tt.format || ct != tt.contentType) {
				t.Errorf("Negotiate(%q) = %v, %q, %v; want %v, %q, %v", tt.accept, f, ct, ok, tt.format, tt.contentType, tt.ok)
			}
		})
	}
}

func FuzzNegotiate(f *testing.F) {
	f.Add("application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html; q=0.1, text/html; q=0.01")
	f.Add("*/*;q=0.5, text/*;q=0")
	f.Fuzz(func(t *testing.T, accept string) {
		format, ct, ok := Negotiate(accept)
		if !ok {
			return
		}
		switch {
		case format == FormatJSON && ct == ContentTypeJSON:
		case format == FormatHTML && (ct == ContentTypeHTML || ct == ContentTypeTextHTML):
		default:
			t.Fatalf("Negotiate(%q) = %v, %q", accept, format, ct)
		}
	})
}
