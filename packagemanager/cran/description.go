package cran

import (
	"bytes"
	"fmt"
	"regexp"
	"strings"
	"unicode/utf8"
)

var (
	// packageNameRE is R's rule for package names (Writing R Extensions
	// §1.1.1): letters, digits and dots, starting with a letter, at least
	// two characters, not ending in a dot.
	packageNameRE = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9.]*[A-Za-z0-9]$`)
	// versionRE is tools:::.standard_regexps()$valid_package_version:
	// at least two non-negative integers separated by '.' or '-'.
	versionRE = regexp.MustCompile(`^[0-9]+([.-][0-9]+)+$`)
	// depNameRE is looser than packageNameRE because "R" itself is a valid
	// dependency.
	depNameRE = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9.]*$`)
	// depVersionRE also admits single numbers ("R (>= 4)"), which R accepts
	// in dependency constraints.
	depVersionRE = regexp.MustCompile(`^[0-9]+([.-][0-9]+)*$`)
)

// ValidPackageName reports whether name is a valid R package name.
func ValidPackageName(name string) bool { return packageNameRE.MatchString(name) }

// ValidVersion reports whether v is a valid R package version.
func ValidVersion(v string) bool { return versionRE.MatchString(v) }

// Dependency is one item of Depends, Imports, LinkingTo, Suggests or
// Enhances, such as "R (>= 4.1.0)" or "utils".
type Dependency struct {
	Name string
	// Op and Version are empty when there is no constraint; Op is one of
	// <, <=, >, >=, ==, !=.
	Op      string
	Version string
}

func (d Dependency) String() string {
	if d.Op == "" {
		return d.Name
	}
	return d.Name + " (" + d.Op + " " + d.Version + ")"
}

// Description is a parsed DESCRIPTION file.
type Description struct {
	Package string
	Version string

	Depends   []Dependency
	Imports   []Dependency
	LinkingTo []Dependency
	Suggests  []Dependency
	Enhances  []Dependency

	License          string
	NeedsCompilation string // "yes", "no" or "" when absent
	Priority         string
	OSType           string // OS_type: "unix", "windows" or ""
	Title            string

	// Fields holds every field in file order, converted to UTF-8, values
	// as ParseDCF returns them. The index is written from these so that
	// dependency fields keep the author's text (whitespace aside), as
	// CRAN's PACKAGES does.
	Fields Record
}

// ParseDESCRIPTION parses and validates a DESCRIPTION file. It requires a
// single record with a valid Package and Version, well-formed dependency
// fields, and either UTF-8 text or a declared Latin-1 Encoding (converted
// to UTF-8). It refuses binary packages (a Built field), since a server
// that offers them as source would make install.packages() fail later
// with a much less clear message.
func ParseDESCRIPTION(data []byte) (Description, error) {
	recs, err := ParseDCF(bytes.NewReader(data))
	if err != nil {
		return Description{}, err
	}
	switch {
	case len(recs) == 0:
		return Description{}, invalidf("DESCRIPTION is empty")
	case len(recs) > 1:
		return Description{}, invalidf("DESCRIPTION has %d paragraphs separated by blank lines; it must have one", len(recs))
	}
	rec := recs[0]
	if rec, err = toUTF8(rec); err != nil {
		return Description{}, err
	}
	d := Description{
		Package:          rec.Value("Package"),
		Version:          rec.Value("Version"),
		License:          normalizeSpace(rec.Value("License")),
		NeedsCompilation: rec.Value("NeedsCompilation"),
		Priority:         rec.Value("Priority"),
		OSType:           rec.Value("OS_type"),
		Title:            normalizeSpace(rec.Value("Title")),
		Fields:           rec,
	}
	if _, ok := rec.Get("Package"); !ok {
		return Description{}, invalidf("DESCRIPTION has no Package field")
	}
	if !ValidPackageName(d.Package) {
		return Description{}, invalidf("invalid package name %q: it must start with a letter, contain only ASCII letters, digits and '.', have at least two characters and not end in '.'", clip(d.Package))
	}
	if _, ok := rec.Get("Version"); !ok {
		return Description{}, invalidf("DESCRIPTION has no Version field")
	}
	if !ValidVersion(d.Version) {
		return Description{}, invalidf("invalid version %q: it must be at least two non-negative integers separated by '.' or '-', such as 1.0.2 or 0.9-1", clip(d.Version))
	}
	if _, ok := rec.Get("Built"); ok {
		return Description{}, invalidf("DESCRIPTION has a Built field, so this is a binary package; upload the source package made by R CMD build")
	}
	switch d.NeedsCompilation {
	case "", "yes", "no":
	default:
		return Description{}, invalidf("NeedsCompilation must be \"yes\" or \"no\", not %q", clip(d.NeedsCompilation))
	}
	for _, f := range []struct {
		name string
		dst  *[]Dependency
	}{
		{"Depends", &d.Depends},
		{"Imports", &d.Imports},
		{"LinkingTo", &d.LinkingTo},
		{"Suggests", &d.Suggests},
		{"Enhances", &d.Enhances},
	} {
		deps, err := ParseDependencies(rec.Value(f.name))
		if err != nil {
			return Description{}, invalidf("%s: %v", f.name, err)
		}
		*f.dst = deps
	}
	return d, nil
}

