package pypi

import (
	"crypto/md5"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"mime"
	"net/http"
	"strings"

	"github.com/atrium-suite/atrium/shared/pyname"
	"golang.org/x/crypto/blake2b"
)

// Upload is a parsed legacy upload form (the "file_upload" action of
// PyPI's upload API, as twine, uv publish and poetry send it).
type Upload struct {
	Name, Version   string // as the client sent them
	Filetype        string // "bdist_wheel" or "sdist"
	PyVersion       string // python tag, or "source"
	MetadataVersion string
	Filename        string // of the content part, checked to be a plain base name
	// Size and the digests (lower-case hex) are computed from the bytes
	// received, and the client's digests matched them.
	Size       int64
	SHA256     string
	Blake2b256 string
	// Fields holds every text field as sent, by name: the flattened core
	// metadata (summary, requires_dist, classifiers, ...) and the protocol
	// fields. Use Inspect's result, not these, as the truth about the file.
	Fields map[string][]string
}

// Sink receives the uploaded file as it arrives, so that a server can stream
// it into storage without holding it in memory. It must read r to EOF (or
// fail). r fails with an error wrapping ErrTooLarge past the size limit; a
// sink should return such errors as they are. ParseUpload verifies the
// client's digests only after the sink returns, so when ParseUpload fails
// the caller must discard whatever the sink stored.
type Sink func(filename string, r io.Reader) error

// WriterSink is a Sink copying into w, e.g. a temporary *os.File which the
// caller then hands to Inspect.
func WriterSink(w io.Writer) Sink {
	return func(_ string, r io.Reader) error {
		_, err := io.Copy(w, r)
		return err
	}
}

// Limits on the text fields of an upload; a long description is the
// largest real one.
const (
	maxFieldSize   = 4 << 20
	maxFieldsTotal = 16 << 20
	maxFields      = 10_000
)

// ParseUpload reads a legacy upload request: a multipart/form-data body
// with ":action" = "file_upload", "protocol_version" = "1", "name",
// "version", "filetype", "pyversion", "metadata_version", at least one of
// "sha256_digest", "blake2_256_digest" and "md5_digest", and the file as the
// part "content", in any order. The file (at most maxSize bytes) goes to
// sink while its digests are computed; the sent digests must match.
//
// A server handles an upload as: create a temp file, ParseUpload with
// WriterSink(tmp), Inspect(u.Filename, tmp, u.Size), u.Check(dist), then
// move the file into storage under u.SHA256. Problems with the request are
// *InvalidError (wrapping ErrTooLarge for size limits); other errors come
// from the sink or the connection.
func ParseUpload(r *http.Request, maxSize int64, sink Sink) (*Upload, error) {
	mr, err := r.MultipartReader()
	if err != nil {
		return nil, &InvalidError{Msg: "upload must be a multipart/form-data POST", Err: err}
	}
	u := &Upload{Fields: map[string][]string{}}
	var (
		gotContent             bool
		fieldBytes, fieldCount int
		shaH                   = sha256.New()
		md5H                   = md5.New()
		blakeH, _              = blake2b.New256(nil)
	)
	for {
		part, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, &InvalidError{Msg: "upload body is not valid multipart/form-data", Err: err}
		}
		name := part.FormName()
		if name == "content" {
			if gotContent {
				return nil, invalidf("upload has more than one file")
			}
			gotContent = true
			_, params, _ := mime.ParseMediaType(part.Header.Get("Content-Disposition"))
			u.Filename = params["filename"]
			if err := checkFilename(u.Filename); err != nil {
				return nil, err
			}
			lr := &limitedHashReader{r: part, max: maxSize, w: io.MultiWriter(shaH, md5H, blakeH)}
			err := sink(u.Filename, lr)
			if err == nil {
				// A sink that stopped early stored a truncated file.
				var n int64
				n, err = io.Copy(io.Discard, lr)
				if err == nil && n > 0 {
					err = errors.New("sink did not read the whole file")
				}
			}
			if err != nil {
				if lr.err != nil {
					return nil, lr.err
				}
				return nil, fmt.Errorf("store upload: %w", err)
			}
			u.Size = lr.n
			continue
		}
		fieldCount++
		if fieldCount > maxFields {
			return nil, tooLargef("upload has more than %d fields", maxFields)
		}
		b, err := io.ReadAll(io.LimitReader(part, maxFieldSize+1))
		if err != nil {
			return nil, &InvalidError{Msg: "upload body is not valid multipart/form-data", Err: err}
		}
		if len(b) > maxFieldSize {
			return nil, tooLargef("upload field %q is larger than %d bytes", name, maxFieldSize)
		}
		if fieldBytes += len(b); fieldBytes > maxFieldsTotal {
			return nil, tooLargef("upload fields total more than %d bytes", maxFieldsTotal)
		}
		if part.FileName() != "" {
			// A signature or attestation sent as a file: not kept.
			continue
		}
		v := strings.ToValidUTF8(string(b), "\uFFFD")
		u.Fields[name] = append(u.Fields[name], v)
		// Refuse a wrong action before the file is streamed, when the
		// client sends it first.
		if name == ":action" && v != "file_upload" && !gotContent {
			return nil, unsupportedAction(v)
		}
	}
	return u, u.finish(gotContent, shaH, blakeH, md5H)
}

