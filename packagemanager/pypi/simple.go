package pypi

import (
	"bufio"
	"encoding/json"
	"fmt"
	"html"
	"io"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/atrium-suite/atrium/shared/pyname"
)

// APIVersion is the Simple API version served (PEP 700 added size,
// upload-time and versions in 1.1).
const APIVersion = "1.1"

// Media types of the Simple API (PEP 691).
const (
	ContentTypeJSON     = "application/vnd.pypi.simple.v1+json"
	ContentTypeHTML     = "application/vnd.pypi.simple.v1+html"
	ContentTypeTextHTML = "text/html"
)

// Format is a Simple API serialization.
type Format int

// The formats Negotiate picks from.
const (
	FormatHTML Format = iota // PEP 503 HTML
	FormatJSON               // PEP 691 JSON
)

func (f Format) String() string {
	if f == FormatJSON {
		return "json"
	}
	return "html"
}

// offer is one media type the server can answer with.
type offer struct {
	typ, subtype string
	exactOnly    bool // "latest" aliases: a wildcard must not pick them
	format       Format
	contentType  string // what to answer with when this offer wins
}

// offers in server preference order for ties: HTML first, so that
// "*/*" (browsers, curl, a missing header) gets HTML as PEP 691 advises.
var offers = []offer{
	{"text", "html", false, FormatHTML, ContentTypeTextHTML},
	{"application", "vnd.pypi.simple.v1+html", false, FormatHTML, ContentTypeHTML},
	{"application", "vnd.pypi.simple.latest+html", true, FormatHTML, ContentTypeHTML},
	{"application", "vnd.pypi.simple.v1+json", false, FormatJSON, ContentTypeJSON},
	{"application", "vnd.pypi.simple.latest+json", true, FormatJSON, ContentTypeJSON},
}

// maxAcceptRanges bounds the work one header can cause.
const maxAcceptRanges = 64

type mediaRange struct {
	typ, subtype string
	q            int // thousandths, 0..1000
	pos          int
}

// Negotiate picks the Simple API format for an Accept header with RFC 9110
// rules: each offered type takes the q of the most specific range that
// matches it; the highest q wins, then the more specific range, then the
// range listed first, then HTML. A missing or empty header means "*/*".
// "latest" types are answered with the concrete v1 type. ok is false when
// nothing acceptable is offered; the caller answers 406.
func Negotiate(accept string) (f Format, contentType string, ok bool) {
	ranges := parseAccept(accept)
	if len(ranges) == 0 {
		return FormatHTML, ContentTypeTextHTML, true
	}
	best, bestQ, bestSpec, bestPos := -1, 0, 0, 0
	for i, o := range offers {
		q, spec, pos := -1, -1, 0
		for _, r := range ranges {
			s := r.matches(o)
			// The most specific matching range decides; among equally
			// specific ones the first listed.
			if s > spec {
				q, spec, pos = r.q, s, r.pos
			}
		}
		if q <= 0 {
			continue
		}
		if best < 0 || q > bestQ || q == bestQ && (spec > bestSpec || spec == bestSpec && pos < bestPos) {
			best, bestQ, bestSpec, bestPos = i, q, spec, pos
		}
	}
	if best < 0 {
		return FormatHTML, "", false
	}
	return offers[best].format, offers[best].contentType, true
}

// matches returns how specifically r matches o (2 exact, 1 "type/*",
// 0 "*/*") or -1.
func (r mediaRange) matches(o offer) int {
	switch {
	case r.typ == o.typ && r.subtype == o.subtype:
		return 2
	case o.exactOnly:
		return -1
	case r.typ == "*" && r.subtype == "*":
		return 0
	case r.typ == o.typ && r.subtype == "*":
		return 1
	}
	return -1
}

