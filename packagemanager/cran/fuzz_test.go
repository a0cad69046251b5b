package cran

import (
	"archive/tar"
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"
)

func FuzzParseDCF(f *testing.F) {
	f.Add("Package: a1\nVersion: 1.0\n\nPackage: b\n")
	f.Add("Description: x\n  y\n .\n\tz\r\n")
	f.Add("  x\n")
	f.Add("A: 1\nA: 2\n")
	f.Add(mustRead(f, "testdata/PACKAGES.golden"))
	f.Fuzz(func(t *testing.T, in string) {
		recs, err := ParseDCF(strings.NewReader(in))
		if err != nil {
			var inv *InvalidError
			if !errors.As(err, &inv) {
				t.Fatalf("error is not *InvalidError: %v", err)
			}
			return
		}
		for _, rec := range recs {
			if len(rec) == 0 {
				t.Fatal("empty record returned")
			}
			seen := map[string]bool{}
			for _, fl := range rec {
				if checkFieldName(fl.Name) != nil || seen[fl.Name] {
					t.Fatalf("bad or duplicate field name %q", fl.Name)
				}
				seen[fl.Name] = true
				if fl.Value != strings.Trim(fl.Value, " \t\n") {
					t.Fatalf("value %q not trimmed", fl.Value)
				}
			}
		}
	})
}

func FuzzParseDESCRIPTION(f *testing.F) {
	f.Add([]byte(mustRead(f, "testdata/src/greeter/DESCRIPTION")))
	f.Add([]byte("Package: ab\nVersion: 1.0\nEncoding: latin1\nTitle: Caf\xe9\n"))
	f.Add([]byte("Package: ab\nVersion: 1.0\nImports: x (>= 1.0), y,\n  z(<2)\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		d, err := ParseDESCRIPTION(in)
		if err != nil {
			var inv *InvalidError
			if !errors.As(err, &inv) {
				t.Fatalf("error is not *InvalidError: %v", err)
			}
			return
		}
		if !ValidPackageName(d.Package) || !ValidVersion(d.Version) {
			t.Fatalf("accepted %q %q", d.Package, d.Version)
		}
		// Whatever is accepted must index and read back unchanged.
		e := NewEntry(d, "d41d8cd98f00b204e9800998ecf8427e")
		var buf bytes.Buffer
		if err := WritePACKAGES(&buf, []Entry{e}); err != nil {
			t.Fatal(err)
		}
		got, err := ReadPACKAGES(&buf)
		if err != nil || len(got) != 1 || got[0] != e {
			t.Fatalf("round trip: %+v, %v; want %+v", got, err, e)
		}
	})
}

// FuzzPACKAGESRoundTrip builds entries from fuzz input: fields are separated
// by '|' and entries by '#', in entryFields order.
func FuzzPACKAGESRoundTrip(f *testing.F) {
	f.Add("ab|1.0|||R (>= 3.5)#Zeta|2.0-1|||||||MIT\n  + file")
	f.Add("x| 1 \r\n2 |\x00|\v")
	f.Add("b|1.9#b|1.10#a|1#B|1")
	f.Fuzz(func(t *testing.T, in string) {
		var entries []Entry
		for rec := range strings.SplitSeq(in, "#") {
			var e Entry
			vals := strings.Split(rec, "|")
			for i, fl := range entryFields {
				if i < len(vals) {
					*fl.get(&e) = vals[i]
				}
			}
			entries = append(entries, e)
		}
		var buf bytes.Buffer
		if err := WritePACKAGES(&buf, entries); err != nil {
			return // entries without Package or Version
		}
		got, err := ReadPACKAGES(&buf)
		if err != nil {
			t.Fatalf("ReadPACKAGES(WritePACKAGES) failed: %v\n%q", err, buf.String())
		}
		want := make([]Entry, len(entries))
		for i, e := range entries {
			want[i] = NormalizeEntry(e)
		}
		SortEntries(want)
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("round trip:\n got %+v\nwant %+v", got, want)
		}
		if err := WritePACKAGESRDS(&bytes.Buffer{}, entries); err != nil {
			t.Fatal(err)
		}
	})
}

func FuzzInspectSourcePackage(f *testing.F) {
	f.Add(makeTarGz(f, goodMembers()))
	f.Add(makeTarGz(f, with(member{name: "atriumhello/l", typ: tar.TypeSymlink, linkname: "../x"})))
	f.Add([]byte("\x1f\x8b\x08\x00garbage"))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := InspectSourcePackage("atriumhello_1.1.0.tar.gz", bytes.NewReader(data), Limits{MaxUnpackedSize: 1 << 20})
		if err != nil {
			var inv *InvalidError
			if !errors.As(err, &inv) {
				t.Fatalf("error is not *InvalidError: %v", err)
			}
			return
		}
		if p.Description.Package != "atriumhello" || p.Description.Version != "1.1.0" || p.Size != int64(len(data)) {
			t.Fatalf("accepted %+v", p)
		}
	})
}

func FuzzCompareVersions(f *testing.F) {
	f.Add("1.0-1", "1.0.1")
	f.Add("01.10", "1.9")
	f.Fuzz(func(t *testing.T, a, b string) {
		if x, y := CompareVersions(a, b), CompareVersions(b, a); x != -y || x < -1 || x > 1 {
			t.Fatalf("CompareVersions(%q,%q)=%d but reversed %d", a, b, x, y)
		}
	})
}
