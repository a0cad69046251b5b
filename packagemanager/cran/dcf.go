package cran

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
)

// Field is one "Name: value" pair of a DCF record.
type Field struct {
	Name  string
	Value string
}

// Record is one paragraph of a DCF file, its fields in file order (order
// matters for writing a DESCRIPTION back out and for diffing with R's files).
type Record []Field

// Get returns the value of the field called name; DCF names are
// case-sensitive, as in R's read.dcf.
func (r Record) Get(name string) (string, bool) {
	for _, f := range r {
		if f.Name == name {
			return f.Value, true
		}
	}
	return "", false
}

// Value returns the value of the field called name, or "".
func (r Record) Value(name string) string {
	v, _ := r.Get(name)
	return v
}

// maxDCFLine bounds one physical line; PACKAGES and DESCRIPTION lines are
// far shorter, and a bound keeps a hostile file from growing a buffer.
const maxDCFLine = 1 << 20

// ParseDCF reads Debian Control File records as R's read.dcf does: records
// are separated by lines that are empty or hold only blanks; a field is
// "Name: value"; a line starting with a space or tab continues the previous
// field. Continuation lines are joined with "\n" after their leading blanks
// are dropped, and a continuation line holding only "." stands for an empty
// line (the Debian convention R follows). Values are trimmed. A field that
// occurs twice in one record is an error, since R would silently keep one
// and which one differs between tools. A trailing "\r" is dropped from
// every line so that files written on Windows parse too.
func ParseDCF(r io.Reader) ([]Record, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), maxDCFLine)
	var (
		recs   []Record
		cur    Record
		lineNo int
	)
	flush := func() {
		if len(cur) > 0 {
			for i := range cur {
				cur[i].Value = strings.Trim(cur[i].Value, " \t\n")
			}
			recs = append(recs, cur)
		}
		cur = nil
	}
	for sc.Scan() {
		lineNo++
		line := strings.TrimSuffix(sc.Text(), "\r")
		if strings.Trim(line, " \t") == "" {
			flush()
			continue
		}
		if line[0] == ' ' || line[0] == '\t' {
			if len(cur) == 0 {
				return nil, invalidf("line %d: continuation line %q does not follow a field", lineNo, clip(line))
			}
			cont := strings.Trim(line, " \t")
			if cont == "." {
				cont = ""
			}
			cur[len(cur)-1].Value += "\n" + cont
			continue
		}
		name, value, ok := strings.Cut(line, ":")
		if !ok {
			return nil, invalidf("line %d: expected \"Field: value\", got %q", lineNo, clip(line))
		}
		if err := checkFieldName(name); err != nil {
			return nil, invalidf("line %d: %v", lineNo, err)
		}
		if _, dup := cur.Get(name); dup {
			return nil, invalidf("line %d: field %q appears twice in one record", lineNo, name)
		}
		cur = append(cur, Field{Name: name, Value: strings.Trim(value, " \t")})
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return nil, invalidf("line %d: line longer than %d bytes", lineNo+1, maxDCFLine)
		}
		return nil, fmt.Errorf("read DCF: %w", err)
	}
	flush()
	return recs, nil
}

// checkFieldName accepts what Debian policy allows in a field name (printable
// ASCII without ':' or space, not starting with '#' or '-'), which covers
// every field R writes.
func checkFieldName(name string) error {
	if name == "" {
		return errors.New("empty field name")
	}
	if name[0] == '#' || name[0] == '-' {
		return fmt.Errorf("field name %q may not start with %q", clip(name), name[0])
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; c <= ' ' || c >= 0x7f {
			return fmt.Errorf("field name %q contains a space or a non-printable character", clip(name))
		}
	}
	return nil
}

// writeDCFRecord writes one record followed by a blank line. Values must
// not contain newlines; the callers normalize them first.
func writeDCFRecord(buf *bytes.Buffer, rec Record) {
	for _, f := range rec {
		buf.WriteString(f.Name)
		buf.WriteString(": ")
		buf.WriteString(f.Value)
		buf.WriteByte('\n')
	}
	buf.WriteByte('\n')
}

// clip shortens s for use in an error message.
func clip(s string) string {
	const n = 60
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
