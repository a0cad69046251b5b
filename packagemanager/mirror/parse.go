package mirror

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"strings"
	"time"

	"golang.org/x/net/html"
)

// supportedMajor is the major version of the simple API this parser
// understands; PEP 629 requires clients to refuse a greater one rather than
// misread it.
const supportedMajor = 1

// parseHTML parses a PEP 503 project page served at pageURL.
//
// Anchors that cannot be a downloadable distribution (no href, a non-http
// URL, no usable file name) are skipped, since an HTML page may carry other
// links; a malformed advertised hash fails the whole page, because silently
// dropping it would turn a verified download into an unverified one.
func parseHTML(pageURL *url.URL, data []byte) (*Project, error) {
	p := &Project{Files: []File{}}
	base := pageURL
	baseSeen := false
	z := html.NewTokenizer(bytes.NewReader(data))

	var cur *anchor
	finish := func() error {
		if cur == nil {
			return nil
		}
		a := cur
		cur = nil
		f, ok, err := a.file(base)
		if err != nil {
			return err
		}
		if ok {
			p.Files = append(p.Files, f)
		}
		return nil
	}
	for {
		tt := z.Next()
		switch tt {
		case html.ErrorToken:
			if err := z.Err(); !errors.Is(err, io.EOF) {
				return nil, fmt.Errorf("parse HTML: %w", err)
			}
			if err := finish(); err != nil {
				return nil, err
			}
			return p, nil
		case html.StartTagToken, html.SelfClosingTagToken:
			name, hasAttr := z.TagName()
			attrs := map[string]*string{}
			for hasAttr {
				var k, v []byte
				k, v, hasAttr = z.TagAttr()
				if _, dup := attrs[string(k)]; !dup { // first wins, as in browsers
					s := string(v)
					attrs[string(k)] = &s
				}
			}
			switch string(name) {
			case "a":
				if err := finish(); err != nil {
					return nil, err
				}
				cur = &anchor{attrs: attrs}
				if tt == html.SelfClosingTagToken {
					if err := finish(); err != nil {
						return nil, err
					}
				}
			case "base":
				// Only the first <base href> counts (HTML spec); pip honours it.
				if h := attrs["href"]; h != nil && !baseSeen {
					baseSeen = true
					if bu, err := url.Parse(strings.TrimSpace(*h)); err == nil {
						base = pageURL.ResolveReference(bu)
					}
				}
			case "meta":
				if n := attrs["name"]; n != nil && *n == "pypi:repository-version" {
					if c := attrs["content"]; c != nil {
						if err := checkAPIVersion(*c); err != nil {
							return nil, err
						}
					}
				}
			}
		case html.TextToken:
			if cur != nil {
				cur.text.Write(z.Text())
			}
		case html.EndTagToken:
			if name, _ := z.TagName(); string(name) == "a" {
				if err := finish(); err != nil {
					return nil, err
				}
			}
		}
	}
}

type anchor struct {
	attrs map[string]*string
	text  strings.Builder
}

func (a *anchor) attr(k string) (string, bool) {
	v := a.attrs[k]
	if v == nil {
		return "", false
	}
	return *v, true
}

// file turns an anchor into a File; ok is false for anchors to skip.
func (a *anchor) file(base *url.URL) (f File, ok bool, err error) {
	href, has := a.attr("href")
	if !has {
		return File{}, false, nil
	}
	u, sha, err := resolveFileURL(base, href)
	if err != nil {
		return File{}, false, nil
	}
	f.URL = u.String()
	f.Filename = strings.TrimSpace(a.text.String())
	if f.Filename == "" {
		// PEP 503 says the text must be the file name; tolerate pages that
		// left it out by taking the URL's last segment instead.
		f.Filename, _ = url.PathUnescape(u.EscapedPath()[strings.LastIndexByte(u.EscapedPath(), '/')+1:])
	}
	if validFilename(f.Filename) != nil {
		return File{}, false, nil
	}
	if sha != "" {
		if f.SHA256, err = parseHex(sha); err != nil {
			return File{}, false, fmt.Errorf("file %q: sha256 fragment: %w", f.Filename, err)
		}
	}
	f.RequiresPython, _ = a.attr("data-requires-python")
	f.YankedReason, f.Yanked = a.attr("data-yanked")
	// PEP 714 renamed data-dist-info-metadata to data-core-metadata; older
	// indexes only send the legacy name.
	md, hasMD := a.attr("data-core-metadata")
	if !hasMD {
		md, hasMD = a.attr("data-dist-info-metadata")
	}
	if hasMD && md != "false" {
		f.CoreMetadata = true
		if algo, val, found := strings.Cut(md, "="); found && strings.EqualFold(strings.TrimSpace(algo), "sha256") {
			if f.CoreMetadataSHA256, err = parseHex(val); err != nil {
				return File{}, false, fmt.Errorf("file %q: core metadata hash: %w", f.Filename, err)
			}
		}
	}
	return f, true, nil
}

