package packagemanager

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	"golang.org/x/sync/singleflight"

	"github.com/atrium-suite/atrium/packagemanager/cran"
	"github.com/atrium-suite/atrium/packagemanager/mirror"
	"github.com/atrium-suite/atrium/packagemanager/pypi"
	"github.com/atrium-suite/atrium/packagemanager/store"
	"github.com/atrium-suite/atrium/shared/h1"
	"github.com/atrium-suite/atrium/shared/httpx"
	"github.com/atrium-suite/atrium/shared/pyname"
	"github.com/atrium-suite/atrium/shared/storage"
)

// sortVersions orders versions newest first by the repository type's rules.
func sortVersions(repoType string, vs []string) {
	cmp := pypi.CompareVersions
	if repoType == store.R {
		cmp = cran.CompareVersions
	}
	sort.SliceStable(vs, func(i, j int) bool { return cmp(vs[i], vs[j]) > 0 })
}

// Want is what an uploader says it sends; empty fields are not checked.
type Want struct {
	SHA256, Name, Version string
}

// AddPythonFile checks a wheel or sdist and adds it to a local-python
// source as one transaction. Nothing is stored unless every check passes,
// including that the file is what the uploader said it was.
func (s *Service) AddPythonFile(ctx context.Context, sourceName, filename string, r io.Reader, want Want, who string) (store.PyFile, int64, error) {
	src, err := s.Store.Source(ctx, sourceName)
	if err != nil {
		return store.PyFile{}, 0, err
	}
	if src.Type != store.LocalPython {
		return store.PyFile{}, 0, &InputError{Msg: fmt.Sprintf("source %s is a %s source; uploads go to a local-python source", src.Name, src.Type)}
	}
	f, sum, size, err := s.spool(r)
	if err != nil {
		return store.PyFile{}, 0, err
	}
	defer discard(f)
	if want.SHA256 != "" && !strings.EqualFold(want.SHA256, sum) {
		return store.PyFile{}, 0, &InputError{Msg: "sha256 digest does not match the uploaded file"}
	}
	dist, err := pypi.Inspect(filename, f, size)
	if err != nil {
		return store.PyFile{}, 0, err
	}
	project := pyname.Normalize(dist.Name)
	if want.Name != "" && pyname.Normalize(want.Name) != project {
		return store.PyFile{}, 0, &InputError{Msg: fmt.Sprintf("the upload says name %q but the file's metadata says %q", want.Name, dist.Name)}
	}
	if want.Version != "" && pypi.NormalizeVersion(want.Version) != pypi.NormalizeVersion(dist.Version) {
		return store.PyFile{}, 0, &InputError{Msg: fmt.Sprintf("the upload says version %q but the file's metadata says %q", want.Version, dist.Version)}
	}
	// Refuse a reused file name before storing anything.
	existing, err := s.Store.PythonFilesOf(ctx, src, project)
	if err != nil {
		return store.PyFile{}, 0, err
	}
	for _, e := range existing {
		if e.Filename == dist.Filename && e.SHA256 != sum {
			return store.PyFile{}, 0, &InputError{Msg: fmt.Sprintf("File already exists: %s has %s with other content, and a file name is never reused", src.Name, dist.Filename)}
		}
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return store.PyFile{}, 0, err
	}
	blob, err := s.Files.Put(ctx, f, storage.PutOptions{ExpectedDigest: "sha256:" + sum})
	if err != nil {
		return store.PyFile{}, 0, err
	}
	pf := store.PyFile{Project: project, DisplayName: dist.Name, Version: dist.Version, Filename: dist.Filename,
		SHA256: sum, Size: size, RequiresPython: dist.RequiresPython, UploadTime: s.now().UTC(), Blob: blob.Digest}
	if dist.HasCoreMetadataFile() {
		mb, err := s.Files.Put(ctx, bytes.NewReader(dist.Metadata), storage.PutOptions{})
		if err != nil {
			return store.PyFile{}, 0, err
		}
		// PEP 658: the hash is the metadata file's own, not the wheel's.
		h := sha256.Sum256(dist.Metadata)
		pf.MetadataSHA256, pf.MetadataBlob = hex.EncodeToString(h[:]), mb.Digest
	}
	txn, _, err := s.Store.AddPythonFiles(ctx, src, []store.PyFile{pf}, "upload", who)
	return pf, txn, err
}

