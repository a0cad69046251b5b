package connect

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/atrium-suite/atrium/connect/bundle"
	"github.com/atrium-suite/atrium/shared/db"
	"github.com/atrium-suite/atrium/shared/httpx"
	"github.com/atrium-suite/atrium/shared/platform"
)

// Job is one process Connect ran for a content item (Posit Connect's
// "job"), with its output in a log file under the data dir.
type Job struct {
	Key         string
	ID          int64
	ContentGUID string
	BundleID    int64
	Tag         string
	Hostname    string
	PID         int
	RunAs       string
	Status      int // jobActive or jobFinished
	ExitCode    *int
	StartTime   time.Time
	EndTime     *time.Time
}

// Posit Connect's job status codes.
const (
	jobActive   = 0
	jobFinished = 1
)

// jobsKept is how many finished jobs (rows and logs) a content item keeps.
const jobsKept = 50

// jobLogMax is the size at which a job's log file is rotated; one older
// file is kept, so a chatty app's log stays under twice this.
const jobLogMax = 8 << 20

// jobTags are posit-sdk's JobTag for each app mode Connect runs.
var jobTags = map[bundle.AppMode]string{
	bundle.ModeFastAPI:     "run_fastapi_app",
	bundle.ModePythonAPI:   "run_python_api",
	bundle.ModeDash:        "run_dash_app",
	bundle.ModeStreamlit:   "run_streamlit",
	bundle.ModeBokeh:       "run_bokeh_app",
	bundle.ModePythonShiny: "run_pyshiny_app",
	bundle.ModeVoila:       "run_voila_app",
}

func jobTag(m bundle.AppMode) string {
	if t, ok := jobTags[m]; ok {
		return t
	}
	return "run_app"
}

const jobCols = `job_key, id, content_guid, bundle_id, tag, hostname, pid, run_as, status, exit_code, start_time, end_time`

func scanJob(r scanner) (Job, error) {
	var j Job
	var code, end sql.NullInt64
	var start int64
	err := r.Scan(&j.Key, &j.ID, &j.ContentGUID, &j.BundleID, &j.Tag, &j.Hostname, &j.PID, &j.RunAs, &j.Status, &code, &start, &end)
	if errors.Is(err, sql.ErrNoRows) {
		return j, errNotFound
	}
	j.StartTime = fromMS(start)
	if code.Valid {
		c := int(code.Int64)
		j.ExitCode = &c
	}
	if end.Valid {
		t := fromMS(end.Int64)
		j.EndTime = &t
	}
	return j, err
}

