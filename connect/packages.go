package connect

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"errors"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/atrium-suite/atrium/shared/auth"
	"github.com/atrium-suite/atrium/shared/httpx"
	"github.com/atrium-suite/atrium/shared/pyname"
)

// The packages API: which Python packages each bundle runs with
// (posit-sdk's client.packages and content.packages). What is installed is
// read from the environment itself, so it is what the content imports,
// including what the requirements pulled in and what Connect added.

// pyPackage is one distribution installed in an environment.
type pyPackage struct {
	// Name is as PEP 503 normalizes it ("Flask" is "flask"), the form the
	// API reports, filters and sorts by: posit-sdk's find_by compares the
	// name it is given with the name returned, and Connect answers
	// name=flask with "flask" whatever the distribution calls itself.
	Name    string
	Version string
}

// recordEnvironment keeps what the packages API reports of env, which the
// caller holds (pythonEnv's read lock): its packages, read from it when it
// was just built or none are recorded (built before they were), and, for a
// bundle's start (bundleID not 0), that bundleID of content guid runs in
// it. A server starting its content again reads no site-packages.
func (s *Server) recordEnvironment(ctx context.Context, env pyEnv, guid string, bundleID int64) error {
	known := false
	if !env.built {
		var err error
		if known, err = s.st.envPackagesKnown(ctx, env.key); err != nil {
			return err
		}
	}
	if !known {
		pkgs, err := readPackages(env.path)
		if err != nil {
			return err
		}
		if err := s.st.setEnvPackages(ctx, env.key, pkgs); err != nil {
			return err
		}
	}
	if bundleID == 0 {
		return nil
	}
	return s.st.recordBundleEnv(ctx, guid, bundleID, env)
}

// readPackages lists the distributions installed in the virtualenv at env:
// the Name and Version of every *.dist-info/METADATA (and, for packages
// installed the old way, *.egg-info/PKG-INFO) in its site-packages, by
// name. An entry without both is skipped.
func readPackages(env string) ([]pyPackage, error) {
	var files []string
	for _, pattern := range []string{"*.dist-info/METADATA", "*.egg-info/PKG-INFO"} {
		found, err := filepath.Glob(filepath.Join(env, "lib", "python*", "site-packages", pattern))
		if err != nil {
			return nil, err
		}
		files = append(files, found...)
	}
	pkgs := []pyPackage{}
	seen := map[string]bool{}
	for _, f := range files {
		p, err := readMetadata(f)
		if errors.Is(err, fs.ErrNotExist) {
			continue // removed meanwhile
		} else if err != nil {
			return nil, err
		}
		p.Name = pyname.Normalize(p.Name)
		if p.Name == "" || p.Version == "" || seen[p.Name] {
			continue
		}
		seen[p.Name] = true
		pkgs = append(pkgs, p)
	}
	slices.SortFunc(pkgs, func(a, b pyPackage) int { return cmp.Compare(a.Name, b.Name) })
	return pkgs, nil
}

// readMetadata reads Name and Version from the headers of a core metadata
// file (RFC 822 style: the headers end at the first empty line, the
// description follows).
func readMetadata(path string) (pyPackage, error) {
	f, err := os.Open(path)
	if err != nil {
		return pyPackage{}, err
	}
	defer f.Close()
	return parseMetadata(f)
}

// parseMetadata reads Name and Version from metadata headers.
func parseMetadata(r io.Reader) (pyPackage, error) {
	var p pyPackage
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	sc.Split(scanAnyLines)
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			break
		}
		name, value, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		switch strings.ToLower(name) {
		case "name":
			if p.Name == "" {
				p.Name = strings.TrimSpace(value)
			}
		case "version":
			if p.Version == "" {
				p.Version = strings.TrimSpace(value)
			}
		}
		if p.Name != "" && p.Version != "" {
			break
		}
	}
	return p, sc.Err()
}

// scanAnyLines splits at "\n", "\r\n" and a lone "\r", all line ends to
// Python's email parser, which wrote and reads these files: a value never
// carries a carriage return.
func scanAnyLines(data []byte, atEOF bool) (int, []byte, error) {
	i := bytes.IndexAny(data, "\r\n")
	switch {
	case i < 0 && atEOF && len(data) > 0:
		return len(data), data, nil
	case i < 0:
		return 0, nil, nil
	case data[i] == '\n':
		return i + 1, data[:i], nil
	case i+1 < len(data):
		if data[i+1] == '\n' {
			return i + 2, data[:i], nil
		}
		return i + 1, data[:i], nil
	case atEOF:
		return i + 1, data[:i], nil
	}
	return 0, nil, nil // a "\r" at the end of what was read: is "\n" next?
}

