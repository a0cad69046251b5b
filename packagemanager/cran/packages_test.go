package cran

import (
	"bytes"
	"compress/gzip"
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata golden files")

func sampleEntries() []Entry {
	return []Entry{
		{Package: "zeta", Version: "1.0", Imports: "alpha (>= 1.10),\n    utils", License: "MIT + file LICENSE", MD5sum: "0123456789abcdef0123456789abcdef", NeedsCompilation: "no"},
		{Package: "alpha", Version: "1.10", Depends: "R (>= 3.5.0)", LinkingTo: "Rcpp", Suggests: "testthat", Enhances: "zeta", License: "GPL-2", LicenseIsFOSS: "yes", LicenseRestrictsUse: "no", OSType: "unix", Archs: "x64", NeedsCompilation: "yes", Priority: "optional"},
		{Package: "alpha", Version: "1.9", License: "GPL-2"},
		{Package: "Zeta", Version: "0.1-1", License: "MIT"},
	}
}

func TestWritePACKAGESGolden(t *testing.T) {
	var buf bytes.Buffer
	if err := WritePACKAGES(&buf, sampleEntries()); err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join("testdata", "PACKAGES.golden")
	if *update {
		if err := os.WriteFile(golden, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if want := mustRead(t, golden); buf.String() != want {
		t.Errorf("PACKAGES differs from %s (run with -update to accept):\n%s", golden, buf.String())
	}
}

func TestSortAndLatest(t *testing.T) {
	got := Latest(sampleEntries())
	var names []string
	for _, e := range got {
		names = append(names, e.Package+"_"+e.Version)
	}
	// Byte order puts upper case first, as R's sort does in the C locale;
	// 1.10 is newer than 1.9.
	if want := []string{"Zeta_0.1-1", "alpha_1.10", "zeta_1.0"}; !reflect.DeepEqual(names, want) {
		t.Errorf("Latest = %v, want %v", names, want)
	}
}

func TestReadPACKAGES(t *testing.T) {
	var buf bytes.Buffer
	if err := WritePACKAGESGz(&buf, sampleEntries()); err != nil {
		t.Fatal(err)
	}
	zr, err := gzip.NewReader(&buf)
	if err != nil {
		t.Fatal(err)
	}
	got, err := ReadPACKAGES(zr)
	if err != nil {
		t.Fatal(err)
	}
	want := sampleEntries()
	for i := range want {
		want[i] = NormalizeEntry(want[i])
	}
	SortEntries(want)
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got  %+v\nwant %+v", got, want)
	}
	if want[3].Imports != "alpha (>= 1.10), utils" {
		t.Errorf("continuation not collapsed: %q", want[3].Imports)
	}

	// Upstream indexes carry fields we do not keep, and wrapped lines.
	upstream := "Package: A3\nVersion: 1.0.0\nDepends: R (>= 2.15.0), xtable,\n        pbapply\nFile: x\n\nPackage: abc\nVersion: 2.2.1\n"
	got, err = ReadPACKAGES(strings.NewReader(upstream))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Depends != "R (>= 2.15.0), xtable, pbapply" {
		t.Errorf("got %+v", got)
	}
}

func TestPACKAGESRefusesIncompleteEntries(t *testing.T) {
	for _, w := range []func(io.Writer, []Entry) error{WritePACKAGES, WritePACKAGESGz, WritePACKAGESRDS} {
		if err := w(io.Discard, []Entry{{Package: "ab", Version: " "}}); err == nil {
			t.Error("entry without Version accepted")
		}
	}
	_, err := ReadPACKAGES(strings.NewReader("Package: ab\n\nVersion: 1.0\n"))
	var inv *InvalidError
	if !errors.As(err, &inv) || !strings.Contains(err.Error(), "record 1 lacks Package or Version") {
		t.Errorf("err = %v", err)
	}
}

// The golden file was checked with R: readRDS() of it gzip-compressed gives
// the matrix read.dcf() gives for PACKAGES.golden (TestWithR checks R's
// view of freshly written files on machines with R).
func TestWritePACKAGESRDSGolden(t *testing.T) {
	var buf bytes.Buffer
	if err := WritePACKAGESRDS(&buf, sampleEntries()); err != nil {
		t.Fatal(err)
	}
	zr, err := gzip.NewReader(&buf)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join("testdata", "PACKAGES.rds.golden")
	if *update {
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if want := mustRead(t, golden); string(got) != want {
		t.Errorf("PACKAGES.rds differs from %s (run with -update to accept)", golden)
	}
}
