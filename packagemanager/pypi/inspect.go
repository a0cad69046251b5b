package pypi

import (
	"archive/tar"
	"archive/zip"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strings"

	"github.com/atrium-suite/atrium/shared/pyname"
)

// Dist is what Inspect learned about a distribution file.
type Dist struct {
	Name     string // from the metadata, as written (display name)
	Version  string // from the metadata, as written
	Filename string
	Filetype string // "bdist_wheel" or "sdist", as in the upload form
	// PythonVersion is the wheel's python tag ("py3", "cp312") or "source",
	// as in the upload form's pyversion field.
	PythonVersion   string
	RequiresPython  string
	Summary         string
	MetadataVersion string
	RequiresDist    []string
	// Metadata is the core metadata file exactly as stored in the archive
	// (a wheel's *.dist-info/METADATA, an sdist's top-level PKG-INFO). For
	// wheels serve it as the PEP 658 "{file}.metadata"; see
	// HasCoreMetadataFile.
	Metadata []byte
}

// Filetypes, as the upload form spells them.
const (
	FiletypeWheel = "bdist_wheel"
	FiletypeSdist = "sdist"
)

// HasCoreMetadataFile reports whether Metadata should be published as a
// PEP 658 metadata file. Only wheels qualify, as on PyPI: an sdist's PKG-INFO
// may be stale or dynamic, and an installer trusting it would resolve wrong.
func (d Dist) HasCoreMetadataFile() bool { return d.Filetype == FiletypeWheel }

// InspectLimits bounds what Inspect will read, so that a small upload cannot
// make the server decompress gigabytes or walk millions of entries.
type InspectLimits struct {
	MaxTotalSize    int64 // sum of uncompressed entry sizes (tar: bytes decompressed)
	MaxEntries      int   // archive entries, directories included
	MaxMetadataSize int64 // the METADATA / PKG-INFO file
}

// DefaultLimits fit the largest real distributions (GPU wheels of ~2 GiB)
// with room, and nothing much larger.
var DefaultLimits = InspectLimits{
	MaxTotalSize:    4 << 30,
	MaxEntries:      100_000,
	MaxMetadataSize: 10 << 20,
}

// maxFilenameLen is the common file system limit; longer names cannot be
// stored anyway.
const maxFilenameLen = 255

// Inspect validates a distribution with DefaultLimits; see
// InspectLimits.Inspect.
func Inspect(filename string, r io.ReaderAt, size int64) (Dist, error) {
	return DefaultLimits.Inspect(filename, r, size)
}

// Inspect validates the distribution file named filename (a base name, as
// uploaded) whose size bytes r holds, and returns its metadata. It checks
// that the archive is readable and within l; that no entry is absolute,
// climbs out with "..", is duplicated or (in a tar) is a link or device;
// that the core metadata is where installers look for it; and that the
// metadata's name and version are the filename's. Every rejection is an
// *InvalidError; an error of r itself is returned wrapped as is.
func (l InspectLimits) Inspect(filename string, r io.ReaderAt, size int64) (Dist, error) {
	l = l.withDefaults()
	if err := checkFilename(filename); err != nil {
		return Dist{}, err
	}
	switch {
	case strings.HasSuffix(filename, ".whl"):
		return l.inspectWheel(filename, r, size)
	case strings.HasSuffix(filename, ".tar.gz"):
		return l.inspectTarSdist(filename, r, size)
	case strings.HasSuffix(filename, ".zip"):
		return l.inspectZipSdist(filename, r, size)
	}
	return Dist{}, invalidf("%q is not a wheel (.whl) or source distribution (.tar.gz, .zip)", filename)
}

func (l InspectLimits) withDefaults() InspectLimits {
	if l.MaxTotalSize <= 0 {
		l.MaxTotalSize = DefaultLimits.MaxTotalSize
	}
	if l.MaxEntries <= 0 {
		l.MaxEntries = DefaultLimits.MaxEntries
	}
	if l.MaxMetadataSize <= 0 {
		l.MaxMetadataSize = DefaultLimits.MaxMetadataSize
	}
	return l
}