// packageFilter is the query of the packages APIs. An empty field does not
// filter.
type packageFilter struct {
	language, name, version, hash string
	bundleID, appGUID             string
}

func packageFilterOf(c *gin.Context) packageFilter {
	f := packageFilter{
		language: c.Query("language"),
		name:     pyname.Normalize(c.Query("name")),
		version:  c.Query("version"),
		hash:     c.Query("hash"),
		bundleID: c.Query("bundle_id"),
		appGUID:  c.Query("app_guid"),
	}
	// Content is known by its GUID here; app_id is Connect's numeric id,
	// which this server gives as the GUID too (content's "id").
	if id := c.Query("app_id"); id != "" {
		if f.appGUID != "" && f.appGUID != id {
			f.appGUID = "\x00" // both given, and different: nothing matches
		} else {
			f.appGUID = id
		}
	}
	return f
}

// match reports whether p passes the filter. Names match in normalized
// form; Python packages have no hash, so a hash filter matches none.
func (f packageFilter) match(p bundlePackage) bool {
	return (f.language == "" || strings.EqualFold(f.language, p.Language)) &&
		(f.name == "" || f.name == p.Name) &&
		(f.version == "" || f.version == p.Version) &&
		f.hash == "" &&
		(f.bundleID == "" || f.bundleID == bundleIDString(p.BundleID)) &&
		(f.appGUID == "" || f.appGUID == p.ContentGUID)
}

// contentPackageJSON is an item of GET /v1/content/{guid}/packages.
func contentPackageJSON(p bundlePackage) gin.H {
	return gin.H{
		"language":         p.Language,
		"language_version": p.LanguageVersion,
		"name":             p.Name,
		"version":          p.Version,
		"hash":             nil,
	}
}

// packageJSON is an item of GET /v1/packages: the content package and
// where it is used.
func packageJSON(p bundlePackage) gin.H {
	j := contentPackageJSON(p)
	j["bundle_id"] = bundleIDString(p.BundleID)
	j["app_id"] = p.ContentGUID
	j["app_guid"] = p.ContentGUID
	return j
}

// listContentPackages is GET /v1/content/{guid}/packages: the packages of
// the active bundle's environment (none before a deploy, or for static
// content), filtered by language, name, version and hash. Whoever may view
// the content may list them.
func (s *Server) listContentPackages(c *gin.Context) {
	ct, _, ok := s.viewable(c)
	if !ok {
		return
	}
	out := []gin.H{}
	if ct.ActiveBundleID != 0 {
		pkgs, err := s.st.bundlePackages(c.Request.Context(), ct.GUID, ct.ActiveBundleID)
		if err != nil {
			c.Error(httpx.Internal(err))
			return
		}
		f := packageFilterOf(c)
		f.bundleID, f.appGUID = "", ""
		for _, p := range pkgs {
			if f.match(p) {
				out = append(out, contentPackageJSON(p))
			}
		}
	}
	c.JSON(http.StatusOK, out)
}

// A page of /v1/packages holds at most maxPageSize packages. posit-sdk
// asks for 1000000 at once; a larger page_size is served as that many, and
// the client asks for the next page until it has the total.

// listPackages is GET /v1/packages: the packages of every bundle with an
// environment, of the content the caller may see (admins: all), filtered
// by language, name, version, hash, bundle_id, app_id and app_guid, in
// pages ({results, current_page, total}).
func (s *Server) listPackages(c *gin.Context) {
	page, size, ok := pagingOf(c, maxPageSize, true)
	if !ok {
		return
	}
	u, _ := auth.CurrentUser(c)
	ctx := c.Request.Context()
	all, err := s.st.allPackages(ctx)
	if err != nil {
		c.Error(httpx.Internal(err))
		return
	}
	var visible map[string]bool
	if !isAdmin(u) {
		list, _, err := s.st.listViewableContent(ctx, "", "", u)
		if err != nil {
			c.Error(httpx.Internal(err))
			return
		}
		visible = make(map[string]bool, len(list))
		for _, ct := range list {
			visible[ct.GUID] = true
		}
	}
	f := packageFilterOf(c)
	out := []gin.H{}
	for _, p := range all {
		if (visible == nil || visible[p.ContentGUID]) && f.match(p) {
			out = append(out, packageJSON(p))
		}
	}
	c.JSON(http.StatusOK, pageJSON(out, page, size))
}
