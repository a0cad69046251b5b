package e2e_test

import (
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// runtimeScript drives the scheduler through the real posit-sdk: runtime
// settings, jobs, job logs and kills, and a crash. Each step prints
// "OK <step>".
const runtimeScript = `
import os, time, requests
from posit import connect

url, key, guid = os.environ["CONNECT_SERVER"], os.environ["CONNECT_API_KEY"], os.environ["GUID"]
client = connect.Client(url, key)
app_url = url + "/content/" + guid + "/"
hdr = {"Authorization": "Key " + key}

def ok(step):
    print("OK " + step, flush=True)

def until(what, cond, timeout=90):
    deadline = time.time() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.time() > deadline:
            raise AssertionError("timed out waiting for " + what)
        time.sleep(0.2)

def active(item):
    return [j for j in item.jobs.fetch() if j["status"] == 0]

item = client.content.get(guid)
item.update(min_processes=2, max_processes=3)
item = client.content.get(guid)
assert item["min_processes"] == 2 and item["max_processes"] == 3, item
jobs = until("two processes", lambda: len(active(item)) == 2 and active(item))
assert len({j["pid"] for j in jobs}) == 2, jobs
assert all(j["tag"] == "run_fastapi_app" and j["app_guid"] == guid for j in jobs), jobs
ok("min_processes")

# Whoever answers is one of the listed processes, running unprivileged in
# its own directory.
pids = {int(j["pid"]) for j in jobs}
who = requests.get(app_url, headers=hdr).json()
assert who["pid"] in pids, (who, pids)
assert who["cwd_writable"], who
assert not who["probe_readable"], who
want_user = os.environ["WANT_USER"]
assert who["user"] == want_user, (who, want_user)
ok("run_as " + who["user"])

# A job's log, and killing it: another takes its place.
def started(j):
    log = requests.get(url + "/__api__/v1/content/" + guid + "/jobs/" + j["key"] + "/log", headers=hdr).json()
    return any("Application startup complete" in e["data"] for e in log["entries"])
job = jobs[0]
until("the job's log to show the app started", lambda: started(job))
assert item.jobs.find_by(key=job["key"])["key"] == job["key"]
assert item.jobs.find(job["key"])["key"] == job["key"]
job.destroy()
until("a replacement", lambda: len(active(item)) == 2 and job["key"] not in {j["key"] for j in active(item)})
ok("kill")

# posit-sdk's restart() changes an environment variable and asks for the
# content: every process is replaced.
before = {j["key"] for j in active(item)}
item.restart()
until("restarted processes", lambda: len(active(item)) == 2 and not before & {j["key"] for j in active(item)})
assert requests.get(app_url, headers=hdr).status_code == 200
ok("restart")

# A crash: the job ends with the process's exit code and the app answers
# again.
before = {j["key"] for j in active(item)}
try:
    requests.get(app_url + "crash", headers=hdr, timeout=10)
except requests.RequestException:
    pass
crashed = until("the crashed job", lambda: [j for j in item.jobs.fetch() if j["key"] in before and j["status"] == 1 and j["exit_code"] == 3])
until("two processes again", lambda: len(active(item)) == 2)
assert requests.get(app_url, headers=hdr).status_code == 200
ok("crash")

item.update(min_processes=None)
assert client.content.get(guid)["min_processes"] is None
item.update(min_processes=1)
ok("done")
`

// warmScript checks, after a restart, that content with min_processes is
// running before anyone asks for it.
const warmScript = `
import os, time, requests
url, key, guid = os.environ["CONNECT_SERVER"], os.environ["CONNECT_API_KEY"], os.environ["GUID"]
hdr = {"Authorization": "Key " + key}
deadline = time.time() + 90
while True:
    jobs = requests.get(url + "/__api__/v1/content/" + guid + "/jobs", headers=hdr).json()
    running = [j for j in jobs if j["status"] == 0]
    if running:
        break
    assert time.time() < deadline, jobs
    time.sleep(0.2)
print("OK warm", flush=True)
`

// TestConnectRuntime: a deployed FastAPI app (its environment built with pip: no uv on the
// PATH) kept at min_processes, its
// processes listed and killed through posit-sdk's jobs API, restarted after
// a crash, and run as the unprivileged content user (when the suite runs
// as root) in a working directory of its own.
func TestConnectRuntime(t *testing.T) {
	if testing.Short() {
		t.Skip("deploys a Python app")
	}
	venv := connectClients(t)
	// No uv on this server's PATH, and only the system's python3: Connect
	// falls back to venv and pip (the other deploy tests use uv).
	env := []string{"ATRIUM_PACKAGEMANAGER_PYPI_UPSTREAM=", "PATH=/usr/local/bin:/usr/bin:/bin"}
	p, dataDir := suiteWithIdentity(t, env...)
	url := p.urls["Connect"]
	key := regexp.MustCompile(`atr_\S+`).FindString(atriumCLI(t, dataDir, "", "users", "token", "admin", "--product", "connect"))
	home := t.TempDir()
	if _, ok := rsconnectCLI(t, home, "add", "-s", url, "-n", "atrium", "-k", key); !ok {
		t.Fatal("rsconnect add failed")
	}
	app := copyDir(t, filepath.Join(repoRoot(t), "e2e", "testdata", "connect", "runtime"))
	probe := filepath.Join(dataDir, "secret.key")
	out, ok := rsconnectCLI(t, home, "deploy", "fastapi", "-n", "atrium", "-E", "PROBE_FILE="+probe, app)
	if !ok || !strings.Contains(out, "$ python -m pip install") {
		t.Fatal("rsconnect deploy failed or did not build the environment with pip")
	}
	m := contentURLPattern.FindStringSubmatch(out)
	if m == nil {
		t.Fatal("no content URL in the deploy output")
	}
	guid := filepath.Base(strings.TrimSuffix(m[1], "/"))

	wantUser := "atrium-content"
	if os.Geteuid() != 0 {
		u, err := user.Current()
		if err != nil {
			t.Fatal(err)
		}
		wantUser = u.Username
	}
	script := filepath.Join(t.TempDir(), "runtime.py")
	if err := os.WriteFile(script, []byte(runtimeScript), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(filepath.Join(venv, "bin", "python"), script)
	cmd.Env = append(os.Environ(), "CONNECT_SERVER="+url, "CONNECT_API_KEY="+key, "GUID="+guid, "WANT_USER="+wantUser, "PYTHONWARNINGS=ignore")
	raw, err := cmd.CombinedOutput()
	t.Logf("posit-sdk runtime script:\n%s", raw)
	if err != nil {
		t.Fatalf("runtime script failed: %v", err)
	}
	for _, step := range []string{"min_processes", "run_as " + wantUser, "kill", "restart", "crash", "done"} {
		if !strings.Contains(string(raw), "OK "+step+"\n") {
			t.Errorf("step %q did not pass", step)
		}
	}

	// Restarted, the server starts content with min_processes by itself.
	if err := p.stop(t); err != nil {
		t.Fatalf("stop: %v", err)
	}
	p = startAtrium(t, env, append(displayNames(), "Identity"), "up", "--config", filepath.Join(filepath.Dir(dataDir), "atrium.toml"), "--data-dir", dataDir)
	url = p.urls["Connect"]
	if err := os.WriteFile(script, []byte(warmScript), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd = exec.Command(filepath.Join(venv, "bin", "python"), script)
	cmd.Env = append(os.Environ(), "CONNECT_SERVER="+url, "CONNECT_API_KEY="+key, "GUID="+guid, "PYTHONWARNINGS=ignore")
	if raw, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(raw), "OK warm") {
		t.Fatalf("after a restart, content with min_processes 1 is not running: %v\n%s", err, raw)
	}
}
