package launcher

import (
	"bufio"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

const (
	// tailLines is how much output a start error quotes: enough for a
	// Python traceback's last frames and the exception.
	tailLines = 20
	// drainTimeout bounds the wait for the output pipe to close after the
	// job has exited. A process that left the job's process group (setsid)
	// can hold the pipe open forever; Done must not wait for it.
	drainTimeout = 2 * time.Second
	// pollInterval is how often Start tries the job's port.
	pollInterval = 50 * time.Millisecond
)

// Local runs jobs as child processes of this one. Each job gets its own
// process group, so that stopping it also stops what it started (uvicorn's
// and gunicorn's workers, a notebook's kernels). When a job's main process
// exits, whatever is left of its group is killed too: a job owns its port and
// its children, and nothing may outlive it unsupervised.
type Local struct {
	// Logger receives job starts and exits; nil discards them.
	Logger *slog.Logger
}

var _ Launcher = (*Local)(nil)

func (l *Local) log() *slog.Logger {
	if l == nil || l.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return l.Logger
}

// Start implements Launcher.
func (l *Local) Start(ctx context.Context, spec Spec) (Job, error) {
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("launcher: job %q: %w", spec.Name, err)
	}
	path, err := lookPath(spec.Command[0], spec.Env)
	if err != nil {
		return nil, fmt.Errorf("launcher: job %q: %w", spec.Name, err)
	}
	cred, err := credential(spec.User)
	if err != nil {
		return nil, fmt.Errorf("launcher: job %q: %w", spec.Name, err)
	}
	if spec.Port > 0 && dial(spec.Port) {
		return nil, fmt.Errorf("launcher: job %q: 127.0.0.1:%d: %w", spec.Name, spec.Port, ErrPortInUse)
	}

	// One pipe for stdout and stderr keeps their lines in the order the job
	// wrote them, and as an *os.File it is handed to the child directly, so
	// exec.Cmd.Wait does not wait for copying goroutines.
	pr, pw, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("launcher: job %q: pipe: %w", spec.Name, err)
	}
	env := spec.Env
	if env == nil {
		env = []string{} // nil would make exec inherit our environment
	}
	cmd := &exec.Cmd{
		Path:   path,
		Args:   spec.Command,
		Dir:    spec.Dir,
		Env:    env,
		Stdout: pw,
		Stderr: pw,
		SysProcAttr: &syscall.SysProcAttr{
			Setpgid:    true,
			Credential: cred,
		},
	}
	if err := cmd.Start(); err != nil {
		pr.Close()
		pw.Close()
		return nil, fmt.Errorf("launcher: job %q: start: %w", spec.Name, err)
	}
	pw.Close() // the child has its copy; ours would keep the pipe from reaching EOF

	j := &LocalJob{
		id:       fmt.Sprintf("local-%d-%s", cmd.Process.Pid, rand.Text()[:8]),
		name:     spec.Name,
		pid:      cmd.Process.Pid,
		cmd:      cmd,
		done:     make(chan struct{}),
		exitCode: -1,
		tail:     &tail{max: tailLines},
		log:      l.log().With("job", spec.Name),
	}
	j.log.Info("job started", "id", j.id, "pid", j.pid, "command", spec.Command, "user", spec.User)
	drained := make(chan struct{})
	go j.copyOutput(pr, spec.Output, drained)
	go j.wait(pr, drained)

	if spec.Port > 0 {
		if err := j.waitReady(ctx, spec); err != nil {
			return nil, err
		}
	}
	// What a job prints while it starts is read as it comes (a deploy's
	// log shows it); once it has run a while, its output is paced.
	time.AfterFunc(paceAfter, func() { j.paced.Store(true) })
	return j, nil
}

// LocalJob is a job started by Local.
type LocalJob struct {
	id, name string
	pid      int
	cmd      *exec.Cmd
	tail     *tail
	log      *slog.Logger
	paced    atomic.Bool // its output is read in batches (pacedReader)

	done     chan struct{}
	waitErr  error // written before done is closed
	exitCode int   // written before done is closed
}

var _ Job = (*LocalJob)(nil)

