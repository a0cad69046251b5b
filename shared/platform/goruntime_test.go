package platform

import (
	"context"
	"log/slog"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestServerEnviron(t *testing.T) {
	m := "GODEBUG=" + MonitorGODEBUG
	cases := []struct {
		name  string
		in    []string
		want  []string
		again bool
	}{
		{"no GODEBUG", []string{"A=1"}, []string{"A=1", m}, true},
		{"empty GODEBUG", []string{"GODEBUG=", "A=1"}, []string{m, "A=1"}, true},
		{"other settings kept", []string{"GODEBUG=panicnil=1,http2client=0"}, []string{"GODEBUG=panicnil=1,http2client=0," + MonitorGODEBUG}, true},
		{"operator's schedtrace", []string{"GODEBUG=schedtrace=0"}, []string{"GODEBUG=schedtrace=0"}, false},
		{"operator's schedtrace among others", []string{"GODEBUG=gctrace=1, schedtrace=1000"}, []string{"GODEBUG=gctrace=1, schedtrace=1000"}, false},
		{"already set (the exec'd process)", []string{m}, []string{m}, false},
		{"scheddetail is not schedtrace", []string{"GODEBUG=scheddetail=1"}, []string{"GODEBUG=scheddetail=1," + MonitorGODEBUG}, true},
		{"last GODEBUG counts, as for the runtime", []string{"GODEBUG=schedtrace=0", "GODEBUG=x=1"}, []string{"GODEBUG=schedtrace=0", "GODEBUG=x=1," + MonitorGODEBUG}, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			in := slices.Clone(tc.in)
			got, again := ServerEnviron(in)
			if again != tc.again || !slices.Equal(got, tc.want) {
				t.Errorf("ServerEnviron(%q) = %q, %v; want %q, %v", tc.in, got, again, tc.want, tc.again)
			}
			if !slices.Equal(in, tc.in) {
				t.Errorf("ServerEnviron changed its argument to %q", in)
			}
		})
	}
}

func TestIsServerCommand(t *testing.T) {
	cases := []struct {
		args []string
		want bool
	}{
		{[]string{"up"}, true},
		{[]string{"serve", "connect"}, true},
		{[]string{"--config", "up", "pm", "list"}, false}, // "up" is the config file's name
		{[]string{"-c", "atrium.toml", "up"}, true},
		{[]string{"--data-dir", "/d", "serve", "connect"}, true},
		{[]string{"--verbose", "up"}, true},
		{[]string{"pm", "list"}, false},
		{[]string{"users", "lock", "up"}, false},
		{[]string{"version"}, false},
		{nil, false},
	}
	for _, tc := range cases {
		if got := IsServerCommand(tc.args); got != tc.want {
			t.Errorf("IsServerCommand(%q) = %v, want %v", tc.args, got, tc.want)
		}
	}
}

func TestServerProcs(t *testing.T) {
	cases := []struct {
		configured, available int
		proxies               bool
		want                  int
	}{
		{0, 1, true, 1},
		{0, 2, true, 1},
		{0, 3, true, 1},
		{0, 4, true, 2},
		{0, 16, true, 8},
		{0, 1, false, 1},
		{0, 2, false, 2},
		{0, 16, false, 16},
		{3, 2, true, 3}, // what the operator asked for, even above the CPUs
		{1, 64, false, 1},
	}
	for _, tc := range cases {
		if got := ServerProcs(tc.configured, tc.available, tc.proxies); got != tc.want {
			t.Errorf("ServerProcs(%d, %d, %v) = %d, want %d", tc.configured, tc.available, tc.proxies, got, tc.want)
		}
	}
}

// FuzzServerEnviron: for any environment, ServerEnviron leaves its argument
// alone, and what it returns runs with a schedtrace setting in its last
// GODEBUG — the operator's, kept as it was, or Atrium's added to theirs.
func FuzzServerEnviron(f *testing.F) {
	for _, s := range []string{"", "A=1", "GODEBUG=", "GODEBUG=schedtrace=0", "GODEBUG=x=1,y=2", "GODEBUG=a\nGODEBUG=schedtrace=5"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, env string) {
		in := strings.Split(env, "\n")
		orig := slices.Clone(in)
		out, again := ServerEnviron(in)
		if !slices.Equal(in, orig) {
			t.Fatalf("argument changed: %q → %q", orig, in)
		}
		last := ""
		for _, kv := range out {
			if v, ok := strings.CutPrefix(kv, "GODEBUG="); ok {
				last = v
			}
		}
		has := false
		for _, s := range strings.Split(last, ",") {
			if name, _, _ := strings.Cut(s, "="); strings.TrimSpace(name) == "schedtrace" {
				has = true
			}
		}
		if !has {
			t.Fatalf("ServerEnviron(%q) = %q: no schedtrace in the GODEBUG the runtime reads", in, out)
		}
		if !again && !slices.Equal(out, in) {
			t.Fatalf("ServerEnviron(%q) changed the environment but said no exec is needed: %q", in, out)
		}
		if again && (len(out) < len(in) || len(out) > len(in)+1) {
			t.Fatalf("ServerEnviron(%q) = %q: settings lost or more than one added", in, out)
		}
	})
}

