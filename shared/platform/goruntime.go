package platform

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"strings"
	"syscall"
	"time"
)

// The Go runtime's scheduler settings for a server process, measured on
// Connect's proxy (docs/connect.md, "The Go runtime"). A server spends most
// of its time waiting: on clients, on content processes, on the database.
// Two runtime behaviours make that waiting expensive on a small machine:
//
//   - With as many Ps (GOMAXPROCS) as CPUs, every goroutine the network
//     poller wakes while a P is idle starts another thread spinning to look
//     for work; under load that is a futex wake and a context switch per
//     request or more: behind a FastAPI app 2 Ps cost 1.6 times the CPU
//     per proxied request of 1 P on 2 CPUs. ServerProcs picks fewer Ps
//     than CPUs for a process that proxies.
//   - The runtime's monitor thread (sysmon) goes into a deep sleep whenever
//     every P is idle, and the next system call wakes it, after which it
//     polls every 20 µs for a while. A server that idles between requests
//     pays that wake-up and those polls per request: measured, a third of
//     the proxy's CPU time behind a FastAPI app. Nothing in the runtime's
//     API turns the deep sleep off; GODEBUG's schedtrace, set before the
//     runtime starts, does — it keeps the monitor on its normal schedule
//     (backing off to one poll per 10 ms when there is nothing to do) so
//     that it prints a scheduler trace every schedtrace milliseconds.
//     ServerEnviron sets the longest period GODEBUG takes (24.8 days).

// MonitorGODEBUG is the GODEBUG setting ServerEnviron adds: the scheduler
// trace at its longest period, for the side effect of keeping the runtime's
// monitor thread out of its deep sleep. The runtime counts the period from
// the machine's boot, so on a machine up longer than 24.8 days the process
// prints one "SCHED" line to standard error as it starts and one every
// 24.8 days after; and a fatal runtime error prints the scheduler's state
// with its stack traces.
const MonitorGODEBUG = "schedtrace=2147483647"

// ServerEnviron returns the environment a server process (atrium up,
// atrium serve) should run under, and whether it differs from environ: the
// caller then replaces the process with a fresh copy of itself under it,
// since the runtime reads GODEBUG only as it starts. An environment whose
// GODEBUG already names schedtrace is left as it is, which is how an
// operator opts out (GODEBUG=schedtrace=0).
func ServerEnviron(environ []string) ([]string, bool) {
	godebug, at := "", -1
	for i, kv := range environ {
		if v, ok := strings.CutPrefix(kv, "GODEBUG="); ok {
			godebug, at = v, i
		}
	}
	for _, setting := range strings.Split(godebug, ",") {
		if name, _, _ := strings.Cut(setting, "="); strings.TrimSpace(name) == "schedtrace" {
			return environ, false
		}
	}
	out := append([]string(nil), environ...)
	if at < 0 {
		return append(out, "GODEBUG="+MonitorGODEBUG), true
	}
	if strings.TrimSpace(godebug) == "" {
		out[at] = "GODEBUG=" + MonitorGODEBUG
	} else {
		out[at] = "GODEBUG=" + godebug + "," + MonitorGODEBUG
	}
	return out, true
}

// ExecUnderServerEnviron replaces the process with a fresh copy of itself
// (same program, arguments and pid) under ServerEnviron's environment when
// that differs from the current one. It returns nil when there is nothing
// to do and an error only when the exec failed; the caller then runs on,
// at a higher CPU cost per request.
func ExecUnderServerEnviron() error {
	env, again := ServerEnviron(os.Environ())
	if !again {
		return nil
	}
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("exec with %s: %w", MonitorGODEBUG, err)
	}
	return fmt.Errorf("exec with %s: %w", MonitorGODEBUG, syscall.Exec(exe, os.Args, env))
}

// IsServerCommand reports whether the atrium command line args (without the
// program name) run a server: its first word that is not a flag is up or
// serve. Only servers get ServerEnviron; a short CLI command is not worth
// a second exec.
func IsServerCommand(args []string) bool {
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "-c" || a == "--config" || a == "--data-dir":
			i++ // the flag's value
		case strings.HasPrefix(a, "-"):
		default:
			return a == "up" || a == "serve"
		}
	}
	return false
}

