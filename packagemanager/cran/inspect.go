package cran

import (
	"archive/tar"
	"compress/gzip"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"path"
	"regexp"
	"strings"
)

// Limits bound what InspectSourcePackage reads, so that one upload cannot
// exhaust disk, memory or time. Zero fields take the defaults.
type Limits struct {
	// MaxSize is the largest tarball accepted, compressed (default 512 MiB;
	// the largest CRAN source packages are a few hundred MB).
	MaxSize int64
	// MaxUnpackedSize bounds the sum of the sizes of the archive members,
	// which stops gzip bombs (default 2 GiB).
	MaxUnpackedSize int64
	// MaxFiles bounds the number of archive members (default 100000).
	MaxFiles int
	// MaxDescriptionSize bounds DESCRIPTION (default 1 MiB).
	MaxDescriptionSize int64
}

// DefaultLimits returns the limits used for zero fields of Limits.
func DefaultLimits() Limits {
	return Limits{
		MaxSize:            512 << 20,
		MaxUnpackedSize:    2 << 30,
		MaxFiles:           100_000,
		MaxDescriptionSize: 1 << 20,
	}
}

func (l Limits) withDefaults() Limits {
	d := DefaultLimits()
	if l.MaxSize > 0 {
		d.MaxSize = l.MaxSize
	}
	if l.MaxUnpackedSize > 0 {
		d.MaxUnpackedSize = l.MaxUnpackedSize
	}
	if l.MaxFiles > 0 {
		d.MaxFiles = l.MaxFiles
	}
	if l.MaxDescriptionSize > 0 {
		d.MaxDescriptionSize = l.MaxDescriptionSize
	}
	return d
}

// Package is an inspected source package: what the server stores about an
// uploaded tarball.
type Package struct {
	Description Description
	Filename    string // {pkg}_{version}.tar.gz
	MD5         string // lower-case hex of the whole tarball; PACKAGES's MD5sum
	SHA256      string // lower-case hex of the whole tarball
	Size        int64  // bytes of the tarball
}

// Entry returns the index entry for this package version.
func (p Package) Entry() Entry {
	return NewEntry(p.Description, p.MD5)
}

// sourceFileRE splits "{pkg}_{version}.tar.gz"; package names cannot
// contain '_', so the first '_' ends the name.
var sourceFileRE = regexp.MustCompile(`^([^_/\\]+)_([^_/\\]+)\.tar\.gz$`)

// ParseSourceFilename splits a source package file name such as
// "atriumhello_1.1.0.tar.gz" into package name and version, validating both.
func ParseSourceFilename(filename string) (pkg, version string, err error) {
	m := sourceFileRE.FindStringSubmatch(filename)
	if m == nil {
		return "", "", invalidf("file name %q is not of the form {package}_{version}.tar.gz made by R CMD build", clip(filename))
	}
	if !ValidPackageName(m[1]) {
		return "", "", invalidf("file name %q: invalid package name %q", clip(filename), clip(m[1]))
	}
	if !ValidVersion(m[2]) {
		return "", "", invalidf("file name %q: invalid version %q", clip(filename), clip(m[2]))
	}
	return m[1], m[2], nil
}