func (s *store) createJob(ctx context.Context, j Job) (Job, error) {
	err := s.db.InTx(ctx, func(tx *db.Tx) error {
		id, err := nextID(ctx, tx, "job")
		if err != nil {
			return err
		}
		j.ID = id
		_, err = tx.ExecContext(ctx, `INSERT INTO jobs (`+jobCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, ?, NULL)`,
			j.Key, j.ID, j.ContentGUID, j.BundleID, j.Tag, j.Hostname, j.PID, j.RunAs, jobActive, ms(j.StartTime))
		return err
	})
	if err != nil {
		return j, fmt.Errorf("create job: %w", err)
	}
	return j, nil
}

func (s *store) setJobPID(ctx context.Context, key string, pid int) error {
	_, err := s.db.ExecContext(ctx, `UPDATE jobs SET pid = ? WHERE job_key = ?`, pid, key)
	return err
}

// finishJob marks a job ended; code nil when it never ran (or was killed
// by a signal, which Posit Connect reports the same way).
func (s *store) finishJob(ctx context.Context, key string, code *int) error {
	_, err := s.db.ExecContext(ctx, `UPDATE jobs SET status = ?, exit_code = ?, end_time = ? WHERE job_key = ? AND status = ?`,
		jobFinished, nullable(code), s.nowMS(), key, jobActive)
	return err
}

func (s *store) job(ctx context.Context, guid, key string) (Job, error) {
	return scanJob(s.db.QueryRowContext(ctx, `SELECT `+jobCols+` FROM jobs WHERE content_guid = ? AND job_key = ?`, guid, key))
}

// jobs lists a content item's jobs, newest first.
func (s *store) jobs(ctx context.Context, guid string) ([]Job, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+jobCols+` FROM jobs WHERE content_guid = ? ORDER BY start_time DESC, id DESC`, guid)
	if err != nil {
		return nil, fmt.Errorf("list jobs: %w", err)
	}
	return collect(rows, scanJob)
}

// pruneJobs deletes all but the newest jobsKept finished jobs of guid and
// returns the deleted keys, whose logs the caller removes.
func (s *store) pruneJobs(ctx context.Context, guid string) ([]string, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT job_key FROM jobs WHERE content_guid = ? AND status = ? ORDER BY start_time DESC, id DESC`, guid, jobFinished)
	if err != nil {
		return nil, err
	}
	keys, err := collect(rows, func(r scanner) (string, error) { var k string; return k, r.Scan(&k) })
	if err != nil || len(keys) <= jobsKept {
		return nil, err
	}
	old := keys[jobsKept:]
	for _, k := range old {
		if _, err := s.db.ExecContext(ctx, `DELETE FROM jobs WHERE job_key = ?`, k); err != nil {
			return nil, err
		}
	}
	return old, nil
}

// finishHostJobs marks this host's active jobs finished: after a restart
// their processes are gone (they are children of the server).
func (s *store) finishHostJobs(ctx context.Context, hostname string) error {
	_, err := s.db.ExecContext(ctx, `UPDATE jobs SET status = ?, end_time = ? WHERE hostname = ? AND status = ?`,
		jobFinished, s.nowMS(), hostname, jobActive)
	return err
}

// ---- log files ----

// jobLog is a job's output file: one line per output line, "<unix ms>\t
// <the line>" (the launcher splits output into lines, so a line holds no
// newline). Plain text keeps the write cheap: an app's access log is a
// line per request. It is written by the launcher's single output
// goroutine, in batches (platform.BatchWriter): an app that logs a line per
// request would otherwise cost a file write per request.
type jobLog struct {
	s    *Server
	key  string
	file *jobFile
	out  *platform.BatchWriter // in front of file
	mu   sync.Mutex
	line []byte // the line being formatted
}

// newJobLog opens key's log file. A file that cannot be opened is logged
// and the job's output dropped: the job runs anyway.
func (s *Server) newJobLog(key string) *jobLog {
	file := &jobFile{path: s.jobLogPath(key), max: jobLogMax}
	f, err := os.OpenFile(file.path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		s.Log.Warn("job log", "job", key, "err", err)
	}
	file.f = f
	return &jobLog{s: s, key: key, file: file, out: platform.NewBatchWriter(file)}
}

// jobFile is where a job log's batches go: the file, renamed to path.1 and
// started again when a batch would take it past max.
type jobFile struct {
	path string
	max  int64
	mu   sync.Mutex // Write (from the batch writer) against Close
	f    *os.File   // nil once closed or when it could not be opened
	size int64
}

func (j *jobFile) Write(b []byte) (int, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.f == nil {
		return len(b), nil
	}
	if j.size > 0 && j.size+int64(len(b)) > j.max {
		j.f.Close()
		os.Rename(j.path, j.path+".1")
		f, err := os.OpenFile(j.path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o640)
		j.f, j.size = f, 0
		if err != nil {
			j.f = nil
			return len(b), nil
		}
	}
	n, err := j.f.Write(b)
	j.size += int64(n)
	return n, err
}

func (j *jobFile) Close() {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.f != nil {
		j.f.Close()
		j.f = nil
	}
}

// logLine is one line of a job's output.
type logLine struct {
	T int64 // unix ms
	D string
}

func (s *Server) jobLogPath(key string) string { return filepath.Join(s.jobsDir, key+".log") }

// jobStarting records a job about to start and opens its log.
func (s *Server) jobStarting(ctx context.Context, guid string, bundleID int64, tag, runAs string) (*jobLog, error) {
	if runAs == "" {
		if u, err := user.Current(); err == nil {
			runAs = u.Username
		}
	}
	key := strings.ToLower(rand.Text()[:16])
	if _, err := s.st.createJob(ctx, Job{Key: key, ContentGUID: guid, BundleID: bundleID, Tag: tag, Hostname: s.hostname, RunAs: runAs, StartTime: s.st.now()}); err != nil {
		return nil, err
	}
	jl := s.newJobLog(key)
	s.liveLogs.Store(key, jl)
	// Old jobs go as new ones come.
	if old, err := s.st.pruneJobs(ctx, guid); err != nil {
		s.Log.Warn("pruning jobs", "content_guid", guid, "err", err)
	} else {
		for _, k := range old {
			os.Remove(s.jobLogPath(k))
			os.Remove(s.jobLogPath(k) + ".1")
		}
	}
	return jl, nil
}

func (s *Server) jobRunning(jl *jobLog, pid int) {
	if err := s.st.setJobPID(context.Background(), jl.key, pid); err != nil {
		s.Log.Warn("job pid", "job", jl.key, "err", err)
	}
}

// failed ends a job whose process did not come up.
func (jl *jobLog) failed() {
	jl.s.jobEnded(jl.key, -1)
	jl.close()
}

// Write adds a line to the job's log.
func (jl *jobLog) Write(p []byte) (int, error) {
	jl.mu.Lock()
	defer jl.mu.Unlock()
	b := strconv.AppendInt(jl.line[:0], time.Now().UnixMilli(), 10)
	b = append(b, '\t')
	b = append(b, bytes.TrimRight(p, "\r\n")...)
	b = append(b, '\n')
	jl.line = b
	_, _ = jl.out.Write(b)
	return len(p), nil
}

// flush writes the gathered lines (before the log is read).
func (jl *jobLog) flush() { jl.out.Flush() }

func (jl *jobLog) close() {
	jl.s.liveLogs.Delete(jl.key)
	jl.out.Close()
	jl.file.Close()
}

// jobEnded records a job's end; code -1 means no exit status (it did not
// start, or a signal ended it).
func (s *Server) jobEnded(key string, code int) {
	var c *int
	if code >= 0 {
		c = &code
	}
	if err := s.st.finishJob(context.Background(), key, c); err != nil {
		s.Log.Warn("job end", "job", key, "err", err)
	}
}

// readJobLog returns the last max lines of a job's output (both files).
func (s *Server) readJobLog(key string, max int) ([]logLine, error) {
	if jl, ok := s.liveLogs.Load(key); ok {
		jl.(*jobLog).flush()
	}
	var out []logLine
	found := false
	for _, p := range []string{s.jobLogPath(key) + ".1", s.jobLogPath(key)} {
		f, err := os.Open(p)
		if errors.Is(err, os.ErrNotExist) {
			continue
		} else if err != nil {
			return nil, err
		}
		found = true
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			ts, line, ok := strings.Cut(sc.Text(), "\t")
			t, err := strconv.ParseInt(ts, 10, 64)
			if !ok || err != nil {
				continue
			}
			out = append(out, logLine{T: t, D: line})
			if len(out) > 2*max {
				out = append(out[:0], out[len(out)-max:]...)
			}
		}
		f.Close()
	}
	if !found {
		return []logLine{}, nil
	}
	if len(out) > max {
		out = out[len(out)-max:]
	}
	return out, nil
}

