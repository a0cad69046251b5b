package pypi

import (
	"bytes"
	"strings"
)

// Metadata is parsed core metadata (PKG-INFO / METADATA): RFC 822-style
// headers followed by an optional body holding the long description.
type Metadata struct {
	MetadataVersion        string
	Name                   string
	Version                string
	Summary                string
	RequiresPython         string
	License                string
	DescriptionContentType string
	// Description is the message body, or the Description header (with
	// its "|" continuation markers removed) when there is no body.
	Description   string
	RequiresDist  []string
	ProvidesExtra []string
	Classifiers   []string
	ProjectURLs   []string
	Dynamic       []string
	// Fields holds every header in file order under its lower-case name,
	// including the ones copied above, so that nothing a tool wrote is lost.
	Fields map[string][]string
}

// Get returns the first value of a header, matched case-insensitively.
func (m Metadata) Get(key string) string {
	if v := m.Fields[strings.ToLower(key)]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// ParseMetadata parses a core metadata file the way Python's email parser
// (compat32, which pip, twine and PyPI use) reads it: "Key: value" lines,
// lines starting with a space or tab continue the previous value, and the
// first blank line — or the first line that is not a header at all — starts
// the body. Values are trimmed and invalid UTF-8 is replaced, so the result
// is always safe to render. It fails only when there is no header at all or
// the first line is a continuation; callers check required fields.
func ParseMetadata(b []byte) (Metadata, error) {
	m := Metadata{Fields: map[string][]string{}}
	b = bytes.TrimPrefix(b, []byte("\xef\xbb\xbf")) // a BOM some editors add
	var (
		key     string // current header, lower case; "" before the first
		val     strings.Builder
		order   []string
		values  []string
		body    []byte
		inBody  bool
		flushed = func() {
			if key != "" {
				order = append(order, key)
				values = append(values, val.String())
			}
			key = ""
			val.Reset()
		}
	)
	for len(b) > 0 {
		line, rest, _ := bytes.Cut(b, []byte("\n"))
		line = bytes.TrimSuffix(line, []byte("\r"))
		if len(bytes.TrimSpace(line)) == 0 && (len(line) == 0 || key == "") {
			// An empty line ends the headers. (A whitespace-only line is
			// a continuation when a header is open, as in compat32.)
			b = rest
			inBody = true
			break
		}
		if line[0] == ' ' || line[0] == '\t' {
			if key == "" {
				return Metadata{}, invalidf("metadata starts with a continuation line")
			}
			cont := strings.TrimSpace(string(line))
			if key == "description" {
				// Old tools fold a header Description as "        |line".
				cont = strings.TrimPrefix(cont, "|")
			}
			val.WriteByte('\n')
			val.WriteString(cont)
			b = rest
			continue
		}
		k, v, ok := bytes.Cut(line, []byte(":"))
		if !ok || !validHeaderName(k) {
			// Not a header: compat32 treats it as the start of the body.
			inBody = true
			break
		}
		flushed()
		key = strings.ToLower(string(k))
		val.WriteString(strings.TrimSpace(string(v)))
		b = rest
	}
	flushed()
	if inBody {
		body = b
	}
	if len(order) == 0 {
		return Metadata{}, invalidf("metadata has no headers")
	}
	for i, k := range order {
		v := strings.ToValidUTF8(strings.TrimSpace(values[i]), "\uFFFD")
		m.Fields[k] = append(m.Fields[k], v)
		switch k {
		case "metadata-version":
			m.MetadataVersion = firstOf(m.MetadataVersion, v)
		case "name":
			m.Name = firstOf(m.Name, v)
		case "version":
			m.Version = firstOf(m.Version, v)
		case "summary":
			m.Summary = firstOf(m.Summary, v)
		case "requires-python":
			m.RequiresPython = firstOf(m.RequiresPython, v)
		case "license":
			m.License = firstOf(m.License, v)
		case "description-content-type":
			m.DescriptionContentType = firstOf(m.DescriptionContentType, v)
		case "description":
			m.Description = firstOf(m.Description, v)
		case "requires-dist":
			m.RequiresDist = append(m.RequiresDist, v)
		case "provides-extra":
			m.ProvidesExtra = append(m.ProvidesExtra, v)
		case "classifier":
			m.Classifiers = append(m.Classifiers, v)
		case "project-url":
			m.ProjectURLs = append(m.ProjectURLs, v)
		case "dynamic":
			m.Dynamic = append(m.Dynamic, v)
		}
	}
	if d := strings.TrimSpace(string(body)); d != "" {
		m.Description = strings.ToValidUTF8(string(body), "\uFFFD")
	}
	return m, nil
}

// validHeaderName is RFC 5322's field-name: printable ASCII but ':' and
// space.
func validHeaderName(k []byte) bool {
	if len(k) == 0 {
		return false
	}
	for _, c := range k {
		if c < 0x21 || c > 0x7e || c == ':' {
			return false
		}
	}
	return true
}

func firstOf(cur, v string) string {
	if cur != "" {
		return cur
	}
	return v
}
