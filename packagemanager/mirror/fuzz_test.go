package mirror_test

import (
	"net/url"
	"strings"
	"testing"

	"github.com/atrium-suite/atrium/packagemanager/mirror"
)

const fuzzPageURL = "https://index.invalid/simple/demo/"

// checkProject asserts the parsers' promises about every File they return.
func checkProject(t *testing.T, p *mirror.Project) {
	t.Helper()
	for _, f := range p.Files {
		if f.Filename == "" || f.Filename == "." || f.Filename == ".." || strings.ContainsAny(f.Filename, "/\\\x00") {
			t.Fatalf("unusable file name %q", f.Filename)
		}
		u, err := url.Parse(f.URL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Fragment != "" {
			t.Fatalf("URL %q is not absolute http(s) without fragment", f.URL)
		}
		for _, h := range []string{f.SHA256, f.CoreMetadataSHA256} {
			if h != "" && (len(h) != 64 || strings.Trim(h, "0123456789abcdef") != "") {
				t.Fatalf("hash %q is not 64 lower-case hex", h)
			}
		}
		if f.CoreMetadataSHA256 != "" && !f.CoreMetadata {
			t.Fatal("metadata hash without CoreMetadata")
		}
		if f.YankedReason != "" && !f.Yanked {
			t.Fatal("yank reason without Yanked")
		}
		if f.Size < 0 {
			t.Fatalf("negative size %d", f.Size)
		}
	}
}

func FuzzParseHTML(f *testing.F) {
	f.Add(fill(htmlPage))
	f.Add(`<base href="/x/"><a href="f-1.tar.gz#sha256=` + wheelSHA + `&egg=f" data-yanked>f-1.tar.gz</a>`)
	f.Add(`<a href="javascript:alert(1)">x</a><a href="//other.invalid/a/b.whl"></a><a/>`)
	f.Add(`<meta name="pypi:repository-version" content="2.0">`)
	f.Add(`<a href="x.whl" data-core-metadata="sha256=zz">x.whl</a>`)
	f.Fuzz(func(t *testing.T, page string) {
		p, err := mirror.ParseHTML(fuzzPageURL, []byte(page))
		if err != nil {
			return
		}
		checkProject(t, p)
	})
}

func FuzzParseJSON(f *testing.F) {
	f.Add(strings.ReplaceAll(fill(jsonPage), "{{BASE}}", "http://h.invalid"))
	f.Add(`{"meta":{"api-version":"1.0"},"name":"x","files":[{"filename":"x.whl","url":"x.whl","hashes":{"sha256":"` + wheelSHA + `"},"yanked":"","core-metadata":false,"size":-1}]}`)
	f.Add(`{"files":[{"filename":"../x","url":"file:///etc/passwd"}]}`)
	f.Add(`{"files":[{"filename":"x","url":"http://h/x","core-metadata":{"sha256":"AB"},"upload-time":"yesterday"}]}`)
	f.Fuzz(func(t *testing.T, page string) {
		p, err := mirror.ParseJSON(fuzzPageURL, []byte(page))
		if err != nil {
			return
		}
		checkProject(t, p)
	})
}