// mirrors holds one fetcher per upstream, so concurrent requests share
// downloads.
type mirrors struct {
	mu       sync.Mutex
	fetchers map[string]*mirror.Fetcher
	refresh  singleflight.Group
}

func (s *Service) fetcher(src store.Source) *mirror.Fetcher {
	s.mirrors.mu.Lock()
	defer s.mirrors.mu.Unlock()
	if s.mirrors.fetchers == nil {
		s.mirrors.fetchers = map[string]*mirror.Fetcher{}
	}
	f := s.mirrors.fetchers[src.UpstreamURL]
	if f == nil {
		f = &mirror.Fetcher{Upstream: mirror.Upstream{BaseURL: src.UpstreamURL}, Store: s.Files}
		s.mirrors.fetchers[src.UpstreamURL] = f
	}
	return f
}

// refreshMirror asks upstream about project when the cached listing is
// older than packagemanager.mirror_refresh, and records new files as a transaction of the
// mirror source. When upstream cannot be reached, the cached listing is
// served: a mirror that dies with its upstream would be no mirror.
func (s *Service) refreshMirror(ctx context.Context, src store.Source, project string) {
	at, _, ok, err := s.Store.MirrorFetched(ctx, src, project)
	if err != nil || (ok && s.now().Sub(at) < s.cfg.PackageManager.MirrorRefresh.D()) {
		return
	}
	s.mirrors.refresh.Do(src.ID+"/"+project, func() (any, error) {
		p, err := s.fetcher(src).FetchProject(ctx, project)
		if errors.Is(err, mirror.ErrNotFound) {
			return nil, s.Store.SetMirrorFetched(ctx, src, project, false)
		}
		if err != nil {
			s.log.Warn("upstream index unavailable; serving what is cached", "source", src.Name, "project", project, "err", err)
			return nil, nil
		}
		var files []store.PyFile
		for _, uf := range p.Files {
			version, ok := fileVersion(uf.Filename)
			if uf.SHA256 == "" || !ok {
				continue // without a digest a file cannot be content-addressed or checked
			}
			files = append(files, store.PyFile{Project: project, DisplayName: p.Name, Version: version, Filename: uf.Filename,
				SHA256: uf.SHA256, Size: uf.Size, RequiresPython: uf.RequiresPython, Yanked: uf.Yanked, YankedReason: uf.YankedReason,
				MetadataSHA256: metadataSHA(uf), UploadTime: uploadTime(uf, s.now()), UpstreamURL: uf.URL, UpstreamMeta: uf.CoreMetadata})
		}
		if _, _, err := s.Store.AddPythonFiles(ctx, src, files, "sync", project); err != nil {
			s.log.Warn("recording upstream files", "source", src.Name, "project", project, "err", err)
		}
		return nil, s.Store.SetMirrorFetched(ctx, src, project, true)
	})
}

func metadataSHA(f mirror.File) string {
	if f.CoreMetadata {
		return f.CoreMetadataSHA256
	}
	return ""
}

func uploadTime(f mirror.File, now time.Time) time.Time {
	if f.UploadTime.IsZero() {
		return now.UTC()
	}
	return f.UploadTime
}

// fileVersion reads the version from a wheel or sdist file name.
func fileVersion(filename string) (string, bool) {
	if w, err := pypi.ParseWheelFilename(filename); err == nil {
		return w.Version, true
	}
	if sd, err := pypi.ParseSdistFilename(filename); err == nil {
		return sd.Version, true
	}
	return "", false
}

// projectTxn resolves the transaction a project page is served at: for
// "latest" it first refreshes mirror sources (which may add a transaction),
// unless an earlier local source has the project.
func (s *Service) projectTxn(ctx context.Context, v view, project string) (int64, error) {
	if !v.latest {
		return v.txn, nil
	}
	for _, src := range v.repo.Sources {
		if src.Type != store.PyPIMirror {
			if files, err := s.Store.PythonFilesOf(ctx, src, project); err == nil && len(files) > 0 {
				break // an earlier local source has it: upstream is not asked
			}
			continue
		}
		s.refreshMirror(ctx, src, project)
		break
	}
	return s.Store.Latest(ctx)
}

