package cran

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"fmt"
	"io"
	"unicode/utf8"
)

// R serialization constants (R's src/main/serialize.c).
const (
	sxpSym    = 1
	sxpList   = 2
	sxpChar   = 9
	sxpInt    = 13
	sxpStr    = 16
	sxpVec    = 19
	sxpNilVal = 254

	flagHasAttr = 1 << 9
	flagHasTag  = 1 << 10
	// CHARSXP encoding levels sit in the "gp" bits, shifted by 12.
	levelUTF8  = 1 << 3
	levelASCII = 1 << 6

	naLength = -1 // a CHARSXP of length -1 is NA_character_
)

// WritePACKAGESRDS writes PACKAGES.rds, which R's available.packages()
// fetches before PACKAGES.gz: saveRDS() of a character matrix with one row
// per entry (sorted and normalized as in WritePACKAGES) and one column per
// index field used by at least one entry, in index order, with
// dimnames = list(package names, fields) and NA for missing values, in R's
// XDR serialization format version 3, gzip-compressed. This is what
// tools::write_PACKAGES saves, except that R adds all-NA columns for unused
// fields; readRDS() gives what read.dcf() gives for the PACKAGES file, up
// to row names and column order (read.dcf orders columns by first
// appearance). available.packages() resets the row names either way.
//
// Serving it saves R from parsing DCF, and it must be right: R falls back
// to PACKAGES.gz when readRDS fails, but not when it succeeds with wrong
// content.
func WritePACKAGESRDS(w io.Writer, entries []Entry) error {
	sorted, err := prepare(entries)
	if err != nil {
		return err
	}
	var cols []int // indexes into entryFields
	for j, f := range entryFields {
		for i := range sorted {
			if *f.get(&sorted[i]) != "" {
				cols = append(cols, j)
				break
			}
		}
	}

	var s rdsWriter
	s.buf.WriteString("X\n") // XDR binary format
	s.int(3)                 // serialization format version
	s.int(4<<16 | 2<<8 | 0)  // written by "R 4.2.0"; informational only
	s.int(3<<16 | 5<<8 | 0)  // R 3.5.0 is the oldest reader of version 3
	s.str("UTF-8")           // native encoding, length-prefixed

	s.int(sxpStr | flagHasAttr)
	s.int(int32(len(sorted) * len(cols)))
	for _, j := range cols { // column-major, like R matrices
		for i := range sorted {
			v := *entryFields[j].get(&sorted[i])
			if v == "" {
				s.na()
			} else {
				s.charsxp(v)
			}
		}
	}
	// Attributes: pairlist(dim = c(nrow, ncol), dimnames = list(pkgs, cols)).
	s.int(sxpList | flagHasTag)
	s.symbol("dim")
	s.int(sxpInt)
	s.int(2)
	s.int(int32(len(sorted)))
	s.int(int32(len(cols)))
	s.int(sxpList | flagHasTag)
	s.symbol("dimnames")
	s.int(sxpVec)
	s.int(2)
	s.int(sxpStr) // row names: the package names, as write_PACKAGES sets them
	s.int(int32(len(sorted)))
	for i := range sorted {
		s.charsxp(sorted[i].Package)
	}
	s.int(sxpStr)
	s.int(int32(len(cols)))
	for _, j := range cols {
		s.charsxp(entryFields[j].name)
	}
	s.int(sxpNilVal) // end of the attribute pairlist

	zw, err := gzip.NewWriterLevel(w, gzip.BestCompression)
	if err != nil {
		return fmt.Errorf("gzip PACKAGES.rds: %w", err)
	}
	if _, err := zw.Write(s.buf.Bytes()); err != nil {
		return fmt.Errorf("write PACKAGES.rds: %w", err)
	}
	if err := zw.Close(); err != nil {
		return fmt.Errorf("write PACKAGES.rds: %w", err)
	}
	return nil
}

type rdsWriter struct {
	buf bytes.Buffer
}

func (s *rdsWriter) int(v int32) {
	s.buf.Write(binary.BigEndian.AppendUint32(nil, uint32(v)))
}

func (s *rdsWriter) str(v string) {
	s.int(int32(len(v)))
	s.buf.WriteString(v)
}

func (s *rdsWriter) na() {
	s.int(sxpChar)
	s.int(naLength)
}

// charsxp writes a string marked ASCII or UTF-8, so R shows non-ASCII
// text correctly in any locale. Index values come from UTF-8 DESCRIPTIONs;
// other bytes are written unmarked (native), which is what R itself does.
func (s *rdsWriter) charsxp(v string) {
	level := 0
	switch {
	case isASCII(v):
		level = levelASCII
	case utf8.ValidString(v):
		level = levelUTF8
	}
	s.int(int32(sxpChar | level<<12))
	s.str(v)
}

// symbol writes a SYMSXP; each symbol is used once, so no back-references
// are needed.
func (s *rdsWriter) symbol(name string) {
	s.int(sxpSym)
	s.charsxp(name)
}

func isASCII(v string) bool {
	for i := 0; i < len(v); i++ {
		if v[i] >= 0x80 {
			return false
		}
	}
	return true
}
