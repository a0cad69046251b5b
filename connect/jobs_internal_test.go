package connect

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/atrium-suite/atrium/shared/accounts"
	"github.com/atrium-suite/atrium/shared/config"
)

// apiCall does one API request with an API key and decodes JSON into out.
func (f *schedFixture) apiCall(t *testing.T, method, path, key, body string, out any) (int, string) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, "http://"+f.s.HTTP.Addr().String()+"/__api__"+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Key "+key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil && resp.StatusCode < 300 {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: %v\n%s", method, path, err, b)
		}
	}
	return resp.StatusCode, string(b)
}

func (f *schedFixture) key(t *testing.T, userID string) string {
	t.Helper()
	k, _, err := f.s.Accounts.CreateAPIKey(context.Background(), userID, "test", config.Connect, nil)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// TestJobsAPI: the processes of a content item are listed, read, logged
// and killed through /v1/content/{guid}/jobs as posit-sdk expects, for its
// owner only.
func TestJobsAPI(t *testing.T) {
	f := newSchedFixture(t, testSchedule())
	owner := f.key(t, f.ownerID)
	stranger, err := f.s.Accounts.AddUser(context.Background(), accounts.NewUser{Username: "stranger", Name: "S", Email: "s@example.org", Role: accounts.RolePublisher})
	if err != nil {
		t.Fatal(err)
	}
	other := f.key(t, stranger.ID)
	f.get(t, "")

	var jobs []map[string]any
	if code, body := f.apiCall(t, "GET", "/v1/content/"+f.guid+"/jobs", owner, "", &jobs); code != 200 || len(jobs) != 1 {
		t.Fatalf("list: %d %s", code, body)
	}
	j := jobs[0]
	for k, want := range map[string]any{"status": 0.0, "pid": "4000", "tag": "run_app", "app_guid": f.guid, "bundle_id": "1", "exit_code": nil, "end_time": nil} {
		if j[k] != want {
			t.Errorf("job %s = %#v, want %#v", k, j[k], want)
		}
	}
	key := j["key"].(string)
	var one map[string]any
	if code, _ := f.apiCall(t, "GET", "/v1/content/"+f.guid+"/jobs/"+key, owner, "", &one); code != 200 || one["key"] != key {
		t.Fatalf("get: %d %v", code, one)
	}
	var logs struct {
		Entries []struct{ Source, Timestamp, Data string }
	}
	if code, body := f.apiCall(t, "GET", "/v1/content/"+f.guid+"/jobs/"+key+"/log?max_log_lines=10", owner, "", &logs); code != 200 || len(logs.Entries) != 1 || !strings.Contains(logs.Entries[0].Data, "starting on port") || logs.Entries[0].Timestamp == "" {
		t.Fatalf("log: %d %s", code, body)
	}
	if code, body := f.apiCall(t, "GET", "/v1/content/"+f.guid+"/jobs/"+key+"/download", owner, "", nil); code != 200 || !strings.Contains(body, "starting on port") {
		t.Fatalf("download: %d %s", code, body)
	}

	for _, tc := range []struct {
		name, method, path, key string
		want                    int
	}{
		{"another publisher", "GET", "/v1/content/" + f.guid + "/jobs", other, 404},
		{"unknown job", "GET", "/v1/content/" + f.guid + "/jobs/nope", owner, 404},
		{"bad max_log_lines", "GET", "/v1/content/" + f.guid + "/jobs/" + key + "/log?max_log_lines=x", owner, 400},
		{"another publisher kills", "DELETE", "/v1/content/" + f.guid + "/jobs/" + key, other, 404},
	} {
		if code, body := f.apiCall(t, tc.method, tc.path, tc.key, "", nil); code != tc.want {
			t.Errorf("%s: %d %s, want %d", tc.name, code, body, tc.want)
		}
	}

	var kill map[string]any
	if code, body := f.apiCall(t, "DELETE", "/v1/content/"+f.guid+"/jobs/"+key, owner, "", &kill); code != 200 || kill["job_key"] != key {
		t.Fatalf("kill: %d %s", code, body)
	}
	eventually(t, "the job to finish", func() bool {
		j, err := f.s.st.job(context.Background(), f.guid, key)
		return err == nil && j.Status == jobFinished
	})
	if code, body := f.apiCall(t, "DELETE", "/v1/content/"+f.guid+"/jobs/"+key, owner, "", nil); code != 409 {
		t.Fatalf("kill a finished job: %d %s, want 409", code, body)
	}
}

// TestRuntimeSettingsAPI: PATCH sets the scheduler settings (null resets
// one to the default), the running pool follows, and bad values change
// nothing.
func TestRuntimeSettingsAPI(t *testing.T) {
	f := newSchedFixture(t, testSchedule())
	owner := f.key(t, f.ownerID)
	path := "/v1/content/" + f.guid
	var ct map[string]any
	if code, body := f.apiCall(t, "PATCH", path, owner, `{"min_processes": 2, "max_processes": 4, "max_conns_per_process": 5, "load_factor": 0.25, "idle_timeout": 30, "init_timeout": 20}`, &ct); code != 200 {
		t.Fatalf("patch: %d %s", code, body)
	}
	for k, want := range map[string]float64{"min_processes": 2, "max_processes": 4, "max_conns_per_process": 5, "load_factor": 0.25, "idle_timeout": 30, "init_timeout": 20} {
		if ct[k] != want {
			t.Errorf("%s = %v, want %v", k, ct[k], want)
		}
	}
	eventually(t, "two processes (min_processes)", func() bool { return f.ready() == 2 })

	for _, bad := range []string{
		`{"min_processes": 5, "max_processes": 4}`,
		`{"min_processes": 5}`, // more than the stored max of 4
		`{"load_factor": 1.5}`,
		`{"max_processes": 0}`,
		`{"idle_timeout": -1}`,
		`{"max_conns_per_process": "many"}`,
	} {
		if code, body := f.apiCall(t, "PATCH", path, owner, bad, nil); code != 400 || !strings.Contains(body, `"error"`) {
			t.Errorf("PATCH %s: %d %s, want 400 with an error", bad, code, body)
		}
	}
	if code, _ := f.apiCall(t, "GET", path, owner, "", &ct); code != 200 || ct["min_processes"] != 2.0 || ct["load_factor"] != 0.25 {
		t.Fatalf("after bad patches: %v", ct)
	}
	if code, body := f.apiCall(t, "PATCH", path, owner, `{"min_processes": null, "title": "kept"}`, &ct); code != 200 || ct["min_processes"] != nil || ct["max_processes"] != 4.0 {
		t.Fatalf("reset min_processes: %d %s", code, body)
	}
	stored, err := f.s.st.content(context.Background(), f.guid)
	if err != nil {
		t.Fatal(err)
	}
	got := f.s.scheduleFor(stored.Sched)
	if got.minProcs != f.s.Config.Connect.MinProcesses || got.maxProcs != 4 || got.maxConns != 5 {
		t.Fatalf("resolved schedule %+v", got)
	}
}

// TestJobLogBatches: a job's output reaches its log file in batches (not
// a write per line), a read of the running job's log sees every line at
// once, and closing the log writes what is left.
func TestJobLogBatches(t *testing.T) {
	s := &Server{jobsDir: t.TempDir()}
	jl := s.newJobLog("k")
	if jl.file.f == nil {
		t.Fatal("the log file was not opened")
	}
	s.liveLogs.Store("k", jl)
	onDisk := func() string {
		b, _ := os.ReadFile(jl.file.path)
		return string(b)
	}

	jl.Write([]byte("GET / 200\n"))
	if got := onDisk(); got != "" {
		t.Fatalf("a line was written at once: %q", got)
	}
	lines, err := s.readJobLog("k", 10)
	if err != nil || len(lines) != 1 || lines[0].D != "GET / 200" {
		t.Fatalf("reading the running job's log: %v %+v", err, lines)
	}
	jl.Write([]byte("GET /a 200\n"))
	for deadline := time.Now().Add(5 * time.Second); !strings.Contains(onDisk(), "GET /a 200"); {
		if time.Now().After(deadline) {
			t.Fatalf("the batch was not written after its delay: %q", onDisk())
		}
		time.Sleep(10 * time.Millisecond)
	}
	jl.Write([]byte("last\n"))
	jl.close()
	if !strings.HasSuffix(onDisk(), "\tlast\n") {
		t.Errorf("close did not write the last line: %q", onDisk())
	}
	if _, ok := s.liveLogs.Load("k"); ok {
		t.Error("a closed log is still listed as live")
	}
}

// TestJobFileRotates: a batch that would take the file past its maximum
// moves the file to .1 (replacing an older .1) and starts a new one, so a
// chatty app's output stays under twice the maximum.
func TestJobFileRotates(t *testing.T) {
	path := filepath.Join(t.TempDir(), "k.log")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		t.Fatal(err)
	}
	j := &jobFile{path: path, max: 10, f: f}
	for _, b := range []string{"aaaa\n", "bbbb\n", "cccc\n", "dddd\n", "eeeeeeeeeeee\n"} {
		if _, err := j.Write([]byte(b)); err != nil {
			t.Fatal(err)
		}
	}
	j.Close()
	if _, err := j.Write([]byte("after close\n")); err != nil {
		t.Errorf("a write after close failed: %v", err)
	}
	for file, want := range map[string]string{path + ".1": "cccc\ndddd\n", path: "eeeeeeeeeeee\n"} {
		if b, _ := os.ReadFile(file); string(b) != want {
			t.Errorf("%s = %q, want %q", filepath.Base(file), b, want)
		}
	}
}