// InspectSourcePackage reads a source package tarball as uploaded (the
// {pkg}_{version}.tar.gz that R CMD build makes) in one streaming pass:
// it hashes the bytes, checks every archive member, and parses
// {pkg}/DESCRIPTION. Refused archives give an *InvalidError naming the
// problem. Members must all lie under the {pkg}/ directory; absolute
// paths, "..", links leading outside that directory, device files and
// archives over the limits are refused, because R CMD INSTALL unpacks the
// tarball on users' machines. DESCRIPTION's Package and Version must match
// the file name, since R finds tarballs by that name.
//
// Errors reading r itself are returned wrapped, not as *InvalidError.
func InspectSourcePackage(filename string, r io.Reader, limits Limits) (Package, error) {
	limits = limits.withDefaults()
	pkg, version, err := ParseSourceFilename(filename)
	if err != nil {
		return Package{}, err
	}
	md5h, sha := md5.New(), sha256.New()
	src := &countingReader{r: r, hashes: []hash.Hash{md5h, sha}, limit: limits.MaxSize}
	desc, err := inspectTar(src, pkg, limits)
	if err == nil {
		// Hash to the very end: the MD5 in PACKAGES is of the whole file,
		// including gzip trailer and any padding after the tar end.
		_, err = io.Copy(io.Discard, src)
	}
	if err != nil {
		if src.err != nil {
			// The failure came from below the gzip/tar layers.
			if errors.Is(src.err, errTooLarge) {
				return Package{}, invalidf("%s is larger than the limit of %d bytes", filename, limits.MaxSize)
			}
			return Package{}, fmt.Errorf("read %s: %w", filename, src.err)
		}
		return Package{}, err
	}
	if desc.Package != pkg {
		return Package{}, invalidf("DESCRIPTION says Package: %s but the file name says %s; rename the file or fix DESCRIPTION", desc.Package, pkg)
	}
	if desc.Version != version {
		return Package{}, invalidf("DESCRIPTION says Version: %s but the file name says %s; rename the file or fix DESCRIPTION", desc.Version, version)
	}
	return Package{
		Description: desc,
		Filename:    filename,
		MD5:         hex.EncodeToString(md5h.Sum(nil)),
		SHA256:      hex.EncodeToString(sha.Sum(nil)),
		Size:        src.n,
	}, nil
}

func inspectTar(src io.Reader, pkg string, limits Limits) (Description, error) {
	zr, err := gzip.NewReader(src)
	if err != nil {
		return Description{}, invalidf("not a gzip-compressed file (%v); upload the .tar.gz made by R CMD build", err)
	}
	defer zr.Close()
	tr := tar.NewReader(zr)
	var (
		desc     *Description
		files    int
		unpacked int64
		descPath = pkg + "/DESCRIPTION"
	)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return Description{}, archiveError(err)
		}
		if hdr.Typeflag == tar.TypeXGlobalHeader {
			continue // pax global header: metadata only, nothing is extracted
		}
		files++
		if files > limits.MaxFiles {
			return Description{}, invalidf("archive has more than %d files", limits.MaxFiles)
		}
		name, err := checkMemberName(hdr.Name, pkg)
		if err != nil {
			return Description{}, err
		}
		switch hdr.Typeflag {
		case tar.TypeReg, tar.TypeDir:
		case tar.TypeSymlink:
			if err := checkLinkTarget(name, hdr.Linkname, pkg, true); err != nil {
				return Description{}, err
			}
		case tar.TypeLink:
			if err := checkLinkTarget(name, hdr.Linkname, pkg, false); err != nil {
				return Description{}, err
			}
		case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
			return Description{}, invalidf("archive member %q is a device or FIFO; source packages may contain only files, directories and links", clip(hdr.Name))
		default:
			return Description{}, invalidf("archive member %q has unsupported type %q", clip(hdr.Name), hdr.Typeflag)
		}
		if hdr.Size < 0 {
			return Description{}, invalidf("archive member %q has a negative size", clip(hdr.Name))
		}
		unpacked += hdr.Size
		if unpacked > limits.MaxUnpackedSize {
			return Description{}, invalidf("archive unpacks to more than %d bytes", limits.MaxUnpackedSize)
		}
		if name != descPath {
			continue
		}
		if hdr.Typeflag != tar.TypeReg {
			return Description{}, invalidf("%s must be a regular file", descPath)
		}
		if desc != nil {
			return Description{}, invalidf("archive contains %s twice", descPath)
		}
		if hdr.Size > limits.MaxDescriptionSize {
			return Description{}, invalidf("%s is larger than %d bytes", descPath, limits.MaxDescriptionSize)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			return Description{}, archiveError(err)
		}
		d, err := ParseDESCRIPTION(data)
		if err != nil {
			return Description{}, invalidf("%s: %v", descPath, err)
		}
		desc = &d
	}
	if desc == nil {
		return Description{}, invalidf("archive has no %s; a source package made by R CMD build has one", descPath)
	}
	// Read the rest of the gzip stream (tar padding) so its CRC is checked:
	// a corrupt upload should fail now, not in R CMD INSTALL. It counts
	// towards the unpacked limit so trailing garbage cannot be a bomb.
	rest := limits.MaxUnpackedSize - unpacked
	n, err := io.Copy(io.Discard, io.LimitReader(zr, rest+1))
	if err != nil {
		return Description{}, archiveError(err)
	}
	if n > rest {
		return Description{}, invalidf("archive unpacks to more than %d bytes", limits.MaxUnpackedSize)
	}
	return *desc, nil
}

