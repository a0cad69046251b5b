package connect

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/atrium-suite/atrium/shared/launcher"
	"github.com/atrium-suite/atrium/shared/proxy"
)

// schedule is a content item's scheduler settings resolved against the
// server's defaults (Posit Connect's runtime settings).
type schedule struct {
	minProcs, maxProcs, maxConns int
	loadFactor                   float64
	idle, init                   time.Duration
}

// scheduleFor resolves sc against the server's defaults. A content item may
// lower max_processes below the default min_processes; the minimum then
// follows the maximum rather than refusing to run.
func (s *Server) scheduleFor(sc Sched) schedule {
	d := s.Config.Connect
	out := schedule{
		minProcs:   d.MinProcesses,
		maxProcs:   d.MaxProcesses,
		maxConns:   d.MaxConnsPerProcess,
		loadFactor: d.LoadFactor,
		idle:       d.ProcessIdleTimeout.D(),
		init:       d.InitTimeout.D(),
	}
	if sc.MinProcesses != nil {
		out.minProcs = int(*sc.MinProcesses)
	}
	if sc.MaxProcesses != nil {
		out.maxProcs = int(*sc.MaxProcesses)
	}
	if sc.MaxConnsPerProcess != nil {
		out.maxConns = int(*sc.MaxConnsPerProcess)
	}
	if sc.LoadFactor != nil {
		out.loadFactor = *sc.LoadFactor
	}
	if sc.IdleTimeout != nil {
		out.idle = time.Duration(*sc.IdleTimeout) * time.Second
	}
	if sc.InitTimeout != nil {
		out.init = time.Duration(*sc.InitTimeout) * time.Second
	}
	out.maxProcs = max(out.maxProcs, 1)
	out.minProcs = min(out.minProcs, out.maxProcs)
	return out
}

// Restart backoff: a process that exits is started again after minBackoff,
// doubling while it keeps failing up to maxBackoff; a process that ran for
// resetAfter was healthy, and its exit starts the count again.
const (
	minBackoff = 200 * time.Millisecond
	maxBackoff = 30 * time.Second
	resetAfter = time.Minute
)

// errBusy wraps proxy.ErrNoTarget, so the proxy answers 503 with
// Retry-After, when every process is full and no more may start.
var errBusy = fmt.Errorf("%w: every process of the content is at max_conns_per_process", proxy.ErrNoTarget)