func parseAccept(accept string) []mediaRange {
	var out []mediaRange
	for i, part := range strings.Split(accept, ",") {
		if i >= maxAcceptRanges {
			break
		}
		mt, params, _ := strings.Cut(part, ";")
		typ, sub, ok := strings.Cut(strings.ToLower(strings.TrimSpace(mt)), "/")
		typ, sub = strings.TrimSpace(typ), strings.TrimSpace(sub)
		if !ok || typ == "" || sub == "" || typ == "*" && sub != "*" {
			continue
		}
		q, valid := 1000, true
		for p := range strings.SplitSeq(params, ";") {
			k, v, _ := strings.Cut(p, "=")
			if strings.EqualFold(strings.TrimSpace(k), "q") {
				q, valid = parseQ(strings.TrimSpace(v))
			}
		}
		if !valid {
			continue
		}
		out = append(out, mediaRange{typ, sub, q, i})
	}
	return out
}

// parseQ reads an RFC 9110 qvalue ("0", "0.5", "1.000") as thousandths.
func parseQ(s string) (int, bool) {
	if s == "" || len(s) > 5 {
		return 0, false
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f < 0 || f > 1 || strings.ContainsAny(s, "eExX+-_") {
		return 0, false
	}
	return int(f*1000 + 0.5), true
}

// File is one distribution file on a project page.
type File struct {
	Filename string
	// URL is where to download it, absolute or relative to the page; the
	// "#sha256=" fragment is added here, not by the caller.
	URL            string
	SHA256         string // hex
	RequiresPython string
	Yanked         bool
	YankedReason   string
	// CoreMetadataSHA256 is the hex digest of the PEP 658 metadata file
	// served at URL+".metadata" — of that file, never of the distribution
	// (uv then finds no compatible version). "" means there is none, and
	// then the server must not serve URL+".metadata" either.
	CoreMetadataSHA256 string
	Size               int64
	UploadTime         time.Time // zero: not sent
}

// Project is one project page.
type Project struct {
	Name     string   // display name; JSON carries the normalized name as PEP 691 requires
	Files    []File   // in the order to list them
	Versions []string // every version, files or not; sorted and deduplicated on output
}

// WriteIndex writes the root page (/simple/) listing names, which link to
// their normalized "{name}/" pages.
func WriteIndex(w io.Writer, f Format, names []string) error {
	bw := bufio.NewWriterSize(w, 64<<10)
	var err error
	if f == FormatJSON {
		type proj struct {
			Name string `json:"name"`
		}
		doc := struct {
			Meta     meta   `json:"meta"`
			Projects []proj `json:"projects"`
		}{Meta: meta{APIVersion}, Projects: make([]proj, len(names))}
		for i, n := range names {
			doc.Projects[i] = proj{n}
		}
		err = newJSONEncoder(bw).Encode(doc)
	} else {
		bw.WriteString(htmlHead + "Simple index</title>\n  </head>\n  <body>\n")
		for _, n := range names {
			href := url.PathEscape(pyname.Normalize(n)) + "/"
			bw.WriteString(`    <a href="` + html.EscapeString(href) + `">` + html.EscapeString(n) + "</a><br>\n")
		}
		bw.WriteString(htmlTail)
	}
	if err != nil {
		return fmt.Errorf("write index: %w", err)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("write index: %w", err)
	}
	return nil
}

type meta struct {
	APIVersion string `json:"api-version"`
}

// The HTML pages are written by hand rather than with html/template: that
// escapes '+' (local versions) as "&#43;" inside href, which HTML parsers
// undo but regex-based mirror tools do not. html.EscapeString escapes just
// what an attribute or text needs.
const htmlHead = `<!DOCTYPE html>
<html>
  <head>
    <meta charset="utf-8">
    <meta name="pypi:repository-version" content="` + APIVersion + `">
    <title>`

const htmlTail = `  </body>
</html>
`

// WriteProject writes a project page (/simple/{name}/).
func WriteProject(w io.Writer, f Format, p Project) error {
	bw := bufio.NewWriterSize(w, 64<<10)
	if f == FormatJSON {
		if err := newJSONEncoder(bw).Encode(projectJSON(p)); err != nil {
			return fmt.Errorf("write project page: %w", err)
		}
	} else {
		name := html.EscapeString(p.Name)
		bw.WriteString(htmlHead + "Links for " + name + "</title>\n  </head>\n  <body>\n    <h1>Links for " + name + "</h1>\n")
		for _, fl := range p.Files {
			href := fl.URL
			if fl.SHA256 != "" {
				href += "#sha256=" + fl.SHA256
			}
			bw.WriteString(`    <a href="` + html.EscapeString(href) + `"`)
			if fl.RequiresPython != "" {
				bw.WriteString(` data-requires-python="` + html.EscapeString(fl.RequiresPython) + `"`)
			}
			if fl.Yanked {
				bw.WriteString(` data-yanked="` + html.EscapeString(fl.YankedReason) + `"`)
			}
			if fl.CoreMetadataSHA256 != "" {
				v := html.EscapeString("sha256=" + fl.CoreMetadataSHA256)
				bw.WriteString(` data-core-metadata="` + v + `" data-dist-info-metadata="` + v + `"`)
			}
			bw.WriteString(">" + html.EscapeString(fl.Filename) + "</a><br>\n")
		}
		bw.WriteString(htmlTail)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("write project page: %w", err)
	}
	return nil
}

type fileJSON struct {
	Filename       string            `json:"filename"`
	URL            string            `json:"url"`
	Hashes         map[string]string `json:"hashes"`
	RequiresPython *string           `json:"requires-python,omitempty"`
	// Absent rather than false without metadata: pip 23.0 (Debian 12's)
	// crashes on a boolean here, and PEP 691 reads a missing key as false.
	CoreMetadata any    `json:"core-metadata,omitempty"`
	DistInfoMeta any    `json:"dist-info-metadata,omitempty"`
	Yanked       any    `json:"yanked"`
	Size         int64  `json:"size"`
	UploadTime   string `json:"upload-time,omitempty"`
}

func projectJSON(p Project) any {
	files := make([]fileJSON, len(p.Files))
	for i, f := range p.Files {
		j := fileJSON{
			Filename: f.Filename,
			URL:      f.URL,
			Hashes:   map[string]string{},
			Yanked:   false,
			Size:     f.Size,
		}
		if f.SHA256 != "" {
			j.Hashes["sha256"] = f.SHA256
		}
		if f.RequiresPython != "" {
			j.RequiresPython = &f.RequiresPython
		}
		if f.CoreMetadataSHA256 != "" {
			h := map[string]string{"sha256": f.CoreMetadataSHA256}
			j.CoreMetadata, j.DistInfoMeta = h, h
		}
		switch {
		case f.Yanked && f.YankedReason != "":
			j.Yanked = f.YankedReason
		case f.Yanked:
			j.Yanked = true
		}
		if !f.UploadTime.IsZero() {
			j.UploadTime = FormatUploadTime(f.UploadTime)
		}
		files[i] = j
	}
	return struct {
		Meta     meta       `json:"meta"`
		Name     string     `json:"name"`
		Files    []fileJSON `json:"files"`
		Versions []string   `json:"versions"`
	}{meta{APIVersion}, pyname.Normalize(p.Name), files, SortVersions(p.Versions)}
}

// FormatUploadTime renders t as PEP 700 wants: UTC, "Z", up to six
// fractional digits.
func FormatUploadTime(t time.Time) string {
	return t.UTC().Truncate(time.Microsecond).Format("2006-01-02T15:04:05.999999Z")
}

// SortVersions returns a sorted, deduplicated copy of versions in PEP 440
// order (see CompareVersions); never nil, so JSON gets [] not null.
func SortVersions(versions []string) []string {
	out := slices.Clone(versions)
	if out == nil {
		out = []string{}
	}
	slices.SortFunc(out, CompareVersions)
	return slices.Compact(out)
}

// newJSONEncoder does not escape <, > and & as \u003c...: the pages are
// served as JSON, never embedded in HTML, and ">=3.8" stays readable.
func newJSONEncoder(w io.Writer) *json.Encoder {
	e := json.NewEncoder(w)
	e.SetEscapeHTML(false)
	return e
}
