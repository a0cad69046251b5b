package packagemanager

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/atrium-suite/atrium/packagemanager/cran"
	"github.com/atrium-suite/atrium/packagemanager/store"
	"github.com/atrium-suite/atrium/shared/httpx"
	"github.com/atrium-suite/atrium/shared/storage"
)

// AddRPackage checks an R source package and adds it to a local-r source
// as one transaction. Nothing is stored unless every check passes.
func (s *Service) AddRPackage(ctx context.Context, sourceName, filename string, r io.Reader, who string) (store.RPackage, int64, error) {
	src, err := s.Store.Source(ctx, sourceName)
	if err != nil {
		return store.RPackage{}, 0, err
	}
	if src.Type != store.LocalR {
		return store.RPackage{}, 0, &InputError{Msg: fmt.Sprintf("source %s is a %s source; R packages go to a local-r source", src.Name, src.Type)}
	}
	f, sum, _, err := s.spool(r)
	if err != nil {
		return store.RPackage{}, 0, err
	}
	defer discard(f)
	pkg, err := cran.InspectSourcePackage(filename, f, cran.DefaultLimits())
	if err != nil {
		return store.RPackage{}, 0, err
	}
	entry, err := json.Marshal(pkg.Entry())
	if err != nil {
		return store.RPackage{}, 0, err
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return store.RPackage{}, 0, err
	}
	blob, err := s.Files.Put(ctx, f, storage.PutOptions{ExpectedDigest: "sha256:" + sum})
	if err != nil {
		return store.RPackage{}, 0, err
	}
	rp := store.RPackage{Package: pkg.Description.Package, Version: pkg.Description.Version, Filename: pkg.Filename,
		MD5: pkg.MD5, SHA256: pkg.SHA256, Size: pkg.Size, Entry: entry, Blob: blob.Digest}
	txn, err := s.Store.AddRPackage(ctx, src, rp, who)
	return rp, txn, err
}

// rIndex is the repository's packages at a snapshot: for each package its
// newest version is current (src/contrib), older ones are archived
// (src/contrib/Archive/{pkg}/), as on CRAN.
type rIndex struct {
	current  []cran.Entry
	files    map[string]store.RPackage // filename → package, current versions
	archived map[string]store.RPackage // "pkg/filename" → package
}

func (s *Service) rIndex(ctx context.Context, v view) (rIndex, error) {
	pkgs, err := s.Store.RPackages(ctx, v.repo, v.txn)
	if err != nil {
		return rIndex{}, err
	}
	newest := map[string]store.RPackage{}
	for _, p := range pkgs {
		if cur, ok := newest[p.Package]; !ok || cran.CompareVersions(p.Version, cur.Version) > 0 {
			newest[p.Package] = p
		}
	}
	idx := rIndex{files: map[string]store.RPackage{}, archived: map[string]store.RPackage{}}
	for _, p := range pkgs {
		if newest[p.Package].Filename == p.Filename {
			var e cran.Entry
			if err := json.Unmarshal(p.Entry, &e); err != nil {
				return rIndex{}, fmt.Errorf("entry of %s: %w", p.Filename, err)
			}
			idx.current = append(idx.current, e)
			idx.files[p.Filename] = p
		} else {
			idx.archived[p.Package+"/"+p.Filename] = p
		}
	}
	cran.SortEntries(idx.current)
	return idx, nil
}

// cran serves /{repo}/{snap}/src/contrib/….
func (s *Server) cran(c *gin.Context, v view, parts []string) {
	idx, err := s.svc.rIndex(c.Request.Context(), v)
	if err != nil {
		c.Error(err)
		return
	}
	// An index changes with each snapshot; files never do.
	cache := "public, max-age=60"
	if !v.latest {
		cache = "public, max-age=86400"
	}
	switch {
	case len(parts) == 1 && (parts[0] == "PACKAGES" || parts[0] == "PACKAGES.gz" || parts[0] == "PACKAGES.rds"):
		var buf strings.Builder
		var write func(io.Writer, []cran.Entry) error
		ctype := "text/plain; charset=utf-8"
		switch parts[0] {
		case "PACKAGES":
			write = cran.WritePACKAGES
		case "PACKAGES.gz":
			write, ctype = cran.WritePACKAGESGz, "application/x-gzip"
		default:
			write, ctype = cran.WritePACKAGESRDS, "application/octet-stream"
		}
		if err := write(&buf, idx.current); err != nil {
			c.Error(err)
			return
		}
		sum := sha256.Sum256([]byte(buf.String()))
		serveBytes(c, parts[0], ctype, hex.EncodeToString(sum[:16]), []byte(buf.String()), cache)
	case len(parts) == 1:
		p, ok := idx.files[parts[0]]
		if !ok {
			c.Error(httpx.NotFound("%s is not in %s at snapshot %s", parts[0], v.repo.Name, v.snap))
			return
		}
		s.serveBlob(c, p.Blob, p.Filename)
	case len(parts) == 3 && (parts[0] == "Archive" || parts[0] == "archive"):
		p, ok := idx.archived[parts[1]+"/"+parts[2]]
		if !ok {
			c.Error(httpx.NotFound("%s is not archived in %s at snapshot %s", parts[2], v.repo.Name, v.snap))
			return
		}
		s.serveBlob(c, p.Blob, p.Filename)
	default:
		c.Error(httpx.NotFound("no file at %s", c.Request.URL.Path))
	}
}

// apiUpload takes a package file for a source: the body is the file, or a
// multipart form with a "file" part. The filename comes from the part or
// the ?filename= query.
func (s *Server) apiUpload(c *gin.Context) {
	ctx := c.Request.Context()
	body, filename := io.Reader(c.Request.Body), c.Query("filename")
	if strings.HasPrefix(c.ContentType(), "multipart/") {
		fh, err := c.FormFile("file")
		if err != nil {
			c.Error(httpx.BadRequest("multipart upload needs a \"file\" part: %v", err))
			return
		}
		part, err := fh.Open()
		if err != nil {
			c.Error(err)
			return
		}
		defer part.Close()
		body, filename = part, fh.Filename
	}
	if filename == "" {
		c.Error(httpx.BadRequest("say the package's file name with ?filename= or a multipart \"file\" part"))
		return
	}
	src, err := s.svc.Store.Source(ctx, c.Param("source"))
	if err != nil {
		c.Error(errStatus(err))
		return
	}
	who := "api"
	if u, ok := currentUsername(c); ok {
		who = u
	}
	var res any
	if src.Type == store.LocalR {
		p, txn, err := s.svc.AddRPackage(ctx, src.Name, filename, body, who)
		if err != nil {
			c.Error(errStatus(err))
			return
		}
		res = gin.H{"source": src.Name, "package": p.Package, "version": p.Version, "filename": p.Filename, "transaction": txn}
	} else {
		f, txn, err := s.svc.AddPythonFile(ctx, src.Name, filename, body, Want{}, who)
		if err != nil {
			c.Error(errStatus(err))
			return
		}
		res = gin.H{"source": src.Name, "package": f.DisplayName, "version": f.Version, "filename": f.Filename, "transaction": txn}
	}
	c.JSON(http.StatusCreated, res)
}