// pool runs the processes of one bundle of one content item under one URL
// prefix, and is the Balancer of the proxy in front of them. It starts a
// process when the first request comes (or at once for min_processes),
// more while the load exceeds load_factor (up to max_processes), restarts
// crashed ones with backoff, stops idle ones down to min_processes, and
// holds requests while every process is full.
type pool struct {
	s        *Server
	log      *slog.Logger
	guid     string
	bundleID int64
	tag      string
	// spec builds the process for port; Name, Port and Output are the
	// pool's.
	spec func(ctx context.Context, port int) (launcher.Spec, error)
	// envKey is the Python environment the processes start from ("" for
	// none); acquire readies it (building it again when it is missing)
	// and holds it until release, while a process starts.
	envKey  string
	acquire func(ctx context.Context) (release func(), err error)
	bal     *proxy.StickyBalancer
	handler http.Handler
	out     *jobOutput

	// The hot path (Pick and release) reads these without the lock.
	sched    atomic.Pointer[schedule]
	inflight atomic.Int64
	ready    atomic.Int32 // len(procs)
	starting atomic.Int32
	waiting  atomic.Int32

	mu        sync.Mutex
	procs     []*proc
	failures  int       // consecutive failed starts or crashes
	notBefore time.Time // no start before this (backoff)
	lastErr   error
	timer     *time.Timer // a start waiting for notBefore
	// startingKeys cancel the starts in progress, by job key, so a job
	// can be killed before it listens.
	startingKeys map[string]context.CancelFunc
	closed       bool
	wake         chan struct{} // closed and replaced when capacity changes

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// proc is one running process of a pool.
type proc struct {
	key       string
	job       launcher.Job
	log       *jobLog
	target    proxy.Target
	started   time.Time
	idleSince time.Time // zero while it has requests
	stopping  bool      // the pool stopped it; its exit is no failure
	// envMark is the environment's ready marker as the process started
	// (nil: no environment): a different file later means the
	// environment was built again under it.
	envMark os.FileInfo
}

type poolConfig struct {
	guid     string
	bundleID int64
	tag      string
	prefix   string
	strip    bool
	sched    schedule
	spec     func(ctx context.Context, port int) (launcher.Spec, error)
	envKey   string
	acquire  func(ctx context.Context) (release func(), err error)
}

func (s *Server) newPool(cfg poolConfig) (*pool, error) {
	bal, err := proxy.NewSticky(proxy.StickyConfig{Prefix: cfg.prefix, LeastLoaded: true})
	if err != nil {
		return nil, err
	}
	log := s.Log.With("content_guid", cfg.guid, "bundle_id", cfg.bundleID)
	p := &pool{
		s: s, log: log, guid: cfg.guid, bundleID: cfg.bundleID, tag: cfg.tag, spec: cfg.spec,
		envKey: cfg.envKey, acquire: cfg.acquire, bal: bal, out: &jobOutput{log: log}, wake: make(chan struct{}),
		startingKeys: map[string]context.CancelFunc{},
	}
	p.sched.Store(&cfg.sched)
	p.handler, err = proxy.New(proxy.Config{Prefix: cfg.prefix, StripPrefix: cfg.strip, Balancer: p, Logger: s.Log})
	if err != nil {
		return nil, err
	}
	p.ctx, p.cancel = context.WithCancel(context.Background())
	p.wg.Go(p.reap)
	s.addEnvUser(p)
	return p, nil
}

// startFirst starts one process and returns once it answers (or failed):
// a deploy verifies this way that the bundle runs. Its output also goes to
// tee, the deploy's log. The pool then starts up to min_processes.
func (p *pool) startFirst(ctx context.Context, tee io.Writer) error {
	p.out.setTee(tee)
	defer p.out.setTee(nil)
	p.starting.Add(1)
	pr, err := p.launch(ctx)
	p.mu.Lock()
	defer p.mu.Unlock()
	p.starting.Add(-1)
	if err != nil {
		return err
	}
	p.addLocked(pr)
	p.reconcileLocked()
	return nil
}

// Pick implements proxy.Balancer: a process with room, or a wait for one.
// The proxy itself uses Admit, Done and the sticky balancer instead.
func (p *pool) Pick(r *http.Request) (proxy.Target, func(), error) {
	for {
		if err := p.Admit(r.Context()); err != nil {
			return proxy.Target{}, nil, err
		}
		t, release, err := p.bal.Pick(r)
		if err == nil {
			return t, func() { release(); p.Done() }, nil
		}
		p.Done() // a process exited between the count and the pick: wait
	}
}

// Admit implements proxy.Admitter: it returns once a process has room for
// a request (reserving it; Done gives it back), starting processes as the
// load asks, or fails when none can come in time or ctx ends.
func (p *pool) Admit(ctx context.Context) error {
	var timeout <-chan time.Time
	for {
		sc := p.sched.Load()
		n := int64(p.ready.Load())
		capacity := n * int64(sc.maxConns)
		// Reserve a slot (compare-and-swap, so concurrent requests cannot
		// overfill the pool); the balancer then chooses the process:
		// least loaded, or the one the client is pinned to.
		if load, ok := p.reserve(capacity); ok {
			if n+int64(p.starting.Load()) < int64(sc.maxProcs) && float64(load+1) > sc.loadFactor*float64(capacity) {
				p.scale()
			}
			return nil
		}
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			return proxy.ErrNoTarget
		}
		if len(p.procs) == 0 && p.starting.Load() == 0 && p.lastErr != nil && p.timer != nil {
			// Crashing: answer now rather than hold the request through
			// the backoff; a later request tries again.
			err := p.lastErr
			p.mu.Unlock()
			return fmt.Errorf("content %s is failing to start: %w", p.guid, err)
		}
		p.waiting.Add(1)
		p.reconcileLocked()
		wake := p.wake
		p.mu.Unlock()
		if timeout == nil {
			t := time.NewTimer(sc.init)
			defer t.Stop()
			timeout = t.C
		}
		select {
		case <-wake:
			p.waiting.Add(-1)
		case <-ctx.Done():
			p.waiting.Add(-1)
			return ctx.Err()
		case <-timeout:
			p.waiting.Add(-1)
			return errBusy
		}
	}
}

var _ proxy.Admitter = (*pool)(nil)

// StickyBalancer implements proxy.Admitter.
func (p *pool) StickyBalancer() *proxy.StickyBalancer { return p.bal }

// reserve takes one of capacity slots; it returns the load before.
func (p *pool) reserve(capacity int64) (int64, bool) {
	for {
		load := p.inflight.Load()
		if load >= capacity {
			return load, false
		}
		if p.inflight.CompareAndSwap(load, load+1) {
			return load, true
		}
	}
}