// resolveFileURL resolves href against base and splits off a "sha256="
// fragment. The returned URL is absolute http(s) and has no fragment.
func resolveFileURL(base *url.URL, href string) (*url.URL, string, error) {
	ref, err := url.Parse(strings.TrimSpace(href))
	if err != nil {
		return nil, "", err
	}
	u := base.ResolveReference(ref)
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, "", fmt.Errorf("URL %q is not an absolute http(s) URL", redact(u.String()))
	}
	var sha string
	for part := range strings.SplitSeq(u.Fragment, "&") {
		if algo, val, ok := strings.Cut(part, "="); ok && strings.EqualFold(algo, "sha256") {
			sha = val
		}
	}
	u.Fragment, u.RawFragment = "", ""
	return u, sha, nil
}

// parseHex validates a SHA-256 hex digest and lower-cases it.
func parseHex(s string) (string, error) {
	if len(s) != 64 {
		return "", fmt.Errorf("sha256 %q: want 64 hex digits", s)
	}
	b := []byte(s)
	for i, c := range b {
		switch {
		case '0' <= c && c <= '9', 'a' <= c && c <= 'f':
		case 'A' <= c && c <= 'F':
			b[i] = c + ('a' - 'A')
		default:
			return "", fmt.Errorf("sha256 %q: not hex", s)
		}
	}
	return string(b), nil
}

// validFilename rejects names the server could not safely use as the last
// segment of a path or a download name.
func validFilename(name string) error {
	if name == "" || name == "." || name == ".." || len(name) > 255 {
		return fmt.Errorf("file name %q is not usable", name)
	}
	for _, r := range name {
		if r == '/' || r == '\\' || r < 0x20 || r == 0x7f || r == 0xfffd {
			return fmt.Errorf("file name %q is not usable", name)
		}
	}
	return nil
}

// checkAPIVersion refuses a simple API whose major version is newer than
// the one understood here; an unparseable version is tolerated.
func checkAPIVersion(v string) error {
	major, _, _ := strings.Cut(strings.TrimSpace(v), ".")
	n, err := strconv.Atoi(major)
	if err != nil {
		return nil
	}
	if n > supportedMajor {
		return fmt.Errorf("simple API version %q is not supported (major %d)", v, supportedMajor)
	}
	return nil
}

type jsonPage struct {
	Meta struct {
		APIVersion string `json:"api-version"`
	} `json:"meta"`
	Name  string     `json:"name"`
	Files []jsonFile `json:"files"`
}

type jsonFile struct {
	Filename         string            `json:"filename"`
	URL              string            `json:"url"`
	Hashes           map[string]string `json:"hashes"`
	RequiresPython   *string           `json:"requires-python"`
	CoreMetadata     json.RawMessage   `json:"core-metadata"`
	DistInfoMetadata json.RawMessage   `json:"dist-info-metadata"`
	Yanked           json.RawMessage   `json:"yanked"`
	Size             *int64            `json:"size"`
	UploadTime       *string           `json:"upload-time"`
}