// checkFilename accepts a plain base name: it becomes part of a URL and of
// a storage path.
func checkFilename(name string) error {
	if name == "" {
		return invalidf("the file has no name")
	}
	if len(name) > maxFilenameLen {
		return invalidf("filename is longer than %d bytes", maxFilenameLen)
	}
	for _, c := range []byte(name) {
		if c < 0x20 || c == 0x7f || c == '/' || c == '\\' || c == '"' || c == '#' || c == '?' || c == '%' {
			return invalidf("filename %q contains a character that is not allowed", name)
		}
	}
	if strings.HasPrefix(name, ".") {
		return invalidf("filename %q starts with a dot", name)
	}
	return nil
}

// cleanEntry checks an archive entry name and returns it without "." and
// empty components. Absolute names, drive letters, backslashes and ".."
// are refused: extracting such an entry writes outside the target.
func cleanEntry(kind, name string) (string, error) {
	switch {
	case name == "":
		return "", invalidf("%s contains an entry with an empty name", kind)
	case strings.ContainsAny(name, "\x00\\"):
		return "", invalidf("%s contains an entry with a backslash or NUL in its name: %q", kind, name)
	case strings.HasPrefix(name, "/"),
		len(name) >= 2 && name[1] == ':':
		return "", invalidf("%s contains an entry with an absolute path: %q", kind, name)
	}
	var parts []string
	for _, p := range strings.Split(name, "/") {
		switch p {
		case "", ".":
		case "..":
			return "", invalidf("%s contains an entry that escapes the archive with \"..\": %q", kind, name)
		default:
			parts = append(parts, p)
		}
	}
	if len(parts) == 0 {
		return "", invalidf("%s contains an entry with an empty name", kind)
	}
	return strings.Join(parts, "/"), nil
}

// zipEntries opens a zip and checks every entry against the limits and
// path rules. It returns the files by cleaned name.
func (l InspectLimits) zipEntries(kind string, er *errReaderAt, size int64) (map[string]*zip.File, []string, error) {
	zr, err := zip.NewReader(er, size)
	if err != nil && !errors.Is(err, zip.ErrInsecurePath) {
		if er.err != nil {
			// The storage failed, not the archive.
			return nil, nil, fmt.Errorf("read %s: %w", kind, er.err)
		}
		return nil, nil, &InvalidError{Msg: fmt.Sprintf("%s is not a valid zip archive", kind), Err: err}
	}
	if len(zr.File) > l.MaxEntries {
		return nil, nil, tooLargef("%s has %d entries, more than the %d allowed", kind, len(zr.File), l.MaxEntries)
	}
	files := make(map[string]*zip.File, len(zr.File))
	var names []string
	var total uint64
	for _, f := range zr.File {
		name, err := cleanEntry(kind, f.Name)
		if err != nil {
			return nil, nil, err
		}
		mode := f.Mode()
		if mode&(fs.ModeSymlink|fs.ModeDevice|fs.ModeCharDevice|fs.ModeNamedPipe|fs.ModeSocket|fs.ModeIrregular) != 0 {
			return nil, nil, invalidf("%s contains %q, which is not a regular file or directory", kind, f.Name)
		}
		if _, dup := files[name]; dup {
			// Two entries with one name extract differently with different
			// tools; an installer might not get what was inspected.
			return nil, nil, invalidf("%s contains %q twice", kind, name)
		}
		total += f.UncompressedSize64
		if f.UncompressedSize64 > uint64(l.MaxTotalSize) || total > uint64(l.MaxTotalSize) {
			return nil, nil, tooLargef("%s would uncompress to more than %d bytes", kind, l.MaxTotalSize)
		}
		files[name] = f
		names = append(names, name)
	}
	return files, names, nil
}

// errReaderAt confines reads to the file's size bytes — archive/zip seeks
// to offsets taken from the archive itself, which may point anywhere — and
// remembers the first real I/O error of r, so that a broken disk is not
// blamed on the uploader.
type errReaderAt struct {
	r    io.ReaderAt
	size int64
	err  error
}

func (e *errReaderAt) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 || off >= e.size {
		return 0, io.EOF
	}
	if rest := e.size - off; int64(len(p)) > rest {
		n, err := e.ReadAt(p[:rest], off)
		if err == nil {
			err = io.EOF
		}
		return n, err
	}
	n, err := e.r.ReadAt(p, off)
	if err != nil && err != io.EOF && e.err == nil {
		e.err = err
	}
	return n, err
}

