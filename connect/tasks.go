package connect

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/atrium-suite/atrium/shared/auth"
	"github.com/atrium-suite/atrium/shared/httpx"
)

// maxTaskWait bounds a task poll's ?wait=N: clients poll again anyway, and
// a request held open longer would meet proxies' idle timeouts.
const maxTaskWait = 10 * time.Second

// tasks runs background jobs (deploys) and lets pollers wait for their
// output. The log and status live in the database; the notifier only wakes
// waiting polls of this process.
type tasks struct {
	st  *store
	ctx context.Context // ends when the server stops
	wg  sync.WaitGroup

	mu      sync.Mutex
	waiters map[string]chan struct{}
}

func newTasks(ctx context.Context, st *store) *tasks {
	return &tasks{st: st, ctx: ctx, waiters: map[string]chan struct{}{}}
}

// watch returns a channel closed at the task's next change.
func (t *tasks) watch(id string) <-chan struct{} {
	t.mu.Lock()
	defer t.mu.Unlock()
	ch, ok := t.waiters[id]
	if !ok {
		ch = make(chan struct{})
		t.waiters[id] = ch
	}
	return ch
}

func (t *tasks) changed(id string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if ch, ok := t.waiters[id]; ok {
		close(ch)
		delete(t.waiters, id)
	}
}

// taskFailure is an error whose message is the task's error line.
type taskFailure struct{ msg string }

func (e *taskFailure) Error() string { return e.msg }

func failf(format string, args ...any) error { return &taskFailure{fmt.Sprintf(format, args...)} }

// start creates the task and runs fn in the background. fn's log lines go
// to the task's output; its error ends the task with code 1.
func (t *tasks) start(ctx context.Context, task Task, fn func(ctx context.Context, log *taskLog) error) (Task, error) {
	task.ID = newTaskID()
	task, err := t.st.createTask(ctx, task)
	if err != nil {
		return task, err
	}
	t.wg.Add(1)
	go func() {
		defer t.wg.Done()
		log := &taskLog{t: t, id: task.ID}
		err := fn(t.ctx, log)
		log.Flush()
		code, msg := 0, ""
		if err != nil {
			code, msg = 1, err.Error()
			var tf *taskFailure
			if !errors.As(err, &tf) && t.ctx.Err() != nil {
				msg = "the server stopped while this task was running"
			}
			log.Printf("Error: %s", msg)
			log.Flush()
		}
		// The server may be stopping: finish the row regardless.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(t.ctx), 10*time.Second)
		defer cancel()
		if err := t.st.finishTask(ctx, task.ID, code, msg, ""); err != nil {
			log.lastErr = err
		}
		t.changed(task.ID)
	}()
	return task, nil
}

// wait blocks until every task has finished.
func (t *tasks) wait() { t.wg.Wait() }

// taskLog is a task's output: an io.Writer split into lines (for the
// subprocesses it runs) and Printf for the task's own messages.
type taskLog struct {
	t       *tasks
	id      string
	mu      sync.Mutex
	partial []byte
	lastErr error
}

func (l *taskLog) Printf(format string, args ...any) {
	l.append([]string{fmt.Sprintf(format, args...)})
}

func (l *taskLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	l.partial = append(l.partial, p...)
	var lines []string
	for {
		i := bytes.IndexByte(l.partial, '\n')
		if i < 0 {
			break
		}
		lines = append(lines, strings.TrimRight(string(l.partial[:i]), "\r"))
		l.partial = l.partial[i+1:]
	}
	l.mu.Unlock()
	if len(lines) > 0 {
		l.append(lines)
	}
	return len(p), nil
}

// Flush writes a last line without a newline.
func (l *taskLog) Flush() {
	l.mu.Lock()
	rest := string(l.partial)
	l.partial = nil
	l.mu.Unlock()
	if rest != "" {
		l.append([]string{rest})
	}
}

func (l *taskLog) append(lines []string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(l.t.ctx), 10*time.Second)
	defer cancel()
	if err := l.t.st.appendOutput(ctx, l.id, lines); err != nil {
		l.lastErr = err
	}
	l.t.changed(l.id)
}

// taskJSON is GET /__api__/v1/tasks/{id}, the shape rsconnect polls.
type taskJSON struct {
	ID       string   `json:"id"`
	Output   []string `json:"output"`
	Result   any      `json:"result"`
	Finished bool     `json:"finished"`
	Code     int      `json:"code"`
	Error    string   `json:"error"`
	Last     int64    `json:"last"`
	UserID   string   `json:"user_id"`
}

// getTask answers a poll: the output from line ?first=N (0 by default),
// and `last`, the line number to ask for next. With ?wait=N it waits up to
// N seconds (at most maxTaskWait) for new output or the end of the task
// before answering. Only the task's starter and admins may poll it.
func (s *Server) getTask(c *gin.Context) {
	u, _ := auth.CurrentUser(c)
	t, out, first, ok := s.pollTask(c, func(t Task) bool { return t.UserID == u.ID || isAdmin(u) })
	if !ok {
		return
	}
	var result any
	if t.Result != "" {
		result = json.RawMessage(t.Result)
	}
	c.JSON(http.StatusOK, taskJSON{ID: t.ID, Output: out, Result: result, Finished: t.Status != taskRunning,
		Code: t.Code, Error: t.Error, Last: first + int64(len(out)), UserID: t.UserID})
}

// pollTask is the long poll behind getTask and the web UI's log: task
// :id's output from ?first=N, waiting up to ?wait=N seconds (at most
// maxTaskWait) until there is new output or the task ends. A task that
// may not see is answered 404, as one that does not exist. ok is false
// when the answer (an error, or nothing: the client left) is already
// given.
func (s *Server) pollTask(c *gin.Context, may func(Task) bool) (t Task, out []string, first int64, ok bool) {
	ctx := c.Request.Context()
	first, err := queryInt(c, "first")
	if err != nil {
		c.Error(err)
		return t, nil, 0, false
	}
	waitSec, err := queryInt(c, "wait")
	if err != nil {
		c.Error(err)
		return t, nil, 0, false
	}
	wait := min(time.Duration(waitSec)*time.Second, maxTaskWait)
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	for {
		changed := s.tasks.watch(c.Param("id"))
		t, err = s.st.task(ctx, c.Param("id"))
		if errors.Is(err, errNotFound) || (err == nil && !may(t)) {
			c.Error(&httpx.Error{Status: http.StatusNotFound, Code: codeNotFound, Msg: "task not found"})
			return t, nil, 0, false
		} else if err != nil {
			c.Error(httpx.Internal(err))
			return t, nil, 0, false
		}
		out, err = s.st.output(ctx, t.ID, first)
		if err != nil {
			c.Error(httpx.Internal(err))
			return t, nil, 0, false
		}
		if t.Status != taskRunning || len(out) > 0 || wait == 0 {
			return t, out, first, true
		}
		select {
		case <-changed:
		case <-deadline.C:
			wait = 0
		case <-ctx.Done():
			return t, nil, 0, false
		}
	}
}

// queryInt reads a non-negative integer query parameter, 0 when absent.
func queryInt(c *gin.Context, name string) (int64, error) {
	v := c.Query(name)
	if v == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return 0, httpx.BadRequest("query parameter %s must be a non-negative integer, not %q", name, v)
	}
	return n, nil
}
