package connect

import (
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"os"
	"path/filepath"
	"strconv"

	"github.com/gin-gonic/gin"

	"github.com/atrium-suite/atrium/connect/bundle"
	"github.com/atrium-suite/atrium/shared/httpx"
	"github.com/atrium-suite/atrium/shared/storage"
)

func (s *Server) bundleJSON(b Bundle, active int64) gin.H {
	md := map[string]any{}
	_ = json.Unmarshal([]byte(b.Metadata), &md)
	for _, k := range []string{"source", "source_repo", "source_branch", "source_commit"} {
		if _, ok := md[k]; !ok {
			md[k] = nil
		}
	}
	md["archive_md5"] = b.ArchiveMD5
	md["archive_sha1"] = nil
	var py any
	if m, err := bundle.ParseManifest([]byte(b.Manifest)); err == nil && m.Python != nil && m.Python.Version != "" {
		py = m.Python.Version
	}
	return gin.H{
		"id":             bundleIDString(b.ID),
		"content_guid":   b.ContentGUID,
		"created_time":   timeJSON(b.CreatedAt),
		"cluster_name":   "Local",
		"image_name":     nil,
		"r_version":      nil,
		"py_version":     py,
		"quarto_version": nil,
		"active":         b.ID == active,
		"size":           b.Size,
		"metadata":       md,
	}
}

// uploadBundle takes the bundle as the raw body (rsconnect streams it
// chunked without a Content-Type; posit-sdk sends bytes; Publisher says
// application/gzip) or as multipart/form-data with an "archive" file and a
// "metadata" JSON string (rsconnect with git metadata). The archive is
// checked as a deploy would extract it before anything is stored.
func (s *Server) uploadBundle(c *gin.Context) {
	ct, u, ok := s.visible(c)
	if !ok {
		return
	}
	ctx := c.Request.Context()
	tmp, err := os.CreateTemp(s.tmpDir, "upload-*")
	if err != nil {
		c.Error(httpx.Internal(err))
		return
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()

	h := md5.New()
	metadata := "{}"
	got := false
	mediaType, params, _ := mime.ParseMediaType(c.GetHeader("Content-Type"))
	if mediaType == "multipart/form-data" {
		mr := multipart.NewReader(c.Request.Body, params["boundary"])
		for {
			part, err := mr.NextPart()
			if err == io.EOF {
				break
			} else if err != nil {
				c.Error(uploadErr(err))
				return
			}
			switch part.FormName() {
			case "archive":
				if _, err := io.Copy(io.MultiWriter(tmp, h), part); err != nil {
					c.Error(uploadErr(err))
					return
				}
				got = true
			case "metadata":
				raw, err := io.ReadAll(io.LimitReader(part, 1<<20))
				if err != nil {
					c.Error(uploadErr(err))
					return
				}
				var md map[string]any
				if err := json.Unmarshal(raw, &md); err != nil {
					c.Error(badRequest("the metadata field must be a JSON object: %v", err))
					return
				}
				clean, _ := json.Marshal(md)
				metadata = string(clean)
			}
			part.Close()
		}
		if !got {
			c.Error(badRequest("the multipart upload has no archive field"))
			return
		}
	} else if _, err := io.Copy(io.MultiWriter(tmp, h), c.Request.Body); err != nil {
		c.Error(uploadErr(err))
		return
	}

	if _, err := tmp.Seek(0, io.SeekStart); err != nil {
		c.Error(httpx.Internal(err))
		return
	}
	m, _, err := bundle.Inspect(tmp, bundle.Limits{})
	if err != nil {
		c.Error(bundleErr(err))
		return
	}
	manifest, _ := json.Marshal(m)
	if _, err := tmp.Seek(0, io.SeekStart); err != nil {
		c.Error(httpx.Internal(err))
		return
	}
	blob, err := s.Files.Put(ctx, tmp, storage.PutOptions{})
	if err != nil {
		c.Error(httpx.Internal(fmt.Errorf("store bundle: %w", err)))
		return
	}
	b, err := s.st.createBundle(ctx, Bundle{ContentGUID: ct.GUID, Digest: blob.Digest, Size: blob.Size,
		ArchiveMD5: hex.EncodeToString(h.Sum(nil)), AppMode: string(m.Metadata.AppMode),
		Manifest: string(manifest), Metadata: metadata, OwnerID: u.ID})
	if err != nil {
		c.Error(httpx.Internal(err))
		return
	}
	c.JSON(http.StatusOK, s.bundleJSON(b, ct.ActiveBundleID))
}

// uploadErr keeps a too-large body a 413 and a broken upload a 400.
func uploadErr(err error) error {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return err
	}
	return badRequest("reading the upload failed: %v", err)
}