// readZipFile reads an entry that must be at most max bytes. archive/zip
// refuses data beyond the declared size, so the declared size is the bound.
func readZipFile(kind string, er *errReaderAt, f *zip.File, max int64) ([]byte, error) {
	if f.UncompressedSize64 > uint64(max) {
		return nil, tooLargef("%s: %s is larger than %d bytes", kind, f.Name, max)
	}
	rc, err := f.Open()
	if err != nil && er.err != nil {
		return nil, fmt.Errorf("read %s: %w", kind, er.err)
	}
	if err != nil {
		return nil, &InvalidError{Msg: fmt.Sprintf("%s: cannot read %s: %v", kind, f.Name, err), Err: err}
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, max+1))
	if err != nil && er.err != nil {
		return nil, fmt.Errorf("read %s: %w", kind, er.err)
	}
	if err != nil {
		return nil, &InvalidError{Msg: fmt.Sprintf("%s: cannot read %s: %v", kind, f.Name, err), Err: err}
	}
	if int64(len(b)) > max {
		return nil, tooLargef("%s: %s is larger than %d bytes", kind, f.Name, max)
	}
	return b, nil
}

func (l InspectLimits) inspectWheel(filename string, r io.ReaderAt, size int64) (Dist, error) {
	w, err := ParseWheelFilename(filename)
	if err != nil {
		return Dist{}, err
	}
	er := &errReaderAt{r: r, size: size}
	files, names, err := l.zipEntries("wheel", er, size)
	if err != nil {
		return Dist{}, err
	}
	var distInfo []string
	seen := map[string]bool{}
	for _, n := range names {
		top, _, _ := strings.Cut(n, "/")
		if strings.HasSuffix(top, ".dist-info") && !seen[top] {
			seen[top] = true
			distInfo = append(distInfo, top)
		}
	}
	switch len(distInfo) {
	case 0:
		return Dist{}, invalidf("wheel has no .dist-info directory")
	case 1:
	default:
		return Dist{}, invalidf("wheel has more than one .dist-info directory: %s", strings.Join(distInfo, ", "))
	}
	di := distInfo[0]
	if !splitNameVersion(strings.TrimSuffix(di, ".dist-info"), w.Name, w.Version) {
		return Dist{}, invalidf("wheel's %s directory does not match the filename's name %q and version %q", di, w.Name, w.Version)
	}
	mf := files[di+"/METADATA"]
	if mf == nil || mf.FileInfo().IsDir() {
		return Dist{}, invalidf("wheel has no %s/METADATA", di)
	}
	if wf := files[di+"/WHEEL"]; wf == nil || wf.FileInfo().IsDir() {
		// pip refuses to install a wheel without it.
		return Dist{}, invalidf("wheel has no %s/WHEEL", di)
	}
	raw, err := readZipFile("wheel", er, mf, l.MaxMetadataSize)
	if err != nil {
		return Dist{}, err
	}
	d, err := distFromMetadata("wheel", raw, w.Name, w.Version)
	if err != nil {
		return Dist{}, err
	}
	d.Filename, d.Filetype, d.PythonVersion = filename, FiletypeWheel, w.Python
	return d, nil
}

