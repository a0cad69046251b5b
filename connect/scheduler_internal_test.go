package connect

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/atrium-suite/atrium/shared/accounts"
	"github.com/atrium-suite/atrium/shared/config"
	"github.com/atrium-suite/atrium/shared/launcher"
	"github.com/atrium-suite/atrium/shared/platform"
)

// fakeLauncher runs each "process" as an HTTP server in this test process:
// the scheduler is tested on its decisions (how many, when, which one),
// with real sockets and a real proxy but no interpreter. The e2e tests run
// real apps.
type fakeLauncher struct {
	mu       sync.Mutex
	started  int
	failNext int           // this many next starts exit before listening
	hold     chan struct{} // /hold requests block until it is closed
	jobs     []*fakeJob
}

type fakeJob struct {
	id       string
	srv      *http.Server
	done     chan struct{}
	code     atomic.Int64
	stopOnce sync.Once
}

func (f *fakeLauncher) Start(ctx context.Context, spec launcher.Spec) (launcher.Job, error) {
	f.mu.Lock()
	f.started++
	n := f.started
	fail := f.failNext > 0
	if fail {
		f.failNext--
	}
	f.mu.Unlock()
	if spec.Output != nil {
		fmt.Fprintf(spec.Output, "process %d starting on port %d\n", n, spec.Port)
	}
	if fail {
		return nil, fmt.Errorf("launcher: job %q: %w (exit code 1)", spec.Name, launcher.ErrExited)
	}
	l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(spec.Port))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", launcher.ErrPortInUse, err)
	}
	j := &fakeJob{id: "fake-" + strconv.Itoa(n), done: make(chan struct{})}
	j.code.Store(-1)
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, j.id) })
	mux.HandleFunc("/hold", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-f.hold:
		case <-r.Context().Done():
		}
		io.WriteString(w, j.id)
	})
	mux.HandleFunc("/crash", func(w http.ResponseWriter, r *http.Request) {
		// The whole answer is on the wire before the process goes: exiting
		// with it still in net/http's buffer gave the proxy a closed
		// connection instead (a 502, seen under load in CI).
		w.Header().Set("Content-Length", "3")
		io.WriteString(w, "bye")
		w.(http.Flusher).Flush()
		go j.exit(3)
	})
	j.srv = &http.Server{Handler: mux}
	go j.srv.Serve(l)
	f.mu.Lock()
	f.jobs = append(f.jobs, j)
	f.mu.Unlock()
	return j, nil
}

func (f *fakeLauncher) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.started
}

func (j *fakeJob) exit(code int) {
	j.stopOnce.Do(func() {
		j.srv.Close()
		j.code.Store(int64(code))
		close(j.done)
	})
}

func (j *fakeJob) ID() string            { return j.id }
func (j *fakeJob) Pid() int              { return 4000 }
func (j *fakeJob) Done() <-chan struct{} { return j.done }
func (j *fakeJob) ExitCode() int         { return int(j.code.Load()) }
func (j *fakeJob) Wait() error {
	<-j.done
	if j.ExitCode() != 0 {
		return errors.New("exited")
	}
	return nil
}
func (j *fakeJob) Stop(ctx context.Context) error { j.exit(-1); return nil }

// schedFixture is a Connect server with one content item and a pool of fake
// processes served at ts.URL + "/content/g/".
type schedFixture struct {
	s       *Server
	fl      *fakeLauncher
	p       *pool
	url     string
	guid    string
	ownerID string
}