// ServerProcs is how many Ps (GOMAXPROCS) a server runs with: configured
// when it is positive; otherwise, for a process that proxies app traffic
// (the whole suite, Connect, Workbench), half of available (the runtime's
// own default: the CPUs the process may use), at least 1, and all of
// available for one that only serves (Package Manager or the sign-in
// provider alone).
//
// A proxy's own work is a small share of its server's load — the content,
// sessions and builds run as other processes — and it mostly waits, so
// fewer Ps spend less CPU waking threads (see above): on the 2-CPU machine
// it was measured on, 1 P proxied as many requests per second as 2 at
// 30–45% less CPU each. Serving is different: a response big enough that
// the kernel takes tens of microseconds to write it holds the P meanwhile,
// and Package Manager's project pages were served 20–30% faster with 2 Ps
// than 1.
func ServerProcs(configured, available int, proxies bool) int {
	switch {
	case configured > 0:
		return configured
	case proxies:
		return max(1, available/2)
	default:
		return max(1, available)
	}
}

// SetServerProcs applies ServerProcs to this process and returns the
// number in effect, and the most it may grow to under load (FollowLoad),
// which is more only by default (configured 0) in a process that proxies
// on a machine with more CPUs than that. A GOMAXPROCS environment variable
// wins: the runtime has applied it already, and an operator who set it
// meant it.
func SetServerProcs(configured int, proxies bool) (n, most int) {
	if os.Getenv("GOMAXPROCS") != "" {
		n = runtime.GOMAXPROCS(0)
		return n, n
	}
	available := runtime.GOMAXPROCS(0)
	n = ServerProcs(configured, available, proxies)
	runtime.GOMAXPROCS(n)
	if configured == 0 && proxies {
		return n, max(n, available)
	}
	return n, n
}

// Half the CPUs suits a proxy whose apps do the work (see ServerProcs);
// a proxy that is itself the busy part — fast apps, many requests — is
// held back by it: in front of a trivial backend, one P on two CPUs was
// busy 76–90% of the time and proxied 10–25% fewer requests than two Ps
// or nginx's two workers. So by default the Ps follow the process's own
// CPU use: all of the CPUs once it keeps more than 60% of its Ps busy
// (a proxy behind Python apps uses a quarter to a third of one P on that
// machine), back to half once it uses less than 40% of those for a while.
const (
	followPeriod = 250 * time.Millisecond // how often CPU use is sampled
	raiseAfter   = 2                      // busy samples in a row before growing (0.5 s)
	lowerAfter   = 20                     // quiet samples in a row before shrinking (5 s)
)

// procsGovernor decides the Ps from the CPU use of successive periods.
type procsGovernor struct {
	lo, hi, cur int
	busy, quiet int // samples in a row above the raise and below the lower threshold
}

// next takes the CPUs the process kept busy over the last period (1.5:
// one and a half CPUs' worth) and returns the Ps to run with. It grows to
// hi after raiseAfter periods above 60% of the current Ps, and shrinks to
// lo after lowerAfter periods below 40% of lo: between the two the use of
// either setting leaves it where it is, so it does not flap.
func (g *procsGovernor) next(used float64) int {
	switch {
	case g.cur < g.hi && used > 0.6*float64(g.cur):
		g.quiet = 0
		if g.busy++; g.busy >= raiseAfter {
			g.cur, g.busy = g.hi, 0
		}
	case g.cur > g.lo && used < 0.4*float64(g.lo):
		g.busy = 0
		if g.quiet++; g.quiet >= lowerAfter {
			g.cur, g.quiet = g.lo, 0
		}
	default:
		g.busy, g.quiet = 0, 0
	}
	return g.cur
}

// FollowLoad moves GOMAXPROCS between lo and hi as the process's CPU use
// asks (procsGovernor) until ctx ends; log gets each change. It returns at
// once when there is no room to move or the platform does not report the
// process's CPU time.
func FollowLoad(ctx context.Context, lo, hi int, log *slog.Logger) {
	if hi <= lo {
		return
	}
	if _, ok := processCPUTime(); !ok {
		return
	}
	tick := time.NewTicker(followPeriod)
	defer tick.Stop()
	followLoad(ctx, lo, hi, log, processCPUTime, tick.C)
}

// followLoad is FollowLoad with the CPU time and the ticks given (tests).
func followLoad(ctx context.Context, lo, hi int, log *slog.Logger, cpuTime func() (time.Duration, bool), tick <-chan time.Time) {
	g := &procsGovernor{lo: lo, hi: hi, cur: lo}
	last, _ := cpuTime()
	at := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tick:
			if !now.After(at) {
				continue
			}
			cpu, _ := cpuTime()
			used := float64(cpu-last) / float64(now.Sub(at))
			last, at = cpu, now
			if n := g.next(used); n != runtime.GOMAXPROCS(0) {
				runtime.GOMAXPROCS(n)
				log.Info("procs follow the load", "procs", n, "cpu_busy", fmt.Sprintf("%.2f", used))
			}
		}
	}
}