// distFromMetadata parses core metadata, checks the fields every
// distribution needs and compares name and version with those in the
// filename (fileName/fileVersion; "" skips the check).
func distFromMetadata(kind string, raw []byte, fileName, fileVersion string) (Dist, error) {
	m, err := ParseMetadata(raw)
	if err != nil {
		return Dist{}, &InvalidError{Msg: fmt.Sprintf("%s metadata is unreadable: %v", kind, err), Err: err}
	}
	switch {
	case m.MetadataVersion == "":
		return Dist{}, invalidf("%s metadata has no Metadata-Version", kind)
	case m.Name == "":
		return Dist{}, invalidf("%s metadata has no Name", kind)
	case m.Version == "":
		return Dist{}, invalidf("%s metadata has no Version", kind)
	}
	if major, _, _ := strings.Cut(m.MetadataVersion, "."); major != "1" && major != "2" {
		return Dist{}, invalidf("%s metadata has Metadata-Version %q; versions 1.0 to 2.x are supported", kind, m.MetadataVersion)
	}
	if !ValidName(m.Name) {
		return Dist{}, invalidf("%s metadata has an invalid project name %q", kind, m.Name)
	}
	if _, err := ParseVersion(m.Version); err != nil {
		return Dist{}, invalidf("%s metadata has version %q, which is not a valid PEP 440 version", kind, m.Version)
	}
	if fileName != "" && pyname.Normalize(fileName) != pyname.Normalize(m.Name) {
		return Dist{}, invalidf("%s metadata says name '%s' but the filename says '%s'", kind, m.Name, fileName)
	}
	if fileVersion != "" && !versionMatches(fileVersion, m.Version) {
		return Dist{}, invalidf("%s metadata says version '%s' but the filename says '%s'", kind, m.Version, fileVersion)
	}
	return Dist{
		Name:            m.Name,
		Version:         m.Version,
		RequiresPython:  m.RequiresPython,
		Summary:         m.Summary,
		MetadataVersion: m.MetadataVersion,
		RequiresDist:    m.RequiresDist,
		Metadata:        raw,
	}, nil
}

// sdistLayout is what an sdist scan found: the top-level directories and
// the PKG-INFO files directly inside them.
type sdistLayout struct {
	tops    []string
	pkgInfo map[string][]byte // top dir → PKG-INFO
}

func (s *sdistLayout) add(name string) {
	top, _, _ := strings.Cut(name, "/")
	for _, t := range s.tops {
		if t == top {
			return
		}
	}
	s.tops = append(s.tops, top)
}

// isTopPKGInfo reports "{top}/PKG-INFO".
func isTopPKGInfo(name string) bool {
	top, rest, ok := strings.Cut(name, "/")
	return ok && top != "" && rest == "PKG-INFO"
}

// finish checks the layout pip expects — one top-level directory named
// {name}-{version} holding PKG-INFO — and that metadata, directory and
// filename agree.
func (s *sdistLayout) finish(filename string) (Dist, error) {
	const kind = "source distribution"
	switch len(s.tops) {
	case 0:
		return Dist{}, invalidf("source distribution is empty")
	case 1:
	default:
		return Dist{}, invalidf("source distribution must contain a single top-level directory, not %s", strings.Join(s.tops[:min(len(s.tops), 5)], ", "))
	}
	top := s.tops[0]
	raw, ok := s.pkgInfo[top]
	if !ok {
		return Dist{}, invalidf("source distribution has no %s/PKG-INFO", top)
	}
	d, err := distFromMetadata(kind, raw, "", "")
	if err != nil {
		return Dist{}, err
	}
	stem, _, _ := cutSdistExt(filename)
	if !splitNameVersion(stem, d.Name, d.Version) {
		return Dist{}, sdistMismatch(stem, d)
	}
	if !splitNameVersion(top, d.Name, d.Version) {
		return Dist{}, invalidf("source distribution's top-level directory %q does not match its metadata (%s)", top, describeNameVersion(d.Name+"-"+d.Version))
	}
	d.Filename, d.Filetype, d.PythonVersion = filename, FiletypeSdist, "source"
	return d, nil
}

// sdistMismatch explains how the filename stem disagrees with the metadata:
// by name when no prefix of the stem is the metadata's name, else by
// version.
func sdistMismatch(stem string, d Dist) error {
	for i := 0; i < len(stem); i++ {
		if stem[i] == '-' && pyname.Normalize(stem[:i]) == pyname.Normalize(d.Name) {
			return invalidf("source distribution metadata says version '%s' but the filename says '%s'", d.Version, stem[i+1:])
		}
	}
	fileName := stem
	if i := strings.LastIndexByte(stem, '-'); i > 0 {
		fileName = stem[:i]
	}
	return invalidf("source distribution metadata says name '%s' but the filename says '%s'", d.Name, fileName)
}