// ID implements Job.
func (j *LocalJob) ID() string { return j.id }

// Pid is the job's main process; its process group has the same id.
func (j *LocalJob) Pid() int { return j.pid }

// Done implements Job.
func (j *LocalJob) Done() <-chan struct{} { return j.done }

// Wait implements Job.
func (j *LocalJob) Wait() error {
	<-j.done
	return j.waitErr
}

// ExitCode implements Job.
func (j *LocalJob) ExitCode() int {
	select {
	case <-j.done:
		return j.exitCode
	default:
		return -1
	}
}

// LastOutput returns up to the last 20 lines the job wrote.
func (j *LocalJob) LastOutput() []string { return j.tail.lines() }

// Stop implements Job: SIGTERM to the process group, SIGKILL when ctx is done.
func (j *LocalJob) Stop(ctx context.Context) error {
	select {
	case <-j.done:
		return nil
	default:
	}
	if err := j.signal(syscall.SIGTERM); err != nil {
		return fmt.Errorf("launcher: stop job %q: %w", j.name, err)
	}
	select {
	case <-j.done:
		return nil
	case <-ctx.Done():
	}
	j.log.Warn("job did not stop in time, killing it", "id", j.id)
	if err := j.signal(syscall.SIGKILL); err != nil {
		return fmt.Errorf("launcher: kill job %q: %w", j.name, err)
	}
	<-j.done
	return nil
}

// signal sends sig to the job's process group. A group that is already gone
// is not an error. The group id is the leader's pid, which the kernel does
// not reuse while any member of the group is alive.
func (j *LocalJob) signal(sig syscall.Signal) error {
	err := syscall.Kill(-j.pid, sig)
	if errors.Is(err, syscall.ESRCH) {
		return nil
	}
	return err
}

func (j *LocalJob) wait(pr *os.File, drained <-chan struct{}) {
	err := j.cmd.Wait()
	code := j.cmd.ProcessState.ExitCode()
	// The leader is gone; so must be the rest of its group.
	if kerr := j.signal(syscall.SIGKILL); kerr != nil {
		j.log.Warn("killing the job's process group", "id", j.id, "err", kerr)
	}
	t := time.NewTimer(drainTimeout)
	select {
	case <-drained:
		t.Stop()
	case <-t.C:
		j.log.Warn("job output still open after exit; closing it", "id", j.id)
		pr.Close() // unblocks the reader
		<-drained
	}
	if err != nil {
		err = fmt.Errorf("launcher: job %q: %w", j.name, err)
	}
	j.waitErr, j.exitCode = err, code
	j.log.Info("job exited", "id", j.id, "pid", j.pid, "code", code, "state", j.cmd.ProcessState.String())
	close(j.done)
}

// copyOutput forwards whole lines to out and keeps the last few for errors.
func (j *LocalJob) copyOutput(pr *os.File, out io.Writer, drained chan<- struct{}) {
	defer close(drained)
	defer pr.Close()
	br := bufio.NewReaderSize(&pacedReader{r: pr, on: &j.paced, sleep: time.Sleep}, 64<<10)
	for {
		line, err := br.ReadSlice('\n')
		if len(line) > 0 {
			j.tail.add(line)
			if out != nil {
				// A failing writer must not stop the draining, or the job
				// would block on a full pipe.
				_, _ = out.Write(line)
			}
		}
		if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
			return
		}
	}
}

// outputPace is how long the output of a job that trickles out waits
// before it is read again, once the job has been up for paceAfter.
const (
	outputPace = 20 * time.Millisecond
	paceAfter  = time.Second
)

// pacedReader reads a job's output at most every outputPace while it comes
// in small pieces: an app that logs a line per request (uvicorn's access
// log) then costs a read per batch of lines, not a system call and a
// wakeup of the server per request. A read that fills half the buffer is
// followed at once by the next, so a flood of output is not held back
// (the pipe holds 64 KiB meanwhile), and lines reach Output at most
// outputPace late.
type pacedReader struct {
	r     io.Reader
	on    *atomic.Bool        // pacing has begun
	sleep func(time.Duration) // time.Sleep; tests count the waits
	last  time.Time
	lastN int
}

