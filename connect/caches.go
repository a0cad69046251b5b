package connect

import (
	"cmp"
	"context"
	"crypto/rand"
	"fmt"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/atrium-suite/atrium/shared/auth"
	"github.com/atrium-suite/atrium/shared/httpx"
)

// Runtime caches (posit-sdk's client.system.caches.runtime, rsconnect's
// `system caches list|delete`). Posit Connect keeps one package cache per
// language version; Atrium's counterpart is the Python environments under
// DATA_DIR/connect/envs, one per interpreter version and requirements
// set. A version's cache is all its environments: listing shows each
// version with a built environment, deleting removes them all, and content
// builds its environment again when it next starts.

// imageLocal is the only execution environment: content runs on the host.
const imageLocal = "Local"

// envDirName is an environment's directory: "{version}-{24 hex digits}"
// (pythonEnv's key). Anything else in envs/ (a deletion in progress) is
// not an environment.
var envDirName = regexp.MustCompile(`^([0-9]+(?:\.[0-9]+)*)-[0-9a-f]{24}$`)

// envDirs lists the environment keys under envs/ by Python version, in
// version order; with ready, only the complete ones.
func (s *Server) envDirs(ready bool) (map[string][]string, []string, error) {
	entries, err := os.ReadDir(s.envsDir)
	if err != nil {
		return nil, nil, err
	}
	byVersion := map[string][]string{}
	var versions []string
	for _, e := range entries {
		m := envDirName.FindStringSubmatch(e.Name())
		if m == nil || !e.IsDir() {
			continue
		}
		if ready && !envReady(filepath.Join(s.envsDir, e.Name())) {
			continue
		}
		if byVersion[m[1]] == nil {
			versions = append(versions, m[1])
		}
		byVersion[m[1]] = append(byVersion[m[1]], e.Name())
	}
	slices.SortFunc(versions, func(a, b string) int {
		switch {
		case pythonLess(a, b):
			return -1
		case pythonLess(b, a):
			return 1
		}
		return strings.Compare(a, b)
	})
	return byVersion, versions, nil
}

func cacheJSON(version string) gin.H {
	return gin.H{"language": "Python", "version": version, "image_name": imageLocal}
}

// listRuntimeCaches is GET /v1/system/caches/runtime (admins only):
// {"caches": [{language, version, image_name}]}, one per Python version
// with at least one built environment.
func (s *Server) listRuntimeCaches(c *gin.Context) {
	if !requireAdmin(c, "listing runtime caches") {
		return
	}
	_, versions, err := s.envDirs(true)
	if err != nil {
		c.Error(httpx.Internal(err))
		return
	}
	caches := make([]gin.H, 0, len(versions))
	for _, v := range versions {
		caches = append(caches, cacheJSON(v))
	}
	c.JSON(http.StatusOK, gin.H{"caches": caches})
}

// cacheTarget is the body of DELETE /v1/system/caches/runtime.
type cacheTarget struct {
	Language  string `json:"language"`
	Version   string `json:"version"`
	ImageName string `json:"image_name"`
	DryRun    bool   `json:"dry_run"`
}

// deleteRuntimeCache is DELETE /v1/system/caches/runtime (admins only). An
// unknown cache is 404, with dry_run too (it says whether the delete would
// work). A dry run answers task_id null and changes nothing; otherwise a
// task removes the version's environments (removeRuntimeCache).
func (s *Server) deleteRuntimeCache(c *gin.Context) {
	if !requireAdmin(c, "deleting runtime caches") {
		return
	}
	var body cacheTarget
	if !bindJSON(c, &body) {
		return
	}
	if body.Language == "" || body.Version == "" {
		c.Error(badRequest("language and version are required, as listed by GET /v1/system/caches/runtime"))
		return
	}
	byVersion, _, err := s.envDirs(true)
	if err != nil {
		c.Error(httpx.Internal(err))
		return
	}
	image := cmp.Or(body.ImageName, imageLocal)
	if !strings.EqualFold(body.Language, "python") || image != imageLocal || len(byVersion[body.Version]) == 0 {
		c.Error(apiError(http.StatusNotFound, codeNotFound, "Cache does not exist: no %s %s runtime cache for image %s", body.Language, body.Version, image))
		return
	}
	out := cacheJSON(body.Version)
	if body.DryRun {
		out["task_id"] = nil
		c.JSON(http.StatusOK, out)
		return
	}
	u, _ := auth.CurrentUser(c)
	version := body.Version
	t, err := s.tasks.start(c.Request.Context(), Task{Kind: "delete-runtime-cache", UserID: u.ID}, func(ctx context.Context, log *taskLog) error {
		return s.removeRuntimeCache(ctx, version, log)
	})
	if err != nil {
		c.Error(httpx.Internal(err))
		return
	}
	out["task_id"] = t.ID
	c.JSON(http.StatusOK, out)
}