// ---- API ----

func jobJSON(j Job) gin.H {
	var end any
	if j.EndTime != nil {
		end = timeJSON(*j.EndTime)
	}
	var code any
	if j.ExitCode != nil {
		code = *j.ExitCode
	}
	return gin.H{
		"id":                  strconv.FormatInt(j.ID, 10),
		"ppid":                nil,
		"pid":                 strconv.Itoa(j.PID),
		"key":                 j.Key,
		"remote_id":           nil,
		"app_id":              j.ContentGUID,
		"app_guid":            j.ContentGUID,
		"content_id":          j.ContentGUID,
		"content_guid":        j.ContentGUID,
		"variant_id":          "0",
		"bundle_id":           bundleIDString(j.BundleID),
		"start_time":          timeJSON(j.StartTime),
		"end_time":            end,
		"last_heartbeat_time": timeJSON(j.StartTime),
		"queued_time":         nil,
		"status":              j.Status,
		"exit_code":           code,
		"hostname":            j.Hostname,
		"cluster":             "Local",
		"image":               nil,
		"run_as":              j.RunAs,
		"queue_name":          nil,
		"tag":                 j.Tag,
	}
}

// jobOf loads the job named in the path of content the caller manages.
func (s *Server) jobOf(c *gin.Context) (Job, bool) {
	ct, _, ok := s.visible(c)
	if !ok {
		return Job{}, false
	}
	j, err := s.st.job(c.Request.Context(), ct.GUID, c.Param("key"))
	if errors.Is(err, errNotFound) {
		c.Error(notFound("job"))
		return j, false
	} else if err != nil {
		c.Error(httpx.Internal(err))
		return j, false
	}
	return j, true
}