func (p *pacedReader) Read(b []byte) (int, error) {
	if p.lastN > 0 && p.lastN < len(b)/2 && p.on.Load() {
		if d := outputPace - time.Since(p.last); d > 0 {
			p.sleep(d)
		}
	}
	n, err := p.r.Read(b)
	p.last, p.lastN = time.Now(), n
	return n, err
}

// waitReady polls the job's port until it accepts a connection. On failure
// the job is killed, so the caller never holds a half-started job.
func (j *LocalJob) waitReady(ctx context.Context, spec Spec) error {
	timeout := spec.StartTimeout
	if timeout == 0 {
		timeout = DefaultStartTimeout
	}
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	for {
		if dial(spec.Port) {
			return nil
		}
		select {
		case <-j.done:
			return fmt.Errorf("launcher: job %q exited with code %d before listening on port %d: %w%s",
				j.name, j.exitCode, spec.Port, ErrExited, j.tail.quote())
		case <-deadline.C:
			j.kill()
			return fmt.Errorf("launcher: job %q %w: nothing listened on port %d after %s; killed it%s",
				j.name, ErrStartTimeout, spec.Port, timeout, j.tail.quote())
		case <-ctx.Done():
			j.kill()
			return fmt.Errorf("launcher: job %q: waiting for port %d: %w", j.name, spec.Port, ctx.Err())
		case <-tick.C:
		}
	}
}

func (j *LocalJob) kill() {
	if err := j.signal(syscall.SIGKILL); err != nil {
		j.log.Warn("killing job", "id", j.id, "err", err)
	}
	<-j.done
}

// dial reports whether something accepts TCP connections on 127.0.0.1:port.
func dial(port int) bool {
	c, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// lookPath finds file in the PATH of env (the job's, not ours).
func lookPath(file string, env []string) (string, error) {
	if strings.Contains(file, "/") {
		return file, nil // relative paths resolve against Spec.Dir, as exec does
	}
	var path string
	for _, kv := range env { // the last PATH wins, as in exec
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			path = v
		}
	}
	for _, dir := range filepath.SplitList(path) {
		// Empty and relative entries would resolve against the working
		// directory, which may hold user files; exec.LookPath refuses
		// them for the same reason.
		if !filepath.IsAbs(dir) {
			continue
		}
		p := filepath.Join(dir, file)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%q not found in the job's PATH %q: %w", file, path, exec.ErrNotFound)
}

// credential returns who the job runs as: nil for ourselves.
func credential(name string) (*syscall.Credential, error) {
	if name == "" {
		return nil, nil
	}
	u, err := user.Lookup(name)
	if err != nil {
		return nil, fmt.Errorf("run as %q: %w", name, err)
	}
	if os.Geteuid() != 0 {
		if u.Uid == strconv.Itoa(os.Geteuid()) {
			return nil, nil
		}
		return nil, fmt.Errorf("run as %q: switching users needs root (running as uid %d)", name, os.Geteuid())
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("run as %q: uid %q: %w", name, u.Uid, err)
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("run as %q: gid %q: %w", name, u.Gid, err)
	}
	// Supplementary groups are the user's, never root's: an empty list
	// makes exec clear them.
	var groups []uint32
	if ids, err := u.GroupIds(); err == nil {
		for _, id := range ids {
			if g, err := strconv.ParseUint(id, 10, 32); err == nil {
				groups = append(groups, uint32(g))
			}
		}
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: groups}, nil
}

// tail keeps the last max lines of output.
type tail struct {
	mu  sync.Mutex
	max int
	buf []string
}

func (t *tail) add(line []byte) {
	s := strings.TrimRight(string(line), "\r\n")
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.buf) == t.max {
		copy(t.buf, t.buf[1:])
		t.buf = t.buf[:t.max-1]
	}
	t.buf = append(t.buf, s)
}

func (t *tail) lines() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]string(nil), t.buf...)
}

// quote formats the tail for an error message.
func (t *tail) quote() string {
	lines := t.lines()
	if len(lines) == 0 {
		return " (no output)"
	}
	return "; last output:\n  " + strings.Join(lines, "\n  ")
}