// bundleErr maps bundle's rejections to 400 (413 for limits).
func bundleErr(err error) error {
	var ie *bundle.InvalidError
	if errors.As(err, &ie) {
		status := http.StatusBadRequest
		if errors.Is(err, bundle.ErrTooLarge) {
			status = http.StatusRequestEntityTooLarge
		}
		return apiError(status, codeBadRequest, "invalid bundle: %s", ie.Msg)
	}
	return httpx.Internal(err)
}

// bundleOf loads the bundle named in the path of visible content.
func (s *Server) bundleOf(c *gin.Context) (Content, Bundle, bool) {
	ct, _, ok := s.visible(c)
	if !ok {
		return ct, Bundle{}, false
	}
	id, ok := parseBundleID(c.Param("id"))
	if !ok {
		c.Error(notFound("bundle"))
		return ct, Bundle{}, false
	}
	b, err := s.st.bundle(c.Request.Context(), ct.GUID, id)
	if errors.Is(err, errNotFound) {
		c.Error(notFound("bundle"))
		return ct, b, false
	} else if err != nil {
		c.Error(httpx.Internal(err))
		return ct, b, false
	}
	return ct, b, true
}

func (s *Server) listBundles(c *gin.Context) {
	ct, _, ok := s.visible(c)
	if !ok {
		return
	}
	list, err := s.st.listBundles(c.Request.Context(), ct.GUID)
	if err != nil {
		c.Error(httpx.Internal(err))
		return
	}
	out := make([]gin.H, 0, len(list))
	for _, b := range list {
		out = append(out, s.bundleJSON(b, ct.ActiveBundleID))
	}
	c.JSON(http.StatusOK, out)
}

func (s *Server) getBundle(c *gin.Context) {
	ct, b, ok := s.bundleOf(c)
	if ok {
		c.JSON(http.StatusOK, s.bundleJSON(b, ct.ActiveBundleID))
	}
}

func (s *Server) deleteBundle(c *gin.Context) {
	ct, b, ok := s.bundleOf(c)
	if !ok {
		return
	}
	if b.ID == ct.ActiveBundleID {
		c.Error(apiError(http.StatusConflict, codeConflict, "bundle %d is the active bundle; deploy another one first", b.ID))
		return
	}
	ctx := c.Request.Context()
	if err := s.st.deleteBundle(ctx, ct.GUID, b.ID); err != nil {
		c.Error(httpx.Internal(err))
		return
	}
	if used, err := s.st.digestInUse(ctx, b.Digest); err == nil && !used {
		if err := s.Files.Delete(b.Digest); err != nil && !errors.Is(err, storage.ErrNotFound) {
			s.Log.Warn("delete bundle blob", "digest", b.Digest, "err", err)
		}
	}
	os.RemoveAll(filepath.Join(s.appsDir, ct.GUID, bundleIDString(b.ID)))
	c.Status(http.StatusNoContent)
}

func (s *Server) downloadBundle(c *gin.Context) {
	_, b, ok := s.bundleOf(c)
	if !ok {
		return
	}
	f, blob, err := s.Files.Open(b.Digest)
	if err != nil {
		c.Error(httpx.Internal(err))
		return
	}
	defer f.Close()
	c.Header("Content-Disposition", fmt.Sprintf(`attachment; filename="bundle-%d.tar.gz"`, b.ID))
	c.Header("Content-Length", strconv.FormatInt(blob.Size, 10))
	c.Header("Content-Type", "application/gzip")
	c.Status(http.StatusOK)
	io.Copy(c.Writer, f)
}
