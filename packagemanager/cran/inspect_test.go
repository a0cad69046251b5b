package cran

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

// member is one entry of a tarball made in a test.
type member struct {
	name     string
	typ      byte // tar.TypeReg when zero
	body     string
	linkname string
}

const goodDESCRIPTION = "Package: atriumhello\nVersion: 1.1.0\nLicense: MIT\nImports: utils\nNeedsCompilation: no\n"

func goodMembers() []member {
	return []member{
		{name: "atriumhello/", typ: tar.TypeDir},
		{name: "atriumhello/DESCRIPTION", body: goodDESCRIPTION},
		{name: "atriumhello/NAMESPACE", body: "export(hello)\n"},
		{name: "atriumhello/R/", typ: tar.TypeDir},
		{name: "atriumhello/R/hello.R", body: "hello <- function() 1\n"},
	}
}

func makeTarGz(t testing.TB, members []member) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	for _, m := range members {
		typ := m.typ
		if typ == 0 {
			typ = tar.TypeReg
		}
		hdr := &tar.Header{Name: m.name, Typeflag: typ, Mode: 0o644, Linkname: m.linkname, Format: tar.FormatPAX}
		if typ == tar.TypeReg {
			hdr.Size = int64(len(m.body))
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(tw, m.body); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func with(extra ...member) []member { return append(goodMembers(), extra...) }

func TestInspectSourcePackage(t *testing.T) {
	data := makeTarGz(t, with(
		member{name: "atriumhello/inst/", typ: tar.TypeDir},
		member{name: "atriumhello/inst/link", typ: tar.TypeSymlink, linkname: "../R/hello.R"},
		member{name: "atriumhello/inst/hard", typ: tar.TypeLink, linkname: "atriumhello/NAMESPACE"},
	))
	p, err := InspectSourcePackage("atriumhello_1.1.0.tar.gz", bytes.NewReader(data), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	md := md5.Sum(data)
	sh := sha256.Sum256(data)
	if p.Filename != "atriumhello_1.1.0.tar.gz" || p.Size != int64(len(data)) ||
		p.MD5 != hex.EncodeToString(md[:]) || p.SHA256 != hex.EncodeToString(sh[:]) {
		t.Errorf("got %+v", p)
	}
	if p.Description.Package != "atriumhello" || p.Description.Version != "1.1.0" {
		t.Errorf("description %+v", p.Description)
	}
	want := Entry{Package: "atriumhello", Version: "1.1.0", Imports: "utils", License: "MIT", MD5sum: p.MD5, NeedsCompilation: "no"}
	if got := p.Entry(); got != want {
		t.Errorf("Entry() = %+v, want %+v", got, want)
	}
}

func TestInspectSourcePackageRefuses(t *testing.T) {
	good := makeTarGz(t, goodMembers())
	tests := []struct {
		name     string
		filename string // default atriumhello_1.1.0.tar.gz
		data     []byte
		limits   Limits
		wantErr  string
	}{
		{name: "not gzip", data: []byte("PK\x03\x04 this is a zip"), wantErr: "not a gzip-compressed file"},
		{name: "empty upload", data: nil, wantErr: "not a gzip-compressed file"},
		{name: "gzip but not tar", data: gz(t, strings.Repeat("no tar header here ", 64)), wantErr: "not a valid tar.gz archive"},
		{name: "truncated", data: good[:len(good)/2], wantErr: "archive is truncated"},
		{name: "corrupt gzip trailer", data: flipLast(good), wantErr: "corrupt gzip data"},
		{name: "path traversal", data: makeTarGz(t, with(member{name: "atriumhello/../../etc/cron.d/x", body: "x"})), wantErr: `contains ".."`},
		{name: "dotdot at top", data: makeTarGz(t, with(member{name: "../evil", body: "x"})), wantErr: `contains ".."`},
		{name: "absolute path", data: makeTarGz(t, with(member{name: "/etc/passwd", body: "x"})), wantErr: "absolute path"},
		{name: "symlink outside", data: makeTarGz(t, with(member{name: "atriumhello/R/evil", typ: tar.TypeSymlink, linkname: "../../../home"})), wantErr: `symlink "atriumhello/R/evil" points to "../../../home", outside the package`},
		{name: "absolute symlink", data: makeTarGz(t, with(member{name: "atriumhello/evil", typ: tar.TypeSymlink, linkname: "/etc/passwd"})), wantErr: "outside the package"},
		{name: "hard link outside", data: makeTarGz(t, with(member{name: "atriumhello/evil", typ: tar.TypeLink, linkname: "etc/passwd"})), wantErr: "hard link"},
		{name: "device", data: makeTarGz(t, with(member{name: "atriumhello/dev", typ: tar.TypeChar})), wantErr: "device or FIFO"},
		{name: "fifo", data: makeTarGz(t, with(member{name: "atriumhello/fifo", typ: tar.TypeFifo})), wantErr: "device or FIFO"},
		{name: "other top-level dir", data: makeTarGz(t, with(member{name: "other/file", body: "x"})), wantErr: `outside the top-level directory "atriumhello"`},
		{name: "missing DESCRIPTION", data: makeTarGz(t, goodMembers()[2:]), wantErr: "archive has no atriumhello/DESCRIPTION"},
		{name: "DESCRIPTION twice", data: makeTarGz(t, with(member{name: "./atriumhello/DESCRIPTION", body: goodDESCRIPTION})), wantErr: "twice"},
		{name: "DESCRIPTION not a file", data: makeTarGz(t, []member{{name: "atriumhello/DESCRIPTION", typ: tar.TypeSymlink, linkname: "NAMESPACE"}}), wantErr: "must be a regular file"},
		{name: "bad DESCRIPTION", data: makeTarGz(t, []member{{name: "atriumhello/DESCRIPTION", body: "Package: atriumhello\n"}}), wantErr: "atriumhello/DESCRIPTION: DESCRIPTION has no Version field"},
		{name: "package name mismatch", filename: "atriumhello_1.1.0.tar.gz", data: makeTarGz(t, []member{{name: "atriumhello/DESCRIPTION", body: "Package: otherpkg\nVersion: 1.1.0\n"}}), wantErr: "DESCRIPTION says Package: otherpkg but the file name says atriumhello"},
		{name: "version mismatch", filename: "atriumhello_1.2.0.tar.gz", data: good, wantErr: "DESCRIPTION says Version: 1.1.0 but the file name says 1.2.0"},
		{name: "file name not a source package", filename: "atriumhello.zip", data: good, wantErr: "not of the form {package}_{version}.tar.gz"},
		{name: "file name with directory", filename: "x/atriumhello_1.1.0.tar.gz", data: good, wantErr: "not of the form"},
		{name: "file name bad version", filename: "atriumhello_latest.tar.gz", data: good, wantErr: `invalid version "latest"`},
		{name: "file name bad package", filename: "a_1.0.tar.gz", data: good, wantErr: `invalid package name "a"`},
		{name: "too large", data: good, limits: Limits{MaxSize: 100}, wantErr: "larger than the limit of 100 bytes"},
		{name: "too many files", data: good, limits: Limits{MaxFiles: 3}, wantErr: "more than 3 files"},
		{name: "unpacks too large", data: makeTarGz(t, with(member{name: "atriumhello/big", body: strings.Repeat("0", 1<<16)})), limits: Limits{MaxUnpackedSize: 1 << 15}, wantErr: "unpacks to more than"},
		{name: "DESCRIPTION too large", data: good, limits: Limits{MaxDescriptionSize: 10}, wantErr: "DESCRIPTION is larger than 10 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fn := tt.filename
			if fn == "" {
				fn = "atriumhello_1.1.0.tar.gz"
			}
			_, err := InspectSourcePackage(fn, bytes.NewReader(tt.data), tt.limits)
			var inv *InvalidError
			if !errors.As(err, &inv) || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want *InvalidError containing %q", err, tt.wantErr)
			}
		})
	}
}

// A failing upload stream is an I/O error, not the uploader's fault.
func TestInspectSourcePackageReadError(t *testing.T) {
	good := makeTarGz(t, goodMembers())
	boom := errors.New("connection reset")
	r := io.MultiReader(bytes.NewReader(good[:40]), iotest.ErrReader(boom))
	_, err := InspectSourcePackage("atriumhello_1.1.0.tar.gz", r, Limits{})
	var inv *InvalidError
	if !errors.Is(err, boom) || errors.As(err, &inv) {
		t.Fatalf("err = %v, want wrapped %v", err, boom)
	}
}

func gz(t *testing.T, s string) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	io.WriteString(zw, s)
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// flipLast corrupts the gzip CRC, which sits in the last 8 bytes.
func flipLast(b []byte) []byte {
	c := bytes.Clone(b)
	c[len(c)-6] ^= 0xff
	return c
}