// AffinityCookie implements proxy.Sticky.
func (p *pool) AffinityCookie(r *http.Request, t proxy.Target) *http.Cookie {
	return p.bal.AffinityCookie(r, t)
}

// Done implements proxy.Admitter: an admitted request is over.
func (p *pool) Done() {
	p.inflight.Add(-1)
	if p.waiting.Load() > 0 {
		p.mu.Lock()
		p.broadcastLocked()
		p.mu.Unlock()
	}
}

func (p *pool) scale() {
	p.mu.Lock()
	p.reconcileLocked()
	p.mu.Unlock()
}

func (p *pool) broadcastLocked() {
	close(p.wake)
	p.wake = make(chan struct{})
}

// wantLocked is how many processes the pool should have now: at least
// min_processes, one when anyone waits, and enough that the requests in
// flight and waiting stay within load_factor of capacity.
func (p *pool) wantLocked() int {
	sc := p.sched.Load()
	demand := p.inflight.Load() + int64(p.waiting.Load())
	want := sc.minProcs
	if demand > 0 {
		per := sc.loadFactor * float64(sc.maxConns)
		need := sc.maxProcs
		if per > 0 {
			// Enough that the load is at or under the factor: the same
			// rule as Admit's "start another when load+1 exceeds it", so
			// the reaper's reconcile does not start what it just stopped.
			need = int(math.Ceil(float64(demand) / per))
		}
		want = max(want, need, 1)
		if int64(len(p.procs)*sc.maxConns) <= demand && p.waiting.Load() > 0 {
			want = max(want, len(p.procs)+1) // full, and requests wait
		}
	}
	return min(want, sc.maxProcs)
}

// reconcileLocked starts processes up to wantLocked, honouring the backoff.
func (p *pool) reconcileLocked() {
	if p.closed {
		return
	}
	for int(p.starting.Load())+len(p.procs) < p.wantLocked() {
		if wait := time.Until(p.notBefore); wait > 0 {
			if p.timer == nil {
				p.timer = time.AfterFunc(wait, func() {
					p.mu.Lock()
					defer p.mu.Unlock()
					p.timer = nil
					p.reconcileLocked()
				})
			}
			return
		}
		p.starting.Add(1)
		p.wg.Go(p.run)
	}
}

// run starts one process in the background and watches it.
func (p *pool) run() {
	pr, err := p.launch(p.ctx)
	p.mu.Lock()
	defer p.mu.Unlock()
	p.starting.Add(-1)
	if err != nil {
		if p.ctx.Err() == nil && !errors.Is(err, errKilled) {
			p.failLocked(err, 0)
		}
		p.reconcileLocked() // try again (after the backoff) if still needed
		p.broadcastLocked()
		return
	}
	p.addLocked(pr)
}

// addLocked routes to a started process and watches it until it exits.
func (p *pool) addLocked(pr *proc) {
	if p.closed {
		pr.stopping = true
		go p.stopProc(pr)
	}
	p.procs = append(p.procs, pr)
	p.setTargetsLocked()
	p.failures, p.lastErr = 0, nil
	p.broadcastLocked()
	p.wg.Go(func() { p.watch(pr) })
}

func (p *pool) watch(pr *proc) {
	<-pr.job.Done()
	code := pr.job.ExitCode()
	p.s.jobEnded(pr.key, code)
	pr.log.close()
	p.mu.Lock()
	defer p.mu.Unlock()
	for i, q := range p.procs {
		if q == pr {
			p.procs = append(p.procs[:i], p.procs[i+1:]...)
			break
		}
	}
	p.setTargetsLocked()
	if !pr.stopping && !p.closed {
		p.failLocked(fmt.Errorf("process %s exited with code %d", pr.key, code), time.Since(pr.started))
	}
	p.reconcileLocked() // a killed process is replaced when still needed
	p.broadcastLocked()
}

// failLocked records a failed start or a crash and sets the backoff.
func (p *pool) failLocked(err error, ran time.Duration) {
	if ran >= resetAfter {
		p.failures = 0
	}
	p.failures++
	backoff := min(minBackoff<<min(p.failures-1, 16), maxBackoff)
	p.notBefore = time.Now().Add(backoff)
	p.lastErr = err
	p.log.Warn("content process failed; restarting after backoff", "err", err, "backoff", backoff, "failures", p.failures)
}