// removeRuntimeCache is the delete task: every environment of Python
// version, built or not, one at a time. For each it takes the write lock
// (waiting for a build in progress to finish, and for processes being
// started from it), stops the processes running from it and waiting for
// them to exit, moves it out of the way and removes it. Content then
// builds its environment again the next time a process of it starts.
func (s *Server) removeRuntimeCache(ctx context.Context, version string, log *taskLog) error {
	byVersion, _, err := s.envDirs(false)
	if err != nil {
		return err
	}
	keys := byVersion[version]
	log.Printf("Deleting the Python %s runtime cache (image %s): %d environment(s) in %s", version, imageLocal, len(keys), s.envsDir)
	for _, key := range keys {
		users, err := s.st.contentUsingEnv(ctx, key)
		if err != nil {
			return err
		}
		if len(users) == 0 {
			log.Printf("Environment %s: no deployed content uses it", key)
		} else {
			log.Printf("Environment %s: used by %s", key, contentNames(users))
		}
		stopped, err := s.removeEnv(ctx, key)
		if err != nil {
			return err
		}
		for _, guid := range slices.Sorted(maps.Keys(stopped)) {
			n := stopped[guid]
			log.Printf("Stopped %d process(es) of content %s running from it", n, s.contentLabel(ctx, guid))
		}
		log.Printf("Removed environment %s", key)
	}
	log.Printf("Deleted the Python %s runtime cache: %d environment(s) removed. Content that used them builds its environment again when it next starts.", version, len(keys))
	return nil
}

// removeEnv stops the processes started from environment key and deletes
// it, returning how many processes of which content were stopped.
func (s *Server) removeEnv(ctx context.Context, key string) (map[string]int, error) {
	// Starts in progress hold the read lock until their process listens:
	// end them first rather than wait.
	for _, p := range s.envPools(key) {
		p.cancelStarts()
	}
	lock := s.envLock(key)
	lock.Lock()
	stopped := map[string]int{}
	stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	for _, p := range s.envPools(key) {
		if n := p.stopProcesses(stopCtx); n > 0 {
			stopped[p.guid] += n
		}
	}
	// Renamed first, so the environment is gone at once for every server
	// sharing the data dir; the files go after the lock is released. The
	// file lock keeps it from being renamed while another server builds it.
	unlockFile, err := s.lockEnvFile(stopCtx, key)
	if err != nil {
		lock.Unlock()
		return stopped, fmt.Errorf("remove environment %s: %w", key, err)
	}
	dir := filepath.Join(s.envsDir, key)
	trash := filepath.Join(s.envsDir, ".deleting-"+key+"-"+strings.ToLower(rand.Text()[:8]))
	err = os.Rename(dir, trash)
	unlockFile()
	lock.Unlock()
	if os.IsNotExist(err) {
		return stopped, nil
	} else if err != nil {
		return stopped, fmt.Errorf("remove environment %s: %w", key, err)
	}
	if err := os.RemoveAll(trash); err != nil {
		return stopped, fmt.Errorf("remove environment %s: %w", key, err)
	}
	return stopped, nil
}

// contentLabel names content in a task log: its name and GUID.
func (s *Server) contentLabel(ctx context.Context, guid string) string {
	if ct, err := s.st.content(ctx, guid); err == nil {
		return contentNames([]Content{ct})
	}
	return guid
}

func contentNames(list []Content) string {
	names := make([]string, len(list))
	for i, ct := range list {
		names[i] = fmt.Sprintf("%q (%s)", ct.Name, ct.GUID)
	}
	return strings.Join(names, ", ")
}

// addEnvUser records that p starts its processes from its environment.
func (s *Server) addEnvUser(p *pool) {
	if p.envKey == "" {
		return
	}
	s.pyMu.Lock()
	defer s.pyMu.Unlock()
	if s.envUsers[p.envKey] == nil {
		s.envUsers[p.envKey] = map[*pool]struct{}{}
	}
	s.envUsers[p.envKey][p] = struct{}{}
}

// dropEnvUser forgets p (closed).
func (s *Server) dropEnvUser(p *pool) {
	if p.envKey == "" {
		return
	}
	s.pyMu.Lock()
	defer s.pyMu.Unlock()
	delete(s.envUsers[p.envKey], p)
	if len(s.envUsers[p.envKey]) == 0 {
		delete(s.envUsers, p.envKey)
	}
}

// envPools are the open pools starting processes from environment key.
func (s *Server) envPools(key string) []*pool {
	s.pyMu.Lock()
	defer s.pyMu.Unlock()
	out := make([]*pool, 0, len(s.envUsers[key]))
	for p := range s.envUsers[key] {
		out = append(out, p)
	}
	return out
}