// toUTF8 converts the record to UTF-8 according to its Encoding field. R
// packages may declare latin1; other legacy encodings are rare enough that
// refusing them clearly beats guessing.
func toUTF8(rec Record) (Record, error) {
	enc := strings.ToLower(rec.Value("Encoding"))
	switch enc {
	case "", "utf-8", "utf8":
		for _, f := range rec {
			if !utf8.ValidString(f.Name) || !utf8.ValidString(f.Value) {
				return nil, invalidf("DESCRIPTION field %q is not valid UTF-8; save the file as UTF-8 and add \"Encoding: UTF-8\"", clip(f.Name))
			}
		}
		return rec, nil
	case "latin1", "latin-1", "iso-8859-1", "iso8859-1":
		out := make(Record, len(rec))
		for i, f := range rec {
			out[i] = Field{Name: f.Name, Value: latin1ToUTF8(f.Value)}
		}
		return out, nil
	default:
		return nil, invalidf("DESCRIPTION declares Encoding %q; only UTF-8 and latin1 are supported", clip(rec.Value("Encoding")))
	}
}

func latin1ToUTF8(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		b.WriteRune(rune(s[i]))
	}
	return b.String()
}

// ParseDependencies parses a comma-separated dependency field such as
// "R (>= 3.5.0), methods,\n utils (< 2.0)". Empty items (a trailing comma)
// are skipped, as R does.
func ParseDependencies(s string) ([]Dependency, error) {
	var deps []Dependency
	for item := range strings.SplitSeq(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		name, rest, hasCons := strings.Cut(item, "(")
		d := Dependency{Name: strings.TrimSpace(name)}
		if !depNameRE.MatchString(d.Name) {
			return nil, fmt.Errorf("invalid package name %q in %q", clip(d.Name), clip(item))
		}
		if hasCons {
			cons, tail, closed := strings.Cut(rest, ")")
			if !closed || strings.TrimSpace(tail) != "" {
				return nil, fmt.Errorf("malformed version constraint in %q; write it like \"pkg (>= 1.0)\"", clip(item))
			}
			cons = strings.TrimSpace(cons)
			for _, op := range []string{"<=", ">=", "==", "!=", "<", ">"} {
				if v, ok := strings.CutPrefix(cons, op); ok {
					d.Op, d.Version = op, strings.TrimSpace(v)
					break
				}
			}
			if d.Op == "" {
				return nil, fmt.Errorf("version constraint in %q needs one of <, <=, >, >=, ==, !=", clip(item))
			}
			if !depVersionRE.MatchString(d.Version) {
				return nil, fmt.Errorf("invalid version %q in %q", clip(d.Version), clip(item))
			}
		}
		deps = append(deps, d)
	}
	return deps, nil
}

// normalizeSpace collapses runs of ASCII white space (including the
// newlines of continuation lines) into single spaces and trims the ends:
// how write_PACKAGES's strwrap leaves index values, and what makes them fit
// on one DCF line.
func normalizeSpace(s string) string {
	return strings.Join(strings.FieldsFunc(s, isASCIISpace), " ")
}

func isASCIISpace(r rune) bool {
	switch r {
	case ' ', '\t', '\n', '\r', '\v', '\f':
		return true
	}
	return false
}