// TestProcsGovernor: the Ps grow to hi after raiseAfter busy periods in a
// row, shrink to lo after lowerAfter quiet ones, and stay put in between
// or when a streak is broken.
func TestProcsGovernor(t *testing.T) {
	cases := []struct {
		name   string
		lo, hi int
		used   []float64 // CPUs busy, one per period
		want   []int     // Ps after each period
	}{
		{"busy grows", 1, 2, []float64{0.9, 0.9, 0.9}, []int{1, 2, 2}},
		{"one busy period is not enough", 1, 2, []float64{0.9, 0.3, 0.9, 0.3}, []int{1, 1, 1, 1}},
		{"a proxy behind Python apps stays", 1, 2, repeat(0.3, 10), repeat(1, 10)},
		{"60% of a P is not busy", 1, 2, []float64{0.6, 0.6, 0.6}, []int{1, 1, 1}},
		{"quiet shrinks after lowerAfter",
			1, 2, append([]float64{1, 1}, repeat(0.2, lowerAfter)...), append([]int{1, 2}, append(repeat(2, lowerAfter-1), 1)...)},
		{"between the thresholds stays", 1, 2, append([]float64{1, 1}, repeat(0.45, lowerAfter+5)...), append([]int{1, 2}, repeat(2, lowerAfter+5)...)},
		{"a busy period breaks a quiet streak",
			1, 2, append(append([]float64{1, 1}, repeat(0.2, lowerAfter-1)...), append([]float64{0.9}, repeat(0.2, lowerAfter-1)...)...),
			append([]int{1, 2}, repeat(2, 2*lowerAfter-1)...)},
		{"eight CPUs", 4, 8, []float64{2.5, 2.5, 1.7, 1.7}, []int{4, 8, 8, 8}},
		{"no room", 2, 2, []float64{2, 2, 2}, []int{2, 2, 2}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := &procsGovernor{lo: tc.lo, hi: tc.hi, cur: tc.lo}
			for i, u := range tc.used {
				if got := g.next(u); got != tc.want[i] {
					t.Fatalf("period %d (%.2f CPUs busy): %d Ps, want %d", i, u, got, tc.want[i])
				}
			}
		})
	}
}

// repeat is n times v.
func repeat[T any](v T, n int) []T {
	out := make([]T, n)
	for i := range out {
		out[i] = v
	}
	return out
}

// TestFollowLoad: followLoad sets the runtime's GOMAXPROCS as the
// governor decides, from the process's CPU time per tick.
func TestFollowLoad(t *testing.T) {
	before := runtime.GOMAXPROCS(1)
	t.Cleanup(func() { runtime.GOMAXPROCS(before) })
	// The test hands followLoad each tick and then the CPU time it reads
	// for it, so every period is exactly what the test says.
	ticks, cpus := make(chan time.Time), make(chan time.Duration)
	cpuTime := func() (time.Duration, bool) { return <-cpus, true }
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		followLoad(ctx, 1, 2, slog.New(slog.DiscardHandler), cpuTime, ticks)
	}()
	var cpu time.Duration
	cpus <- cpu
	now := time.Now().Add(time.Millisecond)
	period := func(busy float64) {
		now = now.Add(time.Second)
		cpu += time.Duration(busy * float64(time.Second))
		ticks <- now
		cpus <- cpu
	}
	// Once a repeated tick (no time passed: no decision) has been taken,
	// the last period's decision is applied.
	settle := func() { ticks <- now }
	period(0.95)
	period(0.95)
	settle()
	if n := runtime.GOMAXPROCS(0); n != 2 {
		t.Fatalf("after two busy periods GOMAXPROCS is %d, want 2", n)
	}
	for range lowerAfter {
		period(0.1)
	}
	settle()
	if n := runtime.GOMAXPROCS(0); n != 1 {
		t.Fatalf("after %d quiet periods GOMAXPROCS is %d, want 1", lowerAfter, n)
	}
	cancel()
	<-done
}
