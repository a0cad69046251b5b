package cran

import (
	"bytes"
	"cmp"
	"compress/gzip"
	"fmt"
	"io"
	"slices"
)

// Entry is one record of a PACKAGES index: the fields CRAN publishes, in
// the order tools::write_PACKAGES writes them. Empty fields are omitted from
// the file. Values are single-line; WritePACKAGES collapses white space.
type Entry struct {
	Package             string
	Version             string
	Priority            string
	Depends             string
	Imports             string
	LinkingTo           string
	Suggests            string
	Enhances            string
	License             string
	LicenseIsFOSS       string // License_is_FOSS
	LicenseRestrictsUse string // License_restricts_use
	OSType              string // OS_type
	Archs               string
	MD5sum              string
	NeedsCompilation    string
}

// entryFields lists the DCF names with accessors, in write_PACKAGES order.
var entryFields = []struct {
	name string
	get  func(*Entry) *string
}{
	{"Package", func(e *Entry) *string { return &e.Package }},
	{"Version", func(e *Entry) *string { return &e.Version }},
	{"Priority", func(e *Entry) *string { return &e.Priority }},
	{"Depends", func(e *Entry) *string { return &e.Depends }},
	{"Imports", func(e *Entry) *string { return &e.Imports }},
	{"LinkingTo", func(e *Entry) *string { return &e.LinkingTo }},
	{"Suggests", func(e *Entry) *string { return &e.Suggests }},
	{"Enhances", func(e *Entry) *string { return &e.Enhances }},
	{"License", func(e *Entry) *string { return &e.License }},
	{"License_is_FOSS", func(e *Entry) *string { return &e.LicenseIsFOSS }},
	{"License_restricts_use", func(e *Entry) *string { return &e.LicenseRestrictsUse }},
	{"OS_type", func(e *Entry) *string { return &e.OSType }},
	{"Archs", func(e *Entry) *string { return &e.Archs }},
	{"MD5sum", func(e *Entry) *string { return &e.MD5sum }},
	{"NeedsCompilation", func(e *Entry) *string { return &e.NeedsCompilation }},
}

// IndexFields returns the DCF field names of Entry in index order.
func IndexFields() []string {
	names := make([]string, len(entryFields))
	for i, f := range entryFields {
		names[i] = f.name
	}
	return names
}

// NewEntry builds the index entry of a package from its DESCRIPTION and the
// MD5 of its tarball. Field texts are taken from DESCRIPTION as written
// (white space collapsed), as CRAN does. Unlike write_PACKAGES it does not
// rewrite License into R's canonical spelling, which needs R's license
// database; R does not read License when installing.
func NewEntry(d Description, md5sum string) Entry {
	var e Entry
	for _, f := range entryFields {
		if v, ok := d.Fields.Get(f.name); ok {
			*f.get(&e) = v
		}
	}
	e.MD5sum = md5sum
	return NormalizeEntry(e)
}

// NormalizeEntry returns e with each value's white space collapsed, which
// is how the value reads back from an index file.
func NormalizeEntry(e Entry) Entry {
	for _, f := range entryFields {
		p := f.get(&e)
		*p = normalizeSpace(*p)
	}
	return e
}

// SortEntries sorts entries as they appear in the index: by package name
// in byte order (R's sort in the C locale, which CRAN's index is built
// in), then by version, oldest first.
func SortEntries(entries []Entry) {
	slices.SortStableFunc(entries, func(a, b Entry) int {
		return cmp.Or(cmp.Compare(a.Package, b.Package), CompareVersions(a.Version, b.Version))
	})
}

// Latest returns, sorted, the newest version of each package, which is
// what belongs in PACKAGES (write_PACKAGES(latestOnly = TRUE)); older
// versions are served from Archive/.
func Latest(entries []Entry) []Entry {
	out := slices.Clone(entries)
	SortEntries(out)
	var latest []Entry
	for i, e := range out {
		if i+1 < len(out) && out[i+1].Package == e.Package {
			continue
		}
		latest = append(latest, e)
	}
	return latest
}

// prepare normalizes and sorts a copy of entries and checks what R needs
// of every record.
func prepare(entries []Entry) ([]Entry, error) {
	out := make([]Entry, len(entries))
	for i, e := range entries {
		out[i] = NormalizeEntry(e)
		if out[i].Package == "" || out[i].Version == "" {
			return nil, fmt.Errorf("index entry %d (%q %q) lacks Package or Version", i, clip(out[i].Package), clip(out[i].Version))
		}
	}
	SortEntries(out)
	return out, nil
}

// WritePACKAGES writes the PACKAGES index (DCF, one record per entry,
// sorted by SortEntries, empty fields omitted). Pass Latest(entries) to
// index only the newest version of each package. Every entry needs a
// Package and a Version.
func WritePACKAGES(w io.Writer, entries []Entry) error {
	sorted, err := prepare(entries)
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	for i := range sorted {
		var rec Record
		for _, f := range entryFields {
			if v := *f.get(&sorted[i]); v != "" {
				rec = append(rec, Field{Name: f.name, Value: v})
			}
		}
		writeDCFRecord(&buf, rec)
	}
	if _, err := w.Write(buf.Bytes()); err != nil {
		return fmt.Errorf("write PACKAGES: %w", err)
	}
	return nil
}

// WritePACKAGESGz writes PACKAGES.gz, the gzip-compressed PACKAGES that R
// fetches when PACKAGES.rds fails.
func WritePACKAGESGz(w io.Writer, entries []Entry) error {
	zw, err := gzip.NewWriterLevel(w, gzip.BestCompression)
	if err != nil {
		return fmt.Errorf("gzip PACKAGES: %w", err)
	}
	if err := WritePACKAGES(zw, entries); err != nil {
		return err
	}
	if err := zw.Close(); err != nil {
		return fmt.Errorf("gzip PACKAGES: %w", err)
	}
	return nil
}

// ReadPACKAGES parses a PACKAGES index, for example an upstream mirror's.
// Fields other than Entry's are ignored; values are normalized as by
// NormalizeEntry. Records without Package or Version are refused.
func ReadPACKAGES(r io.Reader) ([]Entry, error) {
	recs, err := ParseDCF(r)
	if err != nil {
		return nil, fmt.Errorf("PACKAGES: %w", err)
	}
	entries := make([]Entry, 0, len(recs))
	for i, rec := range recs {
		var e Entry
		for _, f := range entryFields {
			*f.get(&e) = rec.Value(f.name)
		}
		e = NormalizeEntry(e)
		if e.Package == "" || e.Version == "" {
			return nil, invalidf("PACKAGES: record %d lacks Package or Version", i+1)
		}
		entries = append(entries, e)
	}
	return entries, nil
}