// simple serves the PEP 503/691 Simple API under /{repo}/{snap}/simple/.
func (s *Server) simple(c *gin.Context, v view, parts []string) {
	format, ctype, ok := pypi.Negotiate(c.GetHeader("Accept"))
	c.Header("Vary", "Accept")
	if !ok {
		c.Error(httpx.Errorf(http.StatusNotAcceptable, "this index serves application/vnd.pypi.simple.v1+json and text/html"))
		return
	}
	page, redirect, err := s.simplePage(c.Request.Context(), v, parts, format)
	switch {
	case err != nil:
		c.Error(err)
	case redirect != "":
		// PEP 503: one URL per project, with the trailing slash.
		c.Redirect(http.StatusMovedPermanently, redirect)
	default:
		serveBytes(c, "index", ctype, page.etag, page.body, indexCache(v))
	}
}

// indexCache is an index page's Cache-Control: a snapshot never changes.
func indexCache(v view) string {
	if v.latest {
		return "public, max-age=60"
	}
	return "public, max-age=86400"
}

// simplePage returns the Simple API page at parts (after /simple/) in
// format, from the page cache or rendered into it, or where a project's
// page is to be found (a normalized name, the trailing slash).
func (s *Server) simplePage(ctx context.Context, v view, parts []string, format pypi.Format) (cachedPage, string, error) {
	var key string
	var render func(*bytes.Buffer) error
	switch {
	case len(parts) == 1 && parts[0] == "": // /simple/
		key = fmt.Sprintf("%s|%d|index|%d", v.repo.ID, v.txn, format)
		render = func(buf *bytes.Buffer) error {
			names, err := s.svc.Store.PythonProjects(ctx, v.repo, v.txn)
			if err != nil {
				return err
			}
			return pypi.WriteIndex(buf, format, names)
		}
	case len(parts) == 1 || (len(parts) == 2 && parts[1] == ""):
		name := parts[0]
		if norm := pyname.Normalize(name); norm != name || len(parts) == 1 {
			return cachedPage{}, v.base() + "/simple/" + norm + "/", nil
		}
		txn, err := s.svc.projectTxn(ctx, v, name)
		if err != nil {
			return cachedPage{}, "", err
		}
		// The snapshot part of the URL is in the key too: file URLs in the
		// page carry it.
		key = fmt.Sprintf("%s|%d|%s|project|%s|%d", v.repo.ID, txn, v.snap, name, format)
		render = func(buf *bytes.Buffer) error {
			_, files, err := s.svc.Store.PythonProject(ctx, v.repo, txn, name)
			if err != nil {
				return err
			}
			return pypi.WriteProject(buf, format, toProject(v, files))
		}
	default:
		return cachedPage{}, "", httpx.NotFound("no page at %s/simple/%s", v.base(), strings.Join(parts, "/"))
	}
	if page, ok := s.pages.get(key); ok {
		return page, "", nil
	}
	var buf bytes.Buffer
	if err := render(&buf); err != nil {
		return cachedPage{}, "", errStatus(err)
	}
	sum := sha256.Sum256(buf.Bytes())
	page := cachedPage{key: key, body: buf.Bytes(), etag: hex.EncodeToString(sum[:16])}
	s.pages.put(page)
	return page, "", nil
}

// simpleFast serves Simple API pages on the server's fast path
// (httpx.HandleFast): pip and uv ask for one per package they resolve.
// Whatever is not a plain GET or HEAD of a page that exists — redirects,
// errors, conditional or range requests, anything else under the
// repository — is left to the routes, which answer it.
func (s *Server) simpleFast(w http.ResponseWriter, r *h1.Request) bool {
	if r.Method != http.MethodGet && r.Method != http.MethodHead || strings.ContainsRune(r.Path, '%') {
		return false
	}
	// /{repo}/{snap}/simple/…
	parts := strings.Split(strings.TrimPrefix(r.Path, "/"), "/")
	if len(parts) < 4 || parts[2] != "simple" {
		return false
	}
	for _, h := range [...]string{"If-None-Match", "If-Modified-Since", "If-Match", "If-Unmodified-Since", "Range", "If-Range"} {
		if _, ok := r.Header(h); ok {
			return false // http.ServeContent's to answer
		}
	}
	accept, _ := r.Header("Accept")
	format, ctype, ok := pypi.Negotiate(accept)
	if !ok {
		return false
	}
	ctx := r.Ctx
	v, err := s.view(ctx, parts[0], parts[1])
	if err != nil || v.repo.Type != store.Python {
		return false
	}
	page, redirect, err := s.simplePage(ctx, v, parts[3:], format)
	if err != nil || redirect != "" {
		return false
	}
	h := w.Header()
	h["Vary"] = []string{"Accept"}
	h["Etag"] = []string{`"` + page.etag + `"`}
	h["Content-Type"] = []string{ctype}
	h["Cache-Control"] = []string{indexCache(v)}
	h["Accept-Ranges"] = []string{"bytes"}
	h["Content-Length"] = []string{strconv.Itoa(len(page.body))}
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodGet {
		_, _ = w.Write(page.body)
	}
	return true
}