func (p *pool) setTargetsLocked() {
	ts := make([]proxy.Target, 0, len(p.procs))
	for _, pr := range p.procs {
		if !pr.stopping {
			ts = append(ts, pr.target)
		}
	}
	if err := p.bal.Set(ts); err != nil {
		p.log.Error("routing to processes", "err", err) // IDs are unique; cannot happen
	}
	p.ready.Store(int32(len(ts)))
}

// errKilled is a start ended by the jobs API, not by the app.
var errKilled = errors.New("killed while starting")

// launch starts one process on a free port and records it as a job.
func (p *pool) launch(ctx context.Context) (*proc, error) {
	sc := p.sched.Load()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var envMark os.FileInfo
	if p.acquire != nil {
		// Held until the process has started (or failed to), so the
		// environment cannot be deleted under a starting process; one
		// deleted while the pool was idle is built again here.
		release, err := p.acquire(ctx)
		if err != nil {
			return nil, err
		}
		defer release()
		// Which build of the environment the process runs from (the
		// reaper compares: envGone).
		envMark, _ = os.Stat(filepath.Join(p.s.envsDir, p.envKey, readyMarker))
	}
	for attempt := 0; ; attempt++ {
		port, err := launcher.FreePort()
		if err != nil {
			return nil, err
		}
		spec, err := p.spec(ctx, port)
		if err != nil {
			return nil, err
		}
		jl, err := p.s.jobStarting(ctx, p.guid, p.bundleID, p.tag, spec.User)
		if err != nil {
			return nil, err
		}
		p.mu.Lock()
		p.startingKeys[jl.key] = cancel
		p.mu.Unlock()
		spec.Name = fmt.Sprintf("content-%s-%d-%s", p.guid, p.bundleID, jl.key)
		spec.Port = port
		spec.StartTimeout = sc.init
		spec.Output = io.MultiWriter(p.out, jl)
		job, err := p.s.rt.launcher.Start(ctx, spec)
		p.mu.Lock()
		delete(p.startingKeys, jl.key)
		p.mu.Unlock()
		if err != nil {
			jl.failed()
			if ctx.Err() != nil && p.ctx.Err() == nil {
				return nil, errKilled
			}
			if errors.Is(err, launcher.ErrPortInUse) && attempt < 3 {
				continue
			}
			return nil, failf("the app did not start: %v", err)
		}
		pid := 0
		if j, ok := job.(interface{ Pid() int }); ok {
			pid = j.Pid()
		}
		p.s.jobRunning(jl, pid)
		return &proc{
			key:     jl.key,
			job:     job,
			log:     jl,
			target:  proxy.Target{URL: &url.URL{Scheme: "http", Host: "127.0.0.1:" + strconv.Itoa(port)}, ID: job.ID()},
			started: time.Now(),
			envMark: envMark,
		}, nil
	}
}

// reap stops processes idle for idle_timeout while more than min_processes
// run. It ticks at a quarter of the timeout, so a process goes between one
// and 1.25 timeouts after its last request.
func (p *pool) reap() {
	for {
		sc := p.sched.Load()
		t := time.NewTimer(max(sc.idle/4, 100*time.Millisecond))
		select {
		case <-p.ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		if p.envGone() {
			// Another server sharing the data dir deleted the runtime
			// cache (or someone removed the directory): what runs from
			// it would fail on its next import. Restarting builds it
			// again, or waits for the server building it.
			p.log.Warn("the content's environment is gone or was built again: restarting its processes", "env", p.envKey)
			p.restart()
			continue
		}
		busy := p.bal.InFlight()
		now := time.Now()
		p.mu.Lock()
		live := 0
		for _, pr := range p.procs {
			if !pr.stopping {
				live++
			}
		}
		for _, pr := range p.procs {
			if pr.stopping {
				continue
			}
			if busy[pr.target.ID] > 0 {
				pr.idleSince = time.Time{}
				continue
			}
			if pr.idleSince.IsZero() {
				pr.idleSince = now
				continue
			}
			if (now.Sub(pr.idleSince) >= sc.idle && live > sc.minProcs) || live > sc.maxProcs {
				p.log.Info("stopping idle content process", "job", pr.key, "idle", now.Sub(pr.idleSince).Round(time.Second))
				pr.stopping = true
				live--
				go p.stopProc(pr)
			}
		}
		p.setTargetsLocked()
		p.reconcileLocked()
		p.mu.Unlock()
	}
}

func (p *pool) stopProc(pr *proc) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := pr.job.Stop(ctx); err != nil {
		p.log.Warn("stop content process", "job", pr.key, "err", err)
	}
}

