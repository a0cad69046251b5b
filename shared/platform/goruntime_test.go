package platform

import (
	"slices"
	"strings"
	"testing"
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
