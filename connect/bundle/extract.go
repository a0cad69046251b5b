package bundle

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"slices"
	"strings"
	"unicode/utf8"
)

// Limits bounds what Extract and Inspect accept, so that a small upload
// cannot fill the disk or make the server walk millions of entries. A zero
// field takes its DefaultLimits value.
type Limits struct {
	MaxSize     int64 // total unpacked bytes of all files
	MaxFiles    int   // archive entries, directories included
	MaxFileSize int64 // any one file
}

// DefaultLimits fit the largest real bundles (data-heavy apps, TensorFlow
// models) with room.
var DefaultLimits = Limits{
	MaxSize:     2 << 30,
	MaxFiles:    100_000,
	MaxFileSize: 2 << 30,
}

func (l Limits) withDefaults() Limits {
	if l.MaxSize <= 0 {
		l.MaxSize = DefaultLimits.MaxSize
	}
	if l.MaxFiles <= 0 {
		l.MaxFiles = DefaultLimits.MaxFiles
	}
	if l.MaxFileSize <= 0 {
		l.MaxFileSize = DefaultLimits.MaxFileSize
	}
	return l
}

// File system limits on Linux; longer names cannot be created anyway, and
// saying so is clearer than an errno.
const (
	maxNameLen = 255
	maxPathLen = 4095
)

// trailerSlack is how much of the gzip stream after the tar's end Extract
// reads to reach the gzip trailer and its CRC: tar writers pad the archive
// to 10 KiB records, so a real bundle has far less than this left over.
const trailerSlack = 1 << 20

// Extract unpacks the gzip'd tar bundle read from r into dest, which must be
// an existing, empty directory, and returns its validated manifest.
//
// Like Connect it strips "./" prefixes and, while manifest.json is not at
// the top and the top holds a single directory, unwraps that directory, so
// "./app.py" and "myapp/app.py" both land as dest/app.py. Bundles hold
// only regular files and directories: links are refused outright (Connect
// content never needs them, and checking where each points is where
// extractors go wrong), as are devices, pipes, absolute names, ".."
// components, duplicates and archives over limits. Files are written 0644,
// or 0755 when the archive marks them executable; directories 0755.
//
// A rejection is an *InvalidError (wrapping ErrTooLarge for limits); an
// error reading r is returned wrapped as is, and ctx ends the work. On any
// error every entry written under dest is removed, leaving it empty.
func Extract(ctx context.Context, r io.Reader, dest string, limits Limits) (m Manifest, err error) {
	root, err := os.OpenRoot(dest)
	if err != nil {
		return Manifest{}, fmt.Errorf("bundle: open destination: %w", err)
	}
	defer root.Close()
	if names, err := readDirNames(root, "."); err != nil {
		return Manifest{}, fmt.Errorf("bundle: read destination: %w", err)
	} else if len(names) > 0 {
		// Refusing is what keeps the clean-up below from deleting
		// anything the caller put there.
		return Manifest{}, fmt.Errorf("bundle: destination %s is not empty", dest)
	}
	defer func() {
		if err != nil {
			if cerr := clearRoot(root); cerr != nil {
				err = errors.Join(err, fmt.Errorf("bundle: clean up %s: %w", dest, cerr))
			}
		}
	}()

	w := newWalker(limits)
	err = w.walk(ctx, r, func(name string, h *tar.Header, body io.Reader) error {
		if dir := path.Dir(name); dir != "." {
			if err := root.MkdirAll(dir, 0o755); err != nil {
				return fmt.Errorf("bundle: create %s: %w", dir, err)
			}
		}
		perm := os.FileMode(0o644)
		if h.Mode&0o111 != 0 {
			perm = 0o755
		}
		// O_EXCL: the walker has already refused duplicates; this makes
		// sure nothing on disk is ever overwritten or followed.
		f, err := root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
		if err != nil {
			return fmt.Errorf("bundle: create %s: %w", name, err)
		}
		_, err = io.Copy(f, body)
		if err == nil {
			err = f.Chmod(perm) // exact, whatever the umask
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("bundle: write %s: %w", name, err)
		}
		return nil
	}, func(name string) error {
		if err := root.MkdirAll(name, 0o755); err != nil {
			return fmt.Errorf("bundle: create %s: %w", name, err)
		}
		return nil
	})
	if err != nil {
		return Manifest{}, err
	}

	prefix, err := w.t.manifestPrefix()
	if err != nil {
		return Manifest{}, err
	}
	if err := unwrap(root, w.t, prefix); err != nil {
		return Manifest{}, err
	}
	files := w.t.filesUnder(prefix)
	for _, d := range w.t.dirsUnder(prefix) {
		if err := root.Chmod(d, 0o755); err != nil {
			return Manifest{}, fmt.Errorf("bundle: chmod %s: %w", d, err)
		}
	}

	f, err := root.Open("manifest.json")
	if err != nil {
		return Manifest{}, fmt.Errorf("bundle: open manifest.json: %w", err)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxManifestSize+1))
	f.Close()
	if err != nil {
		return Manifest{}, fmt.Errorf("bundle: read manifest.json: %w", err)
	}
	return manifestFor(data, files)
}

