package launcher

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestNextBackoff(t *testing.T) {
	const lo, hi, reset = 200 * time.Millisecond, 30 * time.Second, time.Minute
	for _, tc := range []struct {
		name      string
		prev, ran time.Duration
		want      time.Duration
	}{
		{"first failure", 0, 0, lo},
		{"doubles", lo, time.Second, 2 * lo},
		{"doubles again", 2 * lo, 0, 4 * lo},
		{"capped", 20 * time.Second, 0, hi},
		{"stays capped", hi, 59 * time.Second, hi},
		{"reset after a healthy run", hi, reset, lo},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := nextBackoff(tc.prev, tc.ran, lo, hi, reset); got != tc.want {
				t.Errorf("nextBackoff(%s, %s) = %s, want %s", tc.prev, tc.ran, got, tc.want)
			}
		})
	}
}

func TestNewSupervisorValidates(t *testing.T) {
	spec := func(int) (Spec, error) { return Spec{}, nil }
	for _, tc := range []struct {
		name string
		cfg  SupervisorConfig
	}{
		{"no launcher", SupervisorConfig{Spec: spec, Instances: 1}},
		{"no spec", SupervisorConfig{Launcher: &Local{}, Instances: 1}},
		{"no instances", SupervisorConfig{Launcher: &Local{}, Spec: spec}},
		{"negative", SupervisorConfig{Launcher: &Local{}, Spec: spec, Instances: 1, MinBackoff: -1}},
		{"max below min", SupervisorConfig{Launcher: &Local{}, Spec: spec, Instances: 1, MinBackoff: time.Second, MaxBackoff: time.Millisecond}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := NewSupervisor(tc.cfg); err == nil {
				t.Fatal("NewSupervisor accepted a bad config")
			}
		})
	}
}

// events collects a supervisor's events and lets the test wait for one.
type events struct {
	mu   sync.Mutex
	all  []Event
	cond chan struct{} // closed and replaced on every event
}

func newEvents() *events { return &events{cond: make(chan struct{})} }

func (e *events) add(ev Event) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.all = append(e.all, ev)
	close(e.cond)
	e.cond = make(chan struct{})
}

// waitFor blocks until ok holds for the events so far.
func (e *events) waitFor(t *testing.T, what string, ok func([]Event) bool) []Event {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		e.mu.Lock()
		all, cond := slices.Clone(e.all), e.cond
		e.mu.Unlock()
		if ok(all) {
			return all
		}
		select {
		case <-cond:
		case <-deadline:
			t.Fatalf("timed out waiting for %s; events: %v", what, all)
		}
	}
}

func count(all []Event, instance int, s State) int {
	n := 0
	for _, e := range all {
		if e.Instance == instance && e.State == s {
			n++
		}
	}
	return n
}

func TestSupervisorRestartsWithBackoff(t *testing.T) {
	ms := time.Millisecond
	for _, tc := range []struct {
		name string
		// step is how far the clock moves on every reading: a job "runs"
		// that long.
		step time.Duration
		want []time.Duration
	}{
		{"crash loop backs off", 0, []time.Duration{ms, 2 * ms, 4 * ms, 8 * ms, 8 * ms}},
		{"healthy runs reset", 2 * time.Minute, []time.Duration{ms, ms, ms, ms}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var clock atomic.Int64
			now := func() time.Time { return time.Unix(0, clock.Add(int64(tc.step))) }
			ev := newEvents()
			var starts atomic.Int32
			sup, err := NewSupervisor(SupervisorConfig{
				Launcher: &Local{},
				Spec: func(i int) (Spec, error) {
					n := starts.Add(1)
					return Spec{
						Name:    fmt.Sprintf("crash-%d-%d", i, n),
						Command: []string{"sh", "-c", "echo crashing; exit 3"},
						Env:     os.Environ(),
					}, nil
				},
				Instances:  2,
				MinBackoff: ms,
				MaxBackoff: 8 * ms,
				OnChange:   ev.add,
				Now:        now,
			})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(t.Context())
			done := make(chan error)
			go func() { done <- sup.Run(ctx) }()
			all := ev.waitFor(t, "restarts", func(all []Event) bool {
				return count(all, 0, StateBackoff) >= len(tc.want) && count(all, 1, StateBackoff) >= len(tc.want)
			})
			cancel()
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			for i := range 2 {
				var got []time.Duration
				for _, e := range all {
					if e.Instance == i && e.State == StateBackoff {
						got = append(got, e.Backoff)
						if e.Err == nil || e.Job == nil || e.Job.ExitCode() != 3 {
							t.Errorf("backoff event without the crashed job: %+v", e)
						}
					}
				}
				if !slices.Equal(got[:len(tc.want)], tc.want) {
					t.Errorf("instance %d backoffs %v, want %v", i, got, tc.want)
				}
			}
			all = ev.waitFor(t, "stopped", func(all []Event) bool {
				return count(all, 0, StateStopped) == 1 && count(all, 1, StateStopped) == 1
			})
			// Restart counts rise by one per start.
			for k, e := range all {
				if e.State == StateStarting && e.Restarts != count(all[:k], e.Instance, StateStarting) {
					t.Errorf("event %+v: wrong restart count", e)
				}
			}
		})
	}
}

func TestSupervisorStopsInstances(t *testing.T) {
	ev := newEvents()
	sup, err := NewSupervisor(SupervisorConfig{
		Launcher: &Local{},
		Spec: func(i int) (Spec, error) {
			port, err := FreePort()
			if err != nil {
				return Spec{}, err
			}
			return Spec{
				Name:    "web-" + strconv.Itoa(i),
				Command: []string{"python3", "-m", "http.server", strconv.Itoa(port), "--bind", "127.0.0.1"},
				Dir:     t.TempDir(),
				Env:     os.Environ(),
				Port:    port,
			}, nil
		},
		Instances:   2,
		StopTimeout: 5 * time.Second,
		OnChange:    ev.add,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error)
	go func() { done <- sup.Run(ctx) }()
	all := ev.waitFor(t, "two running instances", func(all []Event) bool {
		return count(all, 0, StateRunning) == 1 && count(all, 1, StateRunning) == 1
	})
	var jobs []*LocalJob
	ports := map[int]bool{}
	for _, e := range all {
		if e.State == StateRunning {
			jobs = append(jobs, e.Job.(*LocalJob))
			ports[e.Spec.Port] = true
		}
	}
	if len(ports) != 2 {
		t.Errorf("instances share a port: %v", ports)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// Run returned, so every job must already be done.
	for _, j := range jobs {
		select {
		case <-j.Done():
		default:
			t.Errorf("job %s still running after Run returned", j.ID())
		}
		gone(t, j.Pid())
	}
	all = ev.waitFor(t, "stopped", func(all []Event) bool { return true })
	if n := count(all, 0, StateBackoff) + count(all, 1, StateBackoff); n != 0 {
		t.Errorf("%d restarts while stopping", n)
	}
	if count(all, 0, StateStopped) != 1 || count(all, 1, StateStopped) != 1 {
		t.Errorf("want one stopped event per instance: %v", all)
	}
}