func (l InspectLimits) inspectZipSdist(filename string, r io.ReaderAt, size int64) (Dist, error) {
	const kind = "source distribution"
	er := &errReaderAt{r: r, size: size}
	files, names, err := l.zipEntries(kind, er, size)
	if err != nil {
		return Dist{}, err
	}
	s := sdistLayout{pkgInfo: map[string][]byte{}}
	for _, n := range names {
		s.add(n)
		if f := files[n]; isTopPKGInfo(n) && !f.FileInfo().IsDir() && len(s.pkgInfo) < 2 {
			b, err := readZipFile(kind, er, f, l.MaxMetadataSize)
			if err != nil {
				return Dist{}, err
			}
			s.pkgInfo[strings.TrimSuffix(n, "/PKG-INFO")] = b
		}
	}
	return s.finish(filename)
}

// countingReader fails once more than max bytes have come through: the
// guard against gzip bombs, whose entry headers may declare small sizes.
type countingReader struct {
	r   io.Reader
	n   int64
	max int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	if c.n > c.max {
		return n, errTarTooLarge
	}
	return n, err
}

var errTarTooLarge = errors.New("decompressed size over limit")

func (l InspectLimits) inspectTarSdist(filename string, r io.ReaderAt, size int64) (Dist, error) {
	const kind = "source distribution"
	er := &errReaderAt{r: r, size: size}
	zr, err := gzip.NewReader(io.NewSectionReader(er, 0, size))
	if err != nil {
		if er.err != nil {
			return Dist{}, fmt.Errorf("read sdist: %w", er.err)
		}
		return Dist{}, &InvalidError{Msg: "source distribution is not a gzip-compressed tar file", Err: err}
	}
	defer zr.Close()
	cr := &countingReader{r: zr, max: l.MaxTotalSize}
	tr := tar.NewReader(cr)
	s := sdistLayout{pkgInfo: map[string][]byte{}}
	seen := map[string]bool{}
	corrupt := func(err error) error {
		if er.err != nil {
			return fmt.Errorf("read sdist: %w", er.err)
		}
		if errors.Is(err, errTarTooLarge) {
			return tooLargef("source distribution would uncompress to more than %d bytes", l.MaxTotalSize)
		}
		return &InvalidError{Msg: fmt.Sprintf("source distribution is not a valid .tar.gz: %v", err), Err: err}
	}
	for entries := 0; ; entries++ {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return Dist{}, corrupt(err)
		}
		if entries >= l.MaxEntries {
			return Dist{}, tooLargef("source distribution has more than %d entries", l.MaxEntries)
		}
		if h.Typeflag == tar.TypeXGlobalHeader {
			// git archive writes one; it is pax metadata, not a file.
			continue
		}
		name, err := cleanEntry(kind, h.Name)
		if err != nil {
			return Dist{}, err
		}
		switch h.Typeflag {
		case tar.TypeReg, tar.TypeRegA, tar.TypeDir:
		case tar.TypeSymlink, tar.TypeLink:
			return Dist{}, invalidf("source distribution contains a link: %q → %q", h.Name, h.Linkname)
		default:
			return Dist{}, invalidf("source distribution contains %q, which is not a regular file or directory", h.Name)
		}
		if h.Typeflag != tar.TypeDir {
			if seen[name] {
				return Dist{}, invalidf("source distribution contains %q twice", name)
			}
			seen[name] = true
		}
		if h.Size > l.MaxTotalSize {
			return Dist{}, tooLargef("source distribution would uncompress to more than %d bytes", l.MaxTotalSize)
		}
		s.add(name)
		if h.Typeflag != tar.TypeDir && isTopPKGInfo(name) && len(s.pkgInfo) < 2 {
			if h.Size > l.MaxMetadataSize {
				return Dist{}, tooLargef("source distribution: %s is larger than %d bytes", name, l.MaxMetadataSize)
			}
			b, err := io.ReadAll(tr)
			if err != nil {
				return Dist{}, corrupt(err)
			}
			s.pkgInfo[strings.TrimSuffix(name, "/PKG-INFO")] = b
		}
	}
	// Read to the end of the gzip stream so its checksum is verified: a
	// truncated or corrupted upload fails here rather than at install.
	if _, err := io.Copy(io.Discard, cr); err != nil {
		return Dist{}, corrupt(err)
	}
	return s.finish(filename)
}