// kill stops the process with job key; false when it is not one of ours.
func (p *pool) kill(key string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if cancel, ok := p.startingKeys[key]; ok {
		cancel()
		return true
	}
	for _, pr := range p.procs {
		if pr.key == key && !pr.stopping {
			pr.stopping = true
			p.setTargetsLocked()
			go p.stopProc(pr)
			return true
		}
	}
	return false
}

// restart replaces every running process: they stop now, and the
// scheduler starts new ones as min_processes and waiting requests ask
// (with the content's current environment variables).
func (p *pool) restart() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.stopAllLocked()
	p.reconcileLocked()
	p.broadcastLocked()
}

// stopAllLocked stops every process (their exits come later) and ends the
// starts in progress — one would come up with the old environment, and it
// holds the environment's read lock until its process listens, which a
// cache delete waits for — and returns how many processes it stopped.
func (p *pool) stopAllLocked() int {
	n := 0
	for _, pr := range p.procs {
		if !pr.stopping {
			pr.stopping = true
			n++
			go p.stopProc(pr)
		}
	}
	p.cancelStartsLocked()
	p.setTargetsLocked()
	return n
}

func (p *pool) cancelStartsLocked() {
	for key, cancel := range p.startingKeys {
		cancel()
		delete(p.startingKeys, key)
	}
}

// envGone reports whether processes run from an environment that is gone
// from disk or was built again since they started (another server's cache
// delete and rebuild, or someone's hand).
func (p *pool) envGone() bool {
	if p.envKey == "" {
		return false
	}
	p.mu.Lock()
	var marks []os.FileInfo
	for _, pr := range p.procs {
		if !pr.stopping && pr.envMark != nil {
			marks = append(marks, pr.envMark)
		}
	}
	p.mu.Unlock()
	if len(marks) == 0 {
		return false
	}
	now, err := os.Stat(filepath.Join(p.s.envsDir, p.envKey, readyMarker))
	if err != nil {
		return true
	}
	// The file and its time: a marker written by a new build may reuse the
	// inode of the one removed with the old environment.
	return slices.ContainsFunc(marks, func(m os.FileInfo) bool { return !os.SameFile(m, now) || !m.ModTime().Equal(now.ModTime()) })
}

// cancelStarts ends the starts in progress (see stopAllLocked).
func (p *pool) cancelStarts() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cancelStartsLocked()
}

// stopProcesses stops every process as restart does, but returns only once
// they have exited (or ctx ends), so that nothing runs any more from the
// files they started from. It returns how many it stopped. The scheduler
// then starts processes again as min_processes and requests ask.
func (p *pool) stopProcesses(ctx context.Context) int {
	p.mu.Lock()
	procs := slices.Clone(p.procs) // also those already stopping (idle, killed)
	n := p.stopAllLocked()
	p.broadcastLocked()
	p.mu.Unlock()
	for _, pr := range procs {
		select {
		case <-pr.job.Done():
		case <-ctx.Done():
			return n
		}
	}
	p.scale()
	return n
}

// setSchedule applies changed settings: more processes start at once, extra
// ones go at the reaper's next tick.
func (p *pool) setSchedule(sc schedule) {
	p.sched.Store(&sc)
	p.mu.Lock()
	defer p.mu.Unlock()
	p.reconcileLocked()
	p.broadcastLocked()
}

// close stops every process and returns once they are gone.
func (p *pool) close() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	if p.timer != nil {
		p.timer.Stop()
	}
	procs := append([]*proc(nil), p.procs...)
	for _, pr := range procs {
		pr.stopping = true
	}
	p.setTargetsLocked()
	p.broadcastLocked()
	p.mu.Unlock()
	p.s.dropEnvUser(p)
	p.cancel() // aborts starts in progress
	var wg sync.WaitGroup
	for _, pr := range procs {
		wg.Go(func() { p.stopProc(pr) })
	}
	wg.Wait()
	p.wg.Wait()
}

// processes describes the running processes, for the jobs API and the UI.
func (p *pool) processes() []procInfo {
	busy := p.bal.InFlight()
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]procInfo, 0, len(p.procs))
	for _, pr := range p.procs {
		out = append(out, procInfo{Key: pr.key, BundleID: p.bundleID, Started: pr.started, InFlight: busy[pr.target.ID], Stopping: pr.stopping})
	}
	return out
}

// procInfo is one running process as the UI shows it.
type procInfo struct {
	Key      string
	BundleID int64
	Started  time.Time
	InFlight int
	Stopping bool
}