func unsupportedAction(a string) error {
	return invalidf("unsupported :action %q; only file_upload is supported", a)
}

func (u *Upload) finish(gotContent bool, shaH, blakeH, md5H hash.Hash) error {
	get := func(k string) string {
		if v := u.Fields[k]; len(v) > 0 {
			return strings.TrimSpace(v[0])
		}
		return ""
	}
	switch a := get(":action"); a {
	case "file_upload":
	case "":
		return invalidf("upload has no :action field")
	default:
		return unsupportedAction(a)
	}
	if pv := get("protocol_version"); pv != "" && pv != "1" {
		return invalidf("unsupported protocol_version %q", pv)
	}
	u.Name, u.Version, u.Filetype = get("name"), get("version"), get("filetype")
	u.PyVersion, u.MetadataVersion = get("pyversion"), get("metadata_version")
	switch {
	case !gotContent:
		return invalidf("upload has no file (the form field \"content\")")
	case u.Name == "":
		return invalidf("upload has no name field")
	case u.Version == "":
		return invalidf("upload has no version field")
	case u.Filetype != FiletypeWheel && u.Filetype != FiletypeSdist:
		return invalidf("unsupported filetype %q; upload a wheel (bdist_wheel) or source distribution (sdist)", u.Filetype)
	}
	u.SHA256 = hex.EncodeToString(shaH.Sum(nil))
	u.Blake2b256 = hex.EncodeToString(blakeH.Sum(nil))
	digests := []struct{ field, label, got string }{
		{"sha256_digest", "sha256", u.SHA256},
		{"blake2_256_digest", "blake2b-256", u.Blake2b256},
		{"md5_digest", "md5", hex.EncodeToString(md5H.Sum(nil))},
	}
	sent := 0
	for _, d := range digests {
		want := strings.ToLower(get(d.field))
		if want == "" {
			continue
		}
		sent++
		if subtle.ConstantTimeCompare([]byte(want), []byte(d.got)) != 1 {
			return invalidf("%s digest does not match the uploaded file", d.label)
		}
	}
	if sent == 0 {
		// Without a digest a truncated upload would go unnoticed.
		return invalidf("upload has no sha256_digest or blake2_256_digest")
	}
	return nil
}

// Check compares the form's claims with what Inspect found in the file.
// twine fills them from the file's own metadata, so a mismatch means a
// broken client or a forged request.
func (u *Upload) Check(d Dist) error {
	switch {
	case u.Filename != d.Filename:
		return invalidf("the upload is named %q but was inspected as %q", u.Filename, d.Filename)
	case pyname.Normalize(u.Name) != pyname.Normalize(d.Name):
		return invalidf("the upload form says name '%s' but the file's metadata says '%s'", u.Name, d.Name)
	case !versionMatches(u.Version, d.Version):
		return invalidf("the upload form says version '%s' but the file's metadata says '%s'", u.Version, d.Version)
	case u.Filetype != d.Filetype:
		return invalidf("the upload form says filetype '%s' but %s is a %s", u.Filetype, d.Filename, d.Filetype)
	}
	return nil
}

// limitedHashReader passes the file through its hashes and fails past max
// bytes. It remembers its first failure so ParseUpload can tell the
// client's fault from the sink's.
type limitedHashReader struct {
	r   io.Reader
	w   io.Writer
	n   int64
	max int64
	err error
}

func (l *limitedHashReader) Read(p []byte) (int, error) {
	if l.err != nil {
		return 0, l.err
	}
	n, err := l.r.Read(p)
	if n > 0 {
		l.n += int64(n)
		if l.n > l.max {
			l.err = tooLargef("the file is larger than the %d bytes allowed", l.max)
			return 0, l.err
		}
		l.w.Write(p[:n]) // hashes never fail
	}
	if err != nil && err != io.EOF {
		l.err = &InvalidError{Msg: "upload body ended early or is malformed", Err: err}
		return n, l.err
	}
	return n, err
}