// parseJSON parses a PEP 691 project page served at pageURL. Unlike HTML,
// the JSON form lists only files, so any entry that is not a usable file
// is an error in the upstream.
func parseJSON(pageURL *url.URL, data []byte) (*Project, error) {
	var page jsonPage
	if err := json.Unmarshal(data, &page); err != nil {
		return nil, fmt.Errorf("parse JSON: %w", err)
	}
	if err := checkAPIVersion(page.Meta.APIVersion); err != nil {
		return nil, err
	}
	p := &Project{Name: page.Name, Files: make([]File, 0, len(page.Files))}
	for i, jf := range page.Files {
		f, err := jf.file(pageURL)
		if err != nil {
			return nil, fmt.Errorf("files[%d]: %w", i, err)
		}
		p.Files = append(p.Files, f)
	}
	return p, nil
}

func (jf *jsonFile) file(pageURL *url.URL) (File, error) {
	f := File{Filename: jf.Filename}
	if err := validFilename(f.Filename); err != nil {
		return File{}, err
	}
	u, fragSHA, err := resolveFileURL(pageURL, jf.URL)
	if err != nil {
		return File{}, fmt.Errorf("file %q: %w", f.Filename, err)
	}
	f.URL = u.String()
	sha := fragSHA
	if v, ok := jf.Hashes["sha256"]; ok { // PEP 691 keys are hashlib's lower-case names
		sha = v
	}
	if sha != "" {
		if f.SHA256, err = parseHex(sha); err != nil {
			return File{}, fmt.Errorf("file %q: %w", f.Filename, err)
		}
	}
	if jf.RequiresPython != nil {
		f.RequiresPython = *jf.RequiresPython
	}
	// core-metadata and the legacy dist-info-metadata are each false, true
	// or a hashes object.
	md := jf.CoreMetadata
	if isNull(md) {
		md = jf.DistInfoMetadata
	}
	if !isNull(md) {
		var b bool
		var hashes map[string]string
		switch {
		case json.Unmarshal(md, &b) == nil:
			f.CoreMetadata = b
		case json.Unmarshal(md, &hashes) == nil:
			f.CoreMetadata = true
			if v, ok := hashes["sha256"]; ok {
				if f.CoreMetadataSHA256, err = parseHex(v); err != nil {
					return File{}, fmt.Errorf("file %q: core-metadata: %w", f.Filename, err)
				}
			}
		default:
			return File{}, fmt.Errorf("file %q: core-metadata is neither a boolean nor a hashes object", f.Filename)
		}
	}
	if !isNull(jf.Yanked) {
		var b bool
		var reason string
		switch {
		case json.Unmarshal(jf.Yanked, &b) == nil:
			f.Yanked = b
		case json.Unmarshal(jf.Yanked, &reason) == nil:
			f.Yanked, f.YankedReason = true, reason
		default:
			return File{}, fmt.Errorf("file %q: yanked is neither a boolean nor a string", f.Filename)
		}
	}
	if jf.Size != nil {
		if *jf.Size < 0 {
			return File{}, fmt.Errorf("file %q: negative size %d", f.Filename, *jf.Size)
		}
		f.Size = *jf.Size
	}
	if jf.UploadTime != nil {
		// Informational only (resolvers use it for exclude-newer), so an
		// upstream's odd format is ignored rather than failing the page.
		if t, err := time.Parse(time.RFC3339Nano, *jf.UploadTime); err == nil {
			f.UploadTime = t.UTC()
		}
	}
	return f, nil
}

func isNull(m json.RawMessage) bool {
	s := bytes.TrimSpace(m)
	return len(s) == 0 || string(s) == "null"
}

// parseIndexURL validates an index URL and normalizes it to end in "/", so
// project names can be appended.
func parseIndexURL(raw string) (string, error) {
	raw = strings.TrimSpace(raw)
	u, err := url.Parse(raw)
	if err != nil {
		return "", fmt.Errorf("index URL %q: %w", redact(raw), err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("index URL %q: not an absolute http(s) URL", redact(raw))
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return "", fmt.Errorf("index URL %q: must not have a query or fragment", redact(raw))
	}
	if !strings.HasSuffix(u.Path, "/") {
		u.Path += "/"
		if u.RawPath != "" {
			u.RawPath += "/"
		}
	}
	return u.String(), nil
}