// Inspect validates the bundle read from r as Extract would, without
// writing anything, and returns its manifest and its files (as Extract
// would lay them out, sorted). Only manifest.json contents are kept in
// memory.
func Inspect(r io.Reader, limits Limits) (Manifest, []string, error) {
	w := newWalker(limits)
	candidates := map[string][]byte{}
	var buffered int64
	err := w.walk(context.Background(), r, func(name string, h *tar.Header, body io.Reader) error {
		// Which manifest.json counts is known only at the end, when
		// the wrapping directories are; keep every one, within bounds.
		if path.Base(name) != "manifest.json" {
			_, err := io.Copy(io.Discard, body)
			return err
		}
		data, err := io.ReadAll(io.LimitReader(body, maxManifestSize+1))
		if err != nil {
			return err
		}
		buffered += int64(len(data))
		if buffered > 4*maxManifestSize {
			return tooLargef("bundle: holds more than %d MiB of manifest.json files", 4*maxManifestSize>>20)
		}
		candidates[name] = data
		return nil
	}, func(string) error { return nil })
	if err != nil {
		return Manifest{}, nil, err
	}
	prefix, err := w.t.manifestPrefix()
	if err != nil {
		return Manifest{}, nil, err
	}
	files := w.t.filesUnder(prefix)
	m, err := manifestFor(candidates[prefix+"manifest.json"], files)
	if err != nil {
		return Manifest{}, nil, err
	}
	return m, slices.Sorted(func(yield func(string) bool) {
		for f := range files {
			if !yield(f) {
				return
			}
		}
	}), nil
}

// manifestFor parses the bundle's manifest and checks the files it names
// against the bundle's files.
func manifestFor(data []byte, files map[string]bool) (Manifest, error) {
	if len(data) > maxManifestSize {
		return Manifest{}, tooLargef("manifest.json is larger than %d MiB", maxManifestSize>>20)
	}
	m, err := ParseManifest(data)
	if err != nil {
		return Manifest{}, err
	}
	if err := m.Resolve(func(name string) bool { return files[name] }); err != nil {
		return Manifest{}, err
	}
	return m, nil
}

// walker reads a bundle's entries, enforcing names, types and limits, and
// records the tree they make.
type walker struct {
	l     Limits
	t     *tree
	n     int
	total int64
	src   *sourceReader
	body  *bodyReader
}

func newWalker(l Limits) *walker {
	return &walker{l: l.withDefaults(), t: newTree()}
}

// walk calls onFile for each regular file (body yields exactly its bytes)
// and onDir for each directory entry, after checking them.
func (w *walker) walk(ctx context.Context, r io.Reader, onFile func(name string, h *tar.Header, body io.Reader) error, onDir func(name string) error) error {
	w.src = &sourceReader{r: r}
	gz, err := gzip.NewReader(w.src)
	if err != nil {
		if w.src.err != nil {
			return fmt.Errorf("bundle: read upload: %w", w.src.err)
		}
		if errors.Is(err, io.EOF) {
			return &InvalidError{Msg: "bundle is empty; upload a .tar.gz", Err: err}
		}
		return &InvalidError{Msg: "bundle is not a gzip-compressed tar archive (.tar.gz)", Err: err}
	}
	tr := tar.NewReader(gz)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return w.readErr(err)
		}
		if h.Typeflag == tar.TypeXGlobalHeader {
			continue // git archive's pax_global_header; no file of its own
		}
		w.n++
		if w.n > w.l.MaxFiles {
			return tooLargef("bundle has more than %d entries", w.l.MaxFiles)
		}
		if err := checkType(h); err != nil {
			return err
		}
		dir := h.Typeflag == tar.TypeDir
		name, err := entryName(h.Name, dir)
		if err != nil {
			return err
		}
		if dir {
			if name == "" {
				continue // "./": the bundle root itself
			}
			if err := w.t.addDir(name); err != nil {
				return err
			}
			if err := onDir(name); err != nil {
				return err
			}
			continue
		}
		if h.Size > w.l.MaxFileSize {
			return tooLargef("bundle: %q is %d bytes, over the %d-byte limit for one file", name, h.Size, w.l.MaxFileSize)
		}
		w.total += h.Size
		if w.total > w.l.MaxSize {
			return tooLargef("bundle unpacks to more than %d bytes", w.l.MaxSize)
		}
		if err := w.t.addFile(name); err != nil {
			return err
		}
		w.body = &bodyReader{ctx: ctx, r: tr}
		if err := onFile(name, h, w.body); err != nil {
			if w.body.err != nil {
				return w.readErr(w.body.err)
			}
			return err
		}
	}
	// Read on to the gzip trailer so its CRC and length are checked: a
	// corrupt or cut-off upload is refused even when the damage is past
	// the last file.
	if _, err := io.Copy(io.Discard, io.LimitReader(gz, trailerSlack)); err != nil {
		return w.readErr(err)
	}
	return nil
}