func toProject(v view, files []store.PyFile) pypi.Project {
	p := pypi.Project{}
	seen := map[string]bool{}
	for _, f := range files {
		p.Name = f.DisplayName
		p.Files = append(p.Files, pypi.File{
			Filename: f.Filename, URL: v.base() + "/packages/" + f.SHA256 + "/" + f.Filename, SHA256: f.SHA256,
			RequiresPython: f.RequiresPython, Yanked: f.Yanked, YankedReason: f.YankedReason,
			CoreMetadataSHA256: f.MetadataSHA256, Size: f.Size, UploadTime: f.UploadTime,
		})
		if !seen[f.Version] {
			seen[f.Version] = true
			p.Versions = append(p.Versions, f.Version)
		}
	}
	sort.Slice(p.Versions, func(i, j int) bool { return pypi.CompareVersions(p.Versions[i], p.Versions[j]) < 0 })
	return p
}

// pythonFile serves /{repo}/{snap}/packages/{sha256}/{filename}[.metadata],
// downloading a mirrored file from upstream on first request.
func (s *Server) pythonFile(c *gin.Context, v view, sha, filename string) {
	ctx := c.Request.Context()
	name, metadata := strings.CutSuffix(filename, ".metadata")
	src, f, err := s.svc.Store.PythonFile(ctx, v.repo, v.txn, sha, name)
	if err != nil {
		c.Error(errStatus(err))
		return
	}
	if metadata && f.MetadataSHA256 == "" {
		c.Error(httpx.NotFound("%s has no metadata file", name))
		return
	}
	digest := f.Blob
	if metadata {
		digest = f.MetadataBlob
	}
	if digest == "" && src.Type == store.PyPIMirror {
		uf := mirror.File{Filename: f.Filename, URL: f.UpstreamURL, SHA256: f.SHA256, CoreMetadata: f.UpstreamMeta, CoreMetadataSHA256: f.MetadataSHA256, Size: f.Size}
		var blob storage.Blob
		if metadata {
			blob, err = s.svc.fetcher(src).DownloadMetadata(ctx, uf)
		} else {
			blob, err = s.svc.fetcher(src).Download(ctx, uf)
		}
		if err != nil {
			c.Error(&httpx.Error{Status: http.StatusBadGateway, Msg: fmt.Sprintf("%s is not cached here and the upstream index cannot provide it now", filename), Err: err})
			return
		}
		digest = blob.Digest
		b, mb := digest, ""
		if metadata {
			b, mb = "", digest
		}
		if err := s.svc.Store.SetPythonBlobs(ctx, src.ID, f.Filename, b, mb); err != nil {
			s.Log.Warn("recording a downloaded file", "file", f.Filename, "err", err)
		}
	}
	if digest == "" {
		c.Error(httpx.NotFound("%s is listed but has no stored file", filename))
		return
	}
	s.serveBlob(c, digest, filename)
}

// uploadPython is the legacy upload API twine speaks
// (POST /upload/{source}/, multipart, :action=file_upload).
func (s *Server) uploadPython(c *gin.Context) {
	tmp, err := s.svc.tempFile()
	if err != nil {
		c.Error(err)
		return
	}
	defer discard(tmp)
	up, err := pypi.ParseUpload(c.Request, s.svc.MaxUpload, pypi.WriterSink(tmp))
	if err != nil {
		c.Error(errStatus(err))
		return
	}
	if _, err := tmp.Seek(0, io.SeekStart); err != nil {
		c.Error(err)
		return
	}
	who, _ := currentUsername(c)
	want := Want{SHA256: up.SHA256, Name: up.Name, Version: up.Version}
	if _, _, err := s.svc.AddPythonFile(c.Request.Context(), c.Param("source"), up.Filename, tmp, want, who); err != nil {
		c.Error(errStatus(err))
		return
	}
	c.String(http.StatusOK, "OK\n")
}