// archiveError words a gzip or tar failure for the uploader. Failures of
// the underlying reader are sorted out by the caller.
func archiveError(err error) error {
	switch {
	case errors.Is(err, io.ErrUnexpectedEOF):
		return invalidf("the archive is truncated; the upload may be incomplete")
	case errors.Is(err, gzip.ErrChecksum), errors.Is(err, gzip.ErrHeader):
		return invalidf("corrupt gzip data (%v); upload the .tar.gz made by R CMD build again", err)
	}
	return invalidf("not a valid tar.gz archive: %v", err)
}

// checkMemberName returns the cleaned member name after refusing names
// that would be extracted outside the package directory.
func checkMemberName(name, pkg string) (string, error) {
	if name == "" {
		return "", invalidf("archive has a member with an empty name")
	}
	if strings.ContainsAny(name, "\\\x00") {
		return "", invalidf("archive member %q contains a backslash or NUL", clip(name))
	}
	if strings.HasPrefix(name, "/") {
		return "", invalidf("archive member %q has an absolute path", clip(name))
	}
	for el := range strings.SplitSeq(name, "/") {
		if el == ".." {
			return "", invalidf("archive member %q contains \"..\"", clip(name))
		}
	}
	clean := path.Clean(name)
	if clean != pkg && !strings.HasPrefix(clean, pkg+"/") {
		top, _, _ := strings.Cut(clean, "/")
		return "", invalidf("archive member %q is outside the top-level directory %q; R CMD build puts everything under a directory named after the package (found %q)", clip(name), pkg, clip(top))
	}
	return clean, nil
}

// checkLinkTarget refuses links that resolve outside pkg/. Symlink targets
// are relative to the link's directory; hard-link targets are archive
// member names.
func checkLinkTarget(name, target, pkg string, symlink bool) error {
	kind := "hard link"
	if symlink {
		kind = "symlink"
	}
	if target == "" || strings.HasPrefix(target, "/") || strings.ContainsAny(target, "\\\x00") {
		return invalidf("%s %q points to %q, outside the package", kind, clip(name), clip(target))
	}
	resolved := target
	if symlink {
		resolved = path.Join(path.Dir(name), target)
	} else {
		resolved = path.Clean(target)
	}
	if strings.HasPrefix(resolved, "../") || resolved == ".." || (resolved != pkg && !strings.HasPrefix(resolved, pkg+"/")) {
		return invalidf("%s %q points to %q, outside the package", kind, clip(name), clip(target))
	}
	return nil
}

var errTooLarge = errors.New("input larger than limit")

// countingReader hashes and counts what passes through and remembers the
// first error of the underlying reader, so callers can tell a truncated
// upload (I/O) from a corrupt one (invalid content).
type countingReader struct {
	r      io.Reader
	hashes []hash.Hash
	n      int64
	limit  int64
	err    error
}

func (c *countingReader) Read(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	if rem := c.limit + 1 - c.n; int64(len(p)) > rem {
		p = p[:rem]
	}
	n, err := c.r.Read(p)
	for _, h := range c.hashes {
		h.Write(p[:n])
	}
	c.n += int64(n)
	if c.n > c.limit {
		c.err = errTooLarge
		return n, c.err
	}
	if err != nil && !errors.Is(err, io.EOF) {
		c.err = err
	}
	return n, err
}