// readErr classifies an error met while reading the archive: the upload's
// own failure (a dropped connection, a body limit) is returned as is, a
// cancelled context as itself, anything else means the bytes are bad.
func (w *walker) readErr(err error) error {
	if w.src.err != nil {
		return fmt.Errorf("bundle: read upload: %w", w.src.err)
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return &InvalidError{Msg: "bundle is truncated: the archive ends in the middle", Err: err}
	}
	return &InvalidError{Msg: "bundle is not a valid .tar.gz: " + err.Error(), Err: err}
}

func checkType(h *tar.Header) error {
	switch h.Typeflag {
	case tar.TypeReg, tar.TypeDir, '\x00': // '\x00' is the pre-POSIX regular file
		return nil
	case tar.TypeSymlink:
		return invalidf("bundle: %q is a symbolic link (to %q); bundles may hold only files and directories", h.Name, h.Linkname)
	case tar.TypeLink:
		return invalidf("bundle: %q is a hard link (to %q); bundles may hold only files and directories", h.Name, h.Linkname)
	case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		return invalidf("bundle: %q is a device or named pipe; bundles may hold only files and directories", h.Name)
	}
	return invalidf("bundle: %q has tar entry type %q, which bundles may not use; they hold only files and directories", h.Name, h.Typeflag)
}

// entryName checks an archive name and returns it without "./" prefixes or
// a directory's trailing slash; "" is the root directory itself.
func entryName(raw string, dir bool) (string, error) {
	name := raw
	for strings.HasPrefix(name, "./") {
		name = name[2:]
	}
	if dir {
		name = strings.TrimSuffix(name, "/")
		if name == "" || name == "." {
			return "", nil
		}
	}
	switch {
	case name == "" || name == ".":
		return "", invalidf("bundle: an entry has no file name (%q)", raw)
	case strings.HasPrefix(name, "/"):
		return "", invalidf("bundle: %q is an absolute path; bundle paths must be relative", raw)
	case slices.Contains(strings.Split(name, "/"), ".."):
		return "", invalidf("bundle: %q has a \"..\" component; bundle paths must stay inside the bundle", raw)
	case strings.ContainsAny(name, "\\\x00"):
		return "", invalidf("bundle: %q has a backslash or NUL in its name; use / to separate directories", raw)
	case !utf8.ValidString(name):
		return "", invalidf("bundle: %q is not a UTF-8 file name", raw)
	case !fs.ValidPath(name):
		return "", invalidf("bundle: %q is not a clean relative path (empty or \".\" components)", raw)
	case len(name) > maxPathLen:
		return "", invalidf("bundle: a path is longer than %d bytes", maxPathLen)
	}
	for part := range strings.SplitSeq(name, "/") {
		if len(part) > maxNameLen {
			return "", invalidf("bundle: %q has a name longer than %d bytes", raw, maxNameLen)
		}
	}
	return name, nil
}

// tree is the set of paths an archive makes, for duplicate checks and for
// finding manifest.json.
type tree struct {
	files map[string]bool
	dirs  map[string]bool
	kids  map[string]map[string]bool // directory ("" is the root) → entry names
}

func newTree() *tree {
	return &tree{files: map[string]bool{}, dirs: map[string]bool{}, kids: map[string]map[string]bool{"": {}}}
}

// addParents records name's directories, refusing one that is a file.
func (t *tree) addParents(name string) error {
	parent, base := "", name
	for {
		i := strings.IndexByte(base, '/')
		if i < 0 {
			t.kids[parent][base] = true
			return nil
		}
		dir := path.Join(parent, base[:i])
		if t.files[dir] {
			return invalidf("bundle: %q is inside %q, which is a file", name, dir)
		}
		t.kids[parent][base[:i]] = true
		if !t.dirs[dir] {
			t.dirs[dir] = true
			t.kids[dir] = map[string]bool{}
		}
		parent, base = dir, base[i+1:]
	}
}

