package platform

import (
	"fmt"
	"os"
	"runtime"
	"strings"
	"syscall"
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
// number in effect. A GOMAXPROCS environment variable wins: the runtime has
// applied it already, and an operator who set it meant it.
func SetServerProcs(configured int, proxies bool) int {
	if os.Getenv("GOMAXPROCS") != "" {
		return runtime.GOMAXPROCS(0)
	}
	n := ServerProcs(configured, runtime.GOMAXPROCS(0), proxies)
	runtime.GOMAXPROCS(n)
	return n
}
