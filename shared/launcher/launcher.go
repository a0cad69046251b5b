// Package launcher starts and supervises the processes the products run for
// their users: Connect's published apps (uvicorn, gunicorn, streamlit, …) and
// Workbench's IDE sessions. Callers describe a job with a Spec and get a Job
// back from a Launcher; Local runs jobs as child processes on this machine, a
// Kubernetes backend will run them as pods behind the same interface.
// Supervisor keeps a number of instances of a job running, restarting crashed
// ones with exponential backoff.
package launcher

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"time"
)

// DefaultStartTimeout bounds the wait for a job's port when Spec.StartTimeout
// is zero. Apps that import a large scientific stack can take tens of seconds
// before they listen, so this is generous.
const DefaultStartTimeout = 60 * time.Second

// Spec describes one job.
type Spec struct {
	// Name identifies the job in logs and errors, e.g. "content-<guid>-1".
	Name string
	// Command is the argv. A Command[0] without a slash is looked up in the
	// PATH of Env, not of this process, so the job finds the interpreter of
	// its own environment (a virtualenv's bin first).
	Command []string
	// Dir is the working directory; empty means the launcher's own.
	Dir string
	// Env is the job's complete environment. Nothing is inherited unless the
	// caller passes os.Environ(): the server's secrets and configuration
	// must not leak into user code by default.
	Env []string
	// Port, when > 0, is where the job is expected to listen on 127.0.0.1;
	// Start returns only once the port accepts TCP connections.
	Port int
	// StartTimeout bounds that wait (DefaultStartTimeout when zero).
	StartTimeout time.Duration
	// User, when set, is the unprivileged account the job runs as. The Local
	// launcher can only switch users when running as root; otherwise User
	// must be empty or name the current user, and any other value makes
	// Start fail rather than silently run the job with the server's rights.
	User string
	// Output receives the job's stdout and stderr, interleaved, a whole line
	// per Write (lines longer than 64 KiB are split). Writes happen on one
	// goroutine, so the writer needs no locking of its own, but a slow writer
	// slows the job down once the pipe is full. May be nil.
	Output io.Writer
}

// Validate reports the first problem with s.
func (s Spec) Validate() error {
	switch {
	case s.Name == "":
		return errors.New("launcher: spec has no name")
	case len(s.Command) == 0 || s.Command[0] == "":
		return fmt.Errorf("launcher: job %q has no command", s.Name)
	case s.Port < 0 || s.Port > 65535:
		return fmt.Errorf("launcher: job %q: port %d out of range", s.Name, s.Port)
	case s.StartTimeout < 0:
		return fmt.Errorf("launcher: job %q: negative start timeout", s.Name)
	}
	return nil
}

// Job is a started job.
type Job interface {
	// ID is unique among the launcher's jobs.
	ID() string
	// Wait blocks until the job has exited and returns nil for exit code 0,
	// an error otherwise (also when it was stopped by a signal).
	Wait() error
	// Stop asks the job and everything it started to exit (SIGTERM to the
	// process group for Local) and kills them when ctx is done. It returns
	// once the job is gone; stopping a finished job is a no-op.
	Stop(ctx context.Context) error
	// Done is closed when the job has exited and its output is drained.
	Done() <-chan struct{}
	// ExitCode is the exit status once Done is closed; -1 while running or
	// when the job was ended by a signal.
	ExitCode() int
}

// Launcher starts jobs.
type Launcher interface {
	// Start starts the job described by spec. When spec.Port > 0 it returns
	// once the port accepts connections; if the job exits or StartTimeout
	// passes first, the job is cleaned up and Start returns an error wrapping
	// ErrExited or ErrStartTimeout. Cancelling ctx aborts the start (and
	// kills the job); once Start has returned, ctx no longer matters.
	Start(ctx context.Context, spec Spec) (Job, error)
}

var (
	// ErrExited means the job exited before its port accepted connections.
	ErrExited = errors.New("exited before it was ready")
	// ErrStartTimeout means the job's port did not accept connections
	// within StartTimeout.
	ErrStartTimeout = errors.New("did not listen in time")
	// ErrPortInUse means something already listens on the job's port, so
	// waiting for it would succeed without the job.
	ErrPortInUse = errors.New("port already in use")
)

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago. Another
// process can take it before the job binds it; Start detects that case
// (ErrPortInUse) and callers retry with a new port.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("launcher: free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