func (t *tree) addFile(name string) error {
	if t.files[name] || t.dirs[name] {
		return invalidf("bundle: %q appears more than once", name)
	}
	if err := t.addParents(name); err != nil {
		return err
	}
	t.files[name] = true
	return nil
}

func (t *tree) addDir(name string) error {
	if t.files[name] {
		return invalidf("bundle: %q appears more than once", name)
	}
	// A directory listed again, or after files in it, is harmless.
	if err := t.addParents(name); err != nil {
		return err
	}
	if !t.dirs[name] {
		t.dirs[name] = true
		t.kids[name] = map[string]bool{}
	}
	return nil
}

// manifestPrefix finds manifest.json the way Connect does: at the top, or
// under a chain of directories each of which is alone at its level
// (rsconnect-python bundle.py _find_manifest_member). It returns the chain
// as "a/b/", or "".
func (t *tree) manifestPrefix() (string, error) {
	dir := ""
	for {
		if t.files[path.Join(dir, "manifest.json")] {
			if dir == "" {
				return "", nil
			}
			return dir + "/", nil
		}
		kids := t.kids[dir]
		if len(kids) != 1 {
			break
		}
		var only string
		for k := range kids {
			only = k
		}
		next := path.Join(dir, only)
		if !t.dirs[next] {
			break
		}
		dir = next
	}
	if len(t.files) == 0 {
		return "", invalidf("bundle has no files; it needs at least manifest.json")
	}
	return "", invalidf("bundle has no manifest.json at its top level; create one with rsconnect write-manifest")
}

// filesUnder returns the files below prefix, with prefix removed.
func (t *tree) filesUnder(prefix string) map[string]bool {
	out := make(map[string]bool, len(t.files))
	for f := range t.files {
		if rest, ok := strings.CutPrefix(f, prefix); ok {
			out[rest] = true
		}
	}
	return out
}

// dirsUnder returns the directories below prefix, with prefix removed.
func (t *tree) dirsUnder(prefix string) []string {
	var out []string
	for d := range t.dirs {
		if rest, ok := strings.CutPrefix(d, prefix); ok && rest != "" {
			out = append(out, rest)
		}
	}
	return out
}

// unwrap moves the contents of the directory chain prefix ("a/b/") up to
// the root. The top of the chain is first renamed out of the way when one
// of the entries moving up has its name.
func unwrap(root *os.Root, t *tree, prefix string) error {
	if prefix == "" {
		return nil
	}
	inner := strings.TrimSuffix(prefix, "/")
	top, rest, _ := strings.Cut(inner, "/")
	kids := t.kids[inner]
	hold := top
	for i := 0; kids[hold]; i++ {
		hold = fmt.Sprintf(".unwrap-%d", i)
	}
	if hold != top {
		if err := root.Rename(top, hold); err != nil {
			return fmt.Errorf("bundle: unwrap %s: %w", top, err)
		}
	}
	from := path.Join(hold, rest)
	for _, k := range slices.Sorted(mapKeys(kids)) {
		if err := root.Rename(path.Join(from, k), k); err != nil {
			return fmt.Errorf("bundle: unwrap %s: %w", k, err)
		}
	}
	if err := root.RemoveAll(hold); err != nil {
		return fmt.Errorf("bundle: unwrap %s: %w", top, err)
	}
	return nil
}

func mapKeys(m map[string]bool) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

func readDirNames(root *os.Root, name string) ([]string, error) {
	d, err := root.Open(name)
	if err != nil {
		return nil, err
	}
	defer d.Close()
	return d.Readdirnames(-1)
}

// clearRoot removes everything inside root, leaving root itself.
func clearRoot(root *os.Root) error {
	names, err := readDirNames(root, ".")
	if err != nil {
		return err
	}
	var errs []error
	for _, n := range names {
		errs = append(errs, root.RemoveAll(n))
	}
	return errors.Join(errs...)
}

// sourceReader remembers the upload's own read error, to tell a broken
// connection from a broken archive.
type sourceReader struct {
	r   io.Reader
	err error
}

func (s *sourceReader) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if err != nil && err != io.EOF && s.err == nil {
		s.err = err
	}
	return n, err
}

// bodyReader reads one file's bytes, stops when ctx ends, and remembers a
// read error so the caller can tell it from a write error.
type bodyReader struct {
	ctx context.Context
	r   io.Reader
	err error
}

func (b *bodyReader) Read(p []byte) (int, error) {
	if err := b.ctx.Err(); err != nil {
		b.err = err
		return 0, err
	}
	n, err := b.r.Read(p)
	if err != nil && err != io.EOF {
		b.err = err
	}
	return n, err
}