func newSchedFixture(t *testing.T, sc schedule) *schedFixture {
	t.Helper()
	cfg := config.Default()
	cfg.Shared.DataDir = t.TempDir()
	cfg.Connect.Listen = "127.0.0.1:0"
	ctx, cancel := context.WithCancel(context.Background())
	s, err := New(ctx, cfg, platform.Options{})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	fl := &fakeLauncher{hold: make(chan struct{})}
	s.rt.launcher = fl
	owner, err := s.Accounts.AddUser(ctx, accounts.NewUser{Username: "owner", Name: "O Wner", Email: "o@example.org", Role: accounts.RolePublisher})
	if err != nil {
		t.Fatal(err)
	}
	ct, err := s.st.createContent(ctx, Content{GUID: newGUID(), Name: "sched", OwnerID: owner.ID})
	if err != nil {
		t.Fatal(err)
	}
	prefix := "/content/" + ct.GUID + "/"
	p, err := s.newPool(poolConfig{
		guid: ct.GUID, bundleID: 1, tag: "run_app", prefix: prefix, strip: true, sched: sc,
		spec: func(ctx context.Context, port int) (launcher.Spec, error) {
			return launcher.Spec{Command: []string{"fake"}}, nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.close)
	s.rt.install(ct.GUID, &instance{bundleID: 1, pool: p, handler: p.handler}, false)
	srv := httptest.NewServer(p.handler)
	t.Cleanup(srv.Close)
	t.Cleanup(func() {
		fl.mu.Lock()
		defer fl.mu.Unlock()
		select {
		case <-fl.hold:
		default:
			close(fl.hold)
		}
	})
	return &schedFixture{s: s, fl: fl, p: p, url: srv.URL + prefix, guid: ct.GUID, ownerID: owner.ID}
}

func (f *schedFixture) get(t *testing.T, path string) (int, string) {
	t.Helper()
	resp, err := http.Get(f.url + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// fetch is get for goroutines, which must not call t.Fatal: an error is
// returned as the body, for the test to report.
func (f *schedFixture) fetch(path string) string {
	resp, err := http.Get(f.url + path)
	if err != nil {
		return "error: " + err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (f *schedFixture) ready() int { return int(f.p.ready.Load()) }

func testSchedule() schedule {
	return schedule{minProcs: 0, maxProcs: 3, maxConns: 20, loadFactor: 0.5, idle: time.Hour, init: 5 * time.Second}
}

func TestSchedulerStartsOnDemandAndKeepsMin(t *testing.T) {
	tests := []struct {
		name      string
		min       int
		wantAfter int // processes after the first request
	}{
		{"min 0 starts one for the first request", 0, 1},
		{"min 2 keeps two", 2, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sc := testSchedule()
			sc.minProcs = tt.min
			f := newSchedFixture(t, sc)
			if tt.min == 0 && f.ready() != 0 {
				t.Fatalf("%d processes before any request, want 0", f.ready())
			}
			if code, body := f.get(t, ""); code != 200 || body == "" {
				t.Fatalf("GET: %d %q", code, body)
			}
			eventually(t, fmt.Sprintf("%d processes", tt.wantAfter), func() bool { return f.ready() == tt.wantAfter })
		})
	}
}

// TestSchedulerScalesUnderLoad: with one connection per process, held
// requests make the pool grow to max_processes; one more waits for room
// and is answered when a held one finishes.
func TestSchedulerScalesUnderLoad(t *testing.T) {
	sc := testSchedule()
	sc.maxConns, sc.loadFactor, sc.maxProcs = 1, 1, 3
	f := newSchedFixture(t, sc)
	results := make(chan string, 4)
	for range 3 {
		go func() { results <- f.fetch("hold") }()
	}
	eventually(t, "3 processes", func() bool { return f.ready() == 3 && f.p.inflight.Load() == 3 })
	go func() { results <- "extra:" + f.fetch("") }()
	eventually(t, "the fourth request to wait", func() bool { return f.p.waiting.Load() == 1 })
	if f.fl.count() != 3 {
		t.Fatalf("%d processes started, want max_processes 3", f.fl.count())
	}
	close(f.fl.hold)
	seen := map[string]bool{}
	for range 4 {
		seen[<-results] = true
	}
	if len(seen) != 4 {
		t.Fatalf("answers %v: want three different processes and the waiting request", seen)
	}
}

// TestSchedulerBusy: a full pool at max_processes answers 503 once the
// wait (init_timeout) passes, and nothing more is started.
func TestSchedulerBusy(t *testing.T) {
	sc := testSchedule()
	sc.maxConns, sc.maxProcs, sc.init = 1, 1, 300*time.Millisecond
	f := newSchedFixture(t, sc)
	go f.fetch("hold")
	eventually(t, "one request in flight", func() bool { return f.p.inflight.Load() == 1 })
	resp, err := http.Get(f.url)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("full pool: %d (Retry-After %q), want 503 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	if f.fl.count() != 1 {
		t.Fatalf("%d processes started, want 1", f.fl.count())
	}
}

// TestSchedulerRestartsCrashedWithBackoff: a crash is recorded as a
// finished job with its exit code and the process comes back (min 1); a
// start that keeps failing backs off longer each time.
func TestSchedulerRestartsCrashedWithBackoff(t *testing.T) {
	sc := testSchedule()
	sc.minProcs = 1
	f := newSchedFixture(t, sc)
	f.get(t, "")
	eventually(t, "one process", func() bool { return f.ready() == 1 })
	if code, _ := f.get(t, "crash"); code != 200 {
		t.Fatalf("crash: %d", code)
	}
	eventually(t, "a replacement", func() bool { return f.ready() == 1 && f.fl.count() == 2 })
	jobs, err := f.s.st.jobs(context.Background(), f.guid)
	if err != nil {
		t.Fatal(err)
	}
	var crashed, active int
	for _, j := range jobs {
		switch {
		case j.Status == jobFinished && j.ExitCode != nil && *j.ExitCode == 3 && j.EndTime != nil:
			crashed++
		case j.Status == jobActive:
			active++
		}
	}
	if crashed != 1 || active != 1 {
		t.Fatalf("jobs %+v: want one finished with code 3 and one active", jobs)
	}

	// Now every start fails: the waits grow.
	f.fl.mu.Lock()
	f.fl.failNext = 3
	f.fl.mu.Unlock()
	f.get(t, "crash")
	eventually(t, "three failed starts", func() bool {
		f.p.mu.Lock()
		defer f.p.mu.Unlock()
		return f.p.failures >= 4
	})
	f.p.mu.Lock()
	wait := time.Until(f.p.notBefore)
	f.p.mu.Unlock()
	if wait <= minBackoff {
		t.Fatalf("after 4 failures the next start waits %s, want more than %s", wait, minBackoff)
	}
	eventually(t, "a process after the failures", func() bool { return f.ready() == 1 })
	if code, _ := f.get(t, ""); code != 200 {
		t.Fatalf("after recovery: %d", code)
	}
}

// TestSchedulerStopsIdle: processes idle for idle_timeout go down to
// min_processes; the next request starts one again.
func TestSchedulerStopsIdle(t *testing.T) {
	for _, minProcs := range []int{0, 1} {
		t.Run("min "+strconv.Itoa(minProcs), func(t *testing.T) {
			sc := testSchedule()
			sc.minProcs, sc.maxConns, sc.loadFactor, sc.idle = minProcs, 1, 1, 300*time.Millisecond
			f := newSchedFixture(t, sc)
			done := make(chan struct{})
			for range 2 {
				go func() { f.fetch("hold"); done <- struct{}{} }()
			}
			eventually(t, "two processes", func() bool { return f.ready() == 2 })
			close(f.fl.hold)
			<-done
			<-done
			eventually(t, "idle processes stopped", func() bool { return f.ready() == minProcs })
			if code, _ := f.get(t, ""); code != 200 {
				t.Fatalf("after idle stop: %d", code)
			}
		})
	}
}

// TestSchedulerRescheduleAndKill: raising min_processes starts processes at
// once; killing one (the jobs API's DELETE) replaces it without backoff.
func TestSchedulerRescheduleAndKill(t *testing.T) {
	f := newSchedFixture(t, testSchedule())
	f.get(t, "")
	sc := testSchedule()
	sc.minProcs = 3
	f.p.setSchedule(sc)
	eventually(t, "three processes", func() bool { return f.ready() == 3 })
	procs := f.p.processes()
	if !f.p.kill(procs[0].Key) {
		t.Fatal("kill: process not found")
	}
	eventually(t, "a replacement", func() bool { return f.ready() == 3 && f.fl.count() == 4 })
	f.p.mu.Lock()
	failures := f.p.failures
	f.p.mu.Unlock()
	if failures != 0 {
		t.Fatalf("a killed process counted as %d failures", failures)
	}
	j, err := f.s.st.job(context.Background(), f.guid, procs[0].Key)
	if err != nil {
		t.Fatal(err)
	}
	if j.Status != jobFinished {
		t.Fatalf("killed job status %d, want finished", j.Status)
	}
	lines, err := f.s.readJobLog(procs[0].Key, 10)
	if err != nil || len(lines) != 1 || lines[0].D == "" {
		t.Fatalf("job log %v, %v: want the process's one line", lines, err)
	}
}

// TestSchedulerRestart: a restart (environment variables changed) replaces
// every process, without counting as a failure, and min_processes come back.
func TestSchedulerRestart(t *testing.T) {
	sc := testSchedule()
	sc.minProcs = 2
	f := newSchedFixture(t, sc)
	f.get(t, "")
	eventually(t, "two processes", func() bool { return f.ready() == 2 })
	before := map[string]bool{}
	for _, p := range f.p.processes() {
		before[p.Key] = true
	}
	f.s.rt.restart(f.guid)
	eventually(t, "two new processes", func() bool {
		ps := f.p.processes()
		if len(ps) != 2 {
			return false
		}
		for _, p := range ps {
			if before[p.Key] || p.Stopping {
				return false
			}
		}
		return true
	})
	f.p.mu.Lock()
	failures := f.p.failures
	f.p.mu.Unlock()
	if failures != 0 {
		t.Fatalf("a restart counted as %d failures", failures)
	}
	if code, _ := f.get(t, ""); code != 200 {
		t.Fatalf("after restart: %d", code)
	}
}

// TestWant: how many processes the load asks for — enough that requests
// in flight and waiting stay within load_factor of capacity, at least
// min_processes, at most max_processes.
func TestWant(t *testing.T) {
	tests := []struct {
		name                       string
		min, max, conns            int
		factor                     float64
		inflight, waiting, running int
		want                       int
	}{
		{"idle, no minimum", 0, 3, 20, 0.5, 0, 0, 0, 0},
		{"idle keeps the minimum", 2, 3, 20, 0.5, 0, 0, 0, 2},
		{"a waiting request starts one", 0, 3, 20, 0.5, 0, 1, 0, 1},
		{"half full at factor 0.5 is enough", 0, 3, 20, 0.5, 10, 0, 1, 1},
		{"one over the factor asks for another", 0, 3, 20, 0.5, 11, 0, 1, 2},
		{"factor 1 fills processes first", 0, 3, 1, 1, 1, 1, 1, 2},
		{"capped by max_processes", 0, 3, 1, 1, 3, 5, 3, 3},
		{"factor 0: as many as allowed", 0, 3, 20, 0, 1, 0, 1, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := &pool{procs: make([]*proc, tt.running)}
			p.sched.Store(&schedule{minProcs: tt.min, maxProcs: tt.max, maxConns: tt.conns, loadFactor: tt.factor})
			p.inflight.Store(int64(tt.inflight))
			p.waiting.Store(int32(tt.waiting))
			if got := p.wantLocked(); got != tt.want {
				t.Errorf("want %d processes, got %d", tt.want, got)
			}
		})
	}
}
