package connect

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"

	"github.com/gin-gonic/gin"

	"github.com/atrium-suite/atrium/connect/bundle"
	"github.com/atrium-suite/atrium/shared/httpx"
)

// deployRequest is POST /v1/content/{guid}/deploy. bundle_id is a string
// (as we return it), a number, or null for the newest bundle; activate is
// false for rsconnect's draft deploys.
type deployRequest struct {
	BundleID json.RawMessage `json:"bundle_id"`
	Activate *bool           `json:"activate"`
}

func (s *Server) deploy(c *gin.Context) {
	ct, u, ok := s.visible(c)
	if !ok {
		return
	}
	var req deployRequest
	if !bindJSON(c, &req) {
		return
	}
	ctx := c.Request.Context()
	var b Bundle
	var err error
	raw := string(req.BundleID)
	if raw == "" || raw == "null" {
		b, err = s.st.latestBundle(ctx, ct.GUID)
	} else {
		var idStr string
		if json.Unmarshal(req.BundleID, &idStr) != nil {
			idStr = raw
		}
		id, ok := parseBundleID(idStr)
		if !ok {
			c.Error(badRequest("bundle_id %s is not a bundle id", raw))
			return
		}
		b, err = s.st.bundle(ctx, ct.GUID, id)
	}
	if errors.Is(err, errNotFound) {
		c.Error(notFound("bundle"))
		return
	} else if err != nil {
		c.Error(httpx.Internal(err))
		return
	}
	activate := req.Activate == nil || *req.Activate
	t, err := s.tasks.start(ctx, Task{ContentGUID: ct.GUID, Kind: "deploy", UserID: u.ID}, func(ctx context.Context, log *taskLog) error {
		return s.runDeploy(ctx, ct.GUID, b, activate, log)
	})
	if err != nil {
		c.Error(httpx.Internal(err))
		return
	}
	c.JSON(http.StatusOK, gin.H{"task_id": t.ID})
}

// runDeploy is the deploy task: extract the bundle, build its environment,
// start it and, once it answers and when activating, make it the version
// visitors get. Anything failing leaves the running version as it was.
func (s *Server) runDeploy(ctx context.Context, guid string, b Bundle, activate bool, log *taskLog) error {
	a := s.rt.app(guid)
	a.deploy.Lock()
	defer a.deploy.Unlock()
	log.Printf("Deploying bundle %d (%s) of content %s", b.ID, b.AppMode, guid)
	dir, m, err := s.prepare(ctx, guid, b, log.Printf)
	if err != nil {
		return err
	}
	ct, err := s.st.content(ctx, guid)
	if err != nil {
		return err
	}
	inst, err := s.rt.start(ctx, ct, b, m, dir, !activate, true, log, log.Printf)
	if err != nil {
		return err
	}
	if !activate {
		s.rt.install(guid, inst, true)
		log.Printf("Bundle %d is running as a draft at %s", b.ID, s.URL()+contentPrefix(guid, b.ID))
		return nil
	}
	if err := s.st.activate(context.WithoutCancel(ctx), guid, b.ID, b.AppMode); err != nil {
		inst.stop()
		return fmt.Errorf("activate bundle: %w", err)
	}
	s.rt.install(guid, inst, false)
	log.Printf("Activated bundle %d: %s", b.ID, s.URL()+contentPrefix(guid, 0))
	return nil
}

// prepare extracts bundle b into DATA_DIR/connect/apps/{guid}/{bundle_id}/,
// unpacking into a fresh directory that is renamed into place once
// complete. A bundle's files never change, so a directory already in place
// (a draft now being activated, a restart) is used as it is.
func (s *Server) prepare(ctx context.Context, guid string, b Bundle, say func(string, ...any)) (string, bundle.Manifest, error) {
	dir := filepath.Join(s.appsDir, guid, strconv.FormatInt(b.ID, 10))
	if _, err := os.Stat(dir); err == nil {
		m, err := manifestIn(dir)
		return dir, m, err
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o750); err != nil {
		return "", bundle.Manifest{}, err
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dir), ".extract-*")
	if err != nil {
		return "", bundle.Manifest{}, err
	}
	defer os.RemoveAll(tmp)
	f, _, err := s.Files.Open(b.Digest)
	if err != nil {
		return "", bundle.Manifest{}, fmt.Errorf("open bundle %d: %w", b.ID, err)
	}
	defer f.Close()
	say("Extracting bundle %d", b.ID)
	m, err := bundle.Extract(ctx, f, tmp, bundle.Limits{})
	if err != nil {
		var ie *bundle.InvalidError
		if errors.As(err, &ie) {
			return "", m, failf("invalid bundle: %s", ie.Msg)
		}
		return "", m, err
	}
	if err := os.Rename(tmp, dir); err != nil {
		return "", m, err
	}
	return dir, m, nil
}

// manifestIn reads and resolves the manifest of an extracted bundle.
func manifestIn(dir string) (bundle.Manifest, error) {
	data, err := os.ReadFile(filepath.Join(dir, "manifest.json"))
	if err != nil {
		return bundle.Manifest{}, err
	}
	m, err := bundle.ParseManifest(data)
	if err != nil {
		return m, err
	}
	err = m.Resolve(func(name string) bool {
		fi, err := os.Stat(filepath.Join(dir, filepath.FromSlash(name)))
		return err == nil && fi.Mode().IsRegular()
	})
	return m, err
}
