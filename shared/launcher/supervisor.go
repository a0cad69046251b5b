package launcher

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// State is where one supervised instance is in its life.
type State int

const (
	// StateStarting: Launcher.Start is running (waiting for the port).
	StateStarting State = iota
	// StateRunning: the job is up; Event.Job and Event.Spec.Port say where.
	StateRunning
	// StateBackoff: the job exited or failed to start (Event.Err) and
	// will be started again after Event.Backoff.
	StateBackoff
	// StateStopped: the supervisor was stopped; the instance is gone.
	StateStopped
)

func (s State) String() string {
	switch s {
	case StateStarting:
		return "starting"
	case StateRunning:
		return "running"
	case StateBackoff:
		return "backoff"
	case StateStopped:
		return "stopped"
	}
	return fmt.Sprintf("State(%d)", int(s))
}

// Event reports a state change of one instance.
type Event struct {
	Instance int   // 0 … Instances-1
	State    State // the new state
	Spec     Spec  // what the instance was (or is being) started with
	Job      Job   // the job, in StateRunning and in the StateBackoff after it; nil otherwise
	Err      error // StateBackoff: why the job ended or did not start
	Backoff  time.Duration
	Restarts int // how many times this instance was started after the first
}

// SupervisorConfig configures a Supervisor.
type SupervisorConfig struct {
	Launcher Launcher
	// Spec returns the spec for the next start of instance i. It is called
	// before every start so that a restart gets a fresh port (FreePort) and
	// name.
	Spec func(instance int) (Spec, error)
	// Instances is how many copies to keep running (≥ 1).
	Instances int
	// MinBackoff (200ms), MaxBackoff (30s): the wait before a restart
	// doubles from MinBackoff up to MaxBackoff while the job keeps failing,
	// and goes back to MinBackoff once it ran for ResetAfter (1m).
	MinBackoff, MaxBackoff, ResetAfter time.Duration
	// StopTimeout (10s) is how long a job has to exit after SIGTERM when
	// the supervisor stops.
	StopTimeout time.Duration
	// OnChange is called on every state change. Calls are serialised, so a
	// consumer can update its routing table without its own lock; a slow
	// OnChange delays the other instances' transitions.
	OnChange func(Event)
	Logger   *slog.Logger
	// Now is the clock that measures how long a job ran (time.Now).
	Now func() time.Time
}

// Supervisor keeps Instances copies of a job running, restarting each one
// when it exits (whatever its exit code: a server that exits is down).
type Supervisor struct {
	cfg  SupervisorConfig
	log  *slog.Logger
	emMu sync.Mutex
}

// NewSupervisor validates cfg and fills in its defaults.
func NewSupervisor(cfg SupervisorConfig) (*Supervisor, error) {
	switch {
	case cfg.Launcher == nil:
		return nil, errors.New("launcher: supervisor needs a Launcher")
	case cfg.Spec == nil:
		return nil, errors.New("launcher: supervisor needs a Spec function")
	case cfg.Instances < 1:
		return nil, fmt.Errorf("launcher: supervisor needs at least one instance, got %d", cfg.Instances)
	case cfg.MinBackoff < 0 || cfg.MaxBackoff < 0 || cfg.ResetAfter < 0 || cfg.StopTimeout < 0:
		return nil, errors.New("launcher: supervisor durations must not be negative")
	}
	if cfg.MinBackoff == 0 {
		cfg.MinBackoff = 200 * time.Millisecond
	}
	if cfg.MaxBackoff == 0 {
		cfg.MaxBackoff = 30 * time.Second
	}
	if cfg.MaxBackoff < cfg.MinBackoff {
		return nil, fmt.Errorf("launcher: supervisor MaxBackoff %s is below MinBackoff %s", cfg.MaxBackoff, cfg.MinBackoff)
	}
	if cfg.ResetAfter == 0 {
		cfg.ResetAfter = time.Minute
	}
	if cfg.StopTimeout == 0 {
		cfg.StopTimeout = 10 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Supervisor{cfg: cfg, log: log}, nil
}

// Run starts the instances and keeps them running until ctx is cancelled;
// then it stops them all (SIGTERM, SIGKILL after StopTimeout) and returns
// once they are gone.
func (s *Supervisor) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	for i := range s.cfg.Instances {
		wg.Go(func() { s.instance(ctx, i) })
	}
	wg.Wait()
	return nil
}

func (s *Supervisor) instance(ctx context.Context, i int) {
	var backoff time.Duration
	for restarts := 0; ; restarts++ {
		spec, job, ran, err := s.runOnce(ctx, i, restarts)
		if ctx.Err() != nil {
			s.emit(Event{Instance: i, State: StateStopped, Spec: spec, Restarts: restarts})
			return
		}
		backoff = nextBackoff(backoff, ran, s.cfg.MinBackoff, s.cfg.MaxBackoff, s.cfg.ResetAfter)
		s.log.Warn("instance down, restarting", "instance", i, "job", spec.Name, "err", err, "backoff", backoff)
		s.emit(Event{Instance: i, State: StateBackoff, Spec: spec, Job: job, Err: err, Backoff: backoff, Restarts: restarts})
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			s.emit(Event{Instance: i, State: StateStopped, Spec: spec, Restarts: restarts})
			return
		case <-t.C:
		}
	}
}

// runOnce starts instance i and waits for it to end or for ctx. It returns
// how long the job ran and why it ended.
func (s *Supervisor) runOnce(ctx context.Context, i, restarts int) (Spec, Job, time.Duration, error) {
	spec, err := s.cfg.Spec(i)
	if err != nil {
		return spec, nil, 0, fmt.Errorf("launcher: spec for instance %d: %w", i, err)
	}
	s.emit(Event{Instance: i, State: StateStarting, Spec: spec, Restarts: restarts})
	job, err := s.cfg.Launcher.Start(ctx, spec)
	if err != nil {
		return spec, nil, 0, err
	}
	started := s.cfg.Now()
	s.emit(Event{Instance: i, State: StateRunning, Spec: spec, Job: job, Restarts: restarts})
	select {
	case <-job.Done():
		err := job.Wait()
		if err == nil {
			err = fmt.Errorf("launcher: job %q exited with code 0", spec.Name)
		}
		return spec, job, s.cfg.Now().Sub(started), err
	case <-ctx.Done():
		// The parent context is done; the stop gets its own deadline.
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.StopTimeout)
		defer cancel()
		if err := job.Stop(sctx); err != nil {
			s.log.Error("stopping instance", "instance", i, "job", spec.Name, "err", err)
		}
		return spec, job, s.cfg.Now().Sub(started), ctx.Err()
	}
}

func (s *Supervisor) emit(e Event) {
	if s.cfg.OnChange == nil {
		return
	}
	s.emMu.Lock()
	defer s.emMu.Unlock()
	s.cfg.OnChange(e)
}

// nextBackoff is the wait before a restart: lo after the first failure or
// after a run of at least reset (the job was healthy, this is a new
// problem), otherwise double the previous wait up to hi.
func nextBackoff(prev, ran, lo, hi, reset time.Duration) time.Duration {
	if prev == 0 || ran >= reset {
		return lo
	}
	return min(prev*2, hi)
}
