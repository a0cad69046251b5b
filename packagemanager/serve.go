package packagemanager

import (
	"bytes"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/atrium-suite/atrium/shared/httpx"
	"github.com/atrium-suite/atrium/shared/storage"
)

// serveBlob sends a stored file with what clients and caches expect of a
// package file: its sha256 as ETag (If-None-Match answers 304), Range
// requests (uv reads wheel metadata that way), HEAD, and a long cache
// lifetime, since a file's content never changes under its name.
func (s *Server) serveBlob(c *gin.Context, digest, name string) {
	f, blob, err := s.Files.Open(digest)
	if errors.Is(err, storage.ErrNotFound) {
		c.Error(httpx.NotFound("%s is listed but its file is missing from the data dir", name))
		return
	}
	if err != nil {
		c.Error(err)
		return
	}
	defer f.Close()
	hexd, _ := storage.ParseDigest(blob.Digest)
	c.Header("ETag", `"`+hexd+`"`)
	c.Header("Cache-Control", "public, max-age=31536000, immutable")
	c.Header("Content-Type", contentType(name))
	http.ServeContent(c.Writer, c.Request, name, time.Time{}, f)
}

// serveBytes sends a generated index with an ETag of its content, so
// clients that revalidate get 304 when nothing changed.
func serveBytes(c *gin.Context, name, ctype, etag string, b []byte, cache string) {
	c.Header("ETag", `"`+etag+`"`)
	c.Header("Content-Type", ctype)
	c.Header("Cache-Control", cache)
	http.ServeContent(c.Writer, c.Request, name, time.Time{}, bytes.NewReader(b))
}

func contentType(name string) string {
	switch {
	case strings.HasSuffix(name, ".whl"), strings.HasSuffix(name, ".zip"):
		return "application/zip"
	case strings.HasSuffix(name, ".tar.gz"), strings.HasSuffix(name, ".tgz"):
		return "application/x-gzip"
	case strings.HasSuffix(name, ".metadata"):
		return "text/plain; charset=utf-8"
	}
	return "application/octet-stream"
}