func (s *Server) listJobs(c *gin.Context) {
	ct, _, ok := s.visible(c)
	if !ok {
		return
	}
	list, err := s.st.jobs(c.Request.Context(), ct.GUID)
	if err != nil {
		c.Error(httpx.Internal(err))
		return
	}
	out := make([]gin.H, 0, len(list))
	for _, j := range list {
		out = append(out, jobJSON(j))
	}
	c.JSON(http.StatusOK, out)
}

func (s *Server) getJob(c *gin.Context) {
	if j, ok := s.jobOf(c); ok {
		c.JSON(http.StatusOK, jobJSON(j))
	}
}

// jobLogLines is the default and the cap of max_log_lines, as in Posit
// Connect.
const jobLogLines = 5000

func (s *Server) getJobLog(c *gin.Context) {
	j, ok := s.jobOf(c)
	if !ok {
		return
	}
	max := jobLogLines
	if v := c.Query("max_log_lines"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			c.Error(badRequest("max_log_lines must be a positive number"))
			return
		}
		max = min(n, jobLogLines)
	}
	lines, err := s.readJobLog(j.Key, max)
	if err != nil {
		c.Error(httpx.Internal(err))
		return
	}
	entries := make([]gin.H, 0, len(lines))
	for _, l := range lines {
		// stdout and stderr share one pipe to keep their order, so an
		// entry cannot tell which it came from.
		entries = append(entries, gin.H{"source": "output", "timestamp": timeJSON(time.UnixMilli(l.T).UTC()), "data": l.D})
	}
	c.JSON(http.StatusOK, gin.H{"source": "output", "entries": entries})
}

func (s *Server) downloadJobLog(c *gin.Context) {
	j, ok := s.jobOf(c)
	if !ok {
		return
	}
	lines, err := s.readJobLog(j.Key, 1<<30)
	if err != nil {
		c.Error(httpx.Internal(err))
		return
	}
	name := fmt.Sprintf("atrium-connect.%s.%d.%s.%s.log", j.ContentGUID, j.BundleID, j.Tag, j.Key)
	c.Header("Content-Disposition", `attachment; filename="`+name+`"`)
	c.Header("Content-Type", "text/plain; charset=utf-8")
	c.Status(http.StatusOK)
	w := bufio.NewWriter(c.Writer)
	for _, l := range lines {
		fmt.Fprintf(w, "%s %s\n", time.UnixMilli(l.T).UTC().Format(time.RFC3339Nano), l.D)
	}
	w.Flush()
}

// killJob stops a running job: the scheduler starts another when the
// content still needs one, as after a crash but without the backoff.
func (s *Server) killJob(c *gin.Context) {
	j, ok := s.jobOf(c)
	if !ok {
		return
	}
	if j.Status != jobActive {
		c.Error(apiError(http.StatusConflict, codeConflict, "job %s has already finished", j.Key))
		return
	}
	if j.Hostname != s.hostname {
		c.Error(apiError(http.StatusConflict, codeConflict, "job %s runs on %s; ask that server", j.Key, j.Hostname))
		return
	}
	if !s.rt.kill(j.ContentGUID, j.Key) {
		// Not ours any more (the server restarted): just record it.
		if err := s.st.finishJob(c.Request.Context(), j.Key, nil); err != nil {
			c.Error(httpx.Internal(err))
			return
		}
	}
	c.JSON(http.StatusOK, gin.H{
		"app_id": j.ContentGUID, "app_guid": j.ContentGUID, "job_id": strconv.FormatInt(j.ID, 10),
		"job_key": j.Key, "result": "Order to kill job registered",
	})
}

// Interface checks for the writers the launcher is given.
var _ io.Writer = (*jobLog)(nil)
