package e2e_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

var (
	pyToolsOnce sync.Once
	pyToolsDir  string
	pyToolsErr  error
)

// pyTools is a venv with twine, uv, build and pypiserver
// (scripts/pytools.sh, cached outside the clone).
func pyTools(t *testing.T) string {
	t.Helper()
	pyToolsOnce.Do(func() {
		cmd := exec.Command(filepath.Join(repoRoot(t), "scripts", "pytools.sh"))
		cmd.Stderr = os.Stderr
		out, err := cmd.Output()
		pyToolsDir, pyToolsErr = strings.TrimSpace(string(out)), err
	})
	if pyToolsErr != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("scripts/pytools.sh: %v", pyToolsErr)
		}
		t.Skipf("Python tools unavailable: %v", pyToolsErr)
	}
	return pyToolsDir
}

func run(t *testing.T, dir string, env []string, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// buildDists builds a wheel and an sdist of testdata/py/<name> into dir.
func buildDists(t *testing.T, tools, name, dir string) []string {
	t.Helper()
	src := t.TempDir()
	run(t, "", nil, "cp", "-r", filepath.Join(repoRoot(t), "e2e", "testdata", "py", name)+"/.", src)
	run(t, src, nil, filepath.Join(tools, "bin", "python"), "-m", "build", "--no-isolation", "--outdir", dir, ".")
	var files []string
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		files = append(files, filepath.Join(dir, e.Name()))
	}
	return files
}

func newVenv(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "venv")
	run(t, "", nil, "python3", "-m", "venv", dir)
	return dir
}

// TestPackageManagerPython: twine uploads to the default pypi repository,
// pip and uv install from it, and a snapshot URL keeps serving what was
// there when it was taken.
func TestPackageManagerPython(t *testing.T) {
	tools := pyTools(t)
	p, dataDir := suiteWithIdentity(t)
	pm := p.urls["Package Manager"]
	// Two ways to be allowed to upload: a Package Manager token scoped to
	// the source (rspm's model), or a publisher's suite API key.
	key := strings.TrimSpace(atriumCLI(t, dataDir, "", "pm", "create", "token", "--scope", "sources:write", "--sources", "pypi-local"))
	userKey := strings.TrimSpace(atriumCLI(t, dataDir, "", "users", "token", "admin", "--product", "packagemanager"))
	atriumCLI(t, dataDir, "", "pm", "create", "source", "--name", "other-local", "--type", "local-python")
	otherKey := strings.TrimSpace(atriumCLI(t, dataDir, "", "pm", "create", "token", "--sources", "other-local"))

	v1 := buildDists(t, tools, "atr-demo-1.0.0", t.TempDir())
	v2 := buildDists(t, tools, "atr-demo-1.1.0", t.TempDir())
	twine := func(key string, files ...string) (string, error) {
		cmd := exec.Command(filepath.Join(tools, "bin", "twine"), append([]string{"upload", "--non-interactive",
			"--disable-progress-bar", "--repository-url", pm + "/upload/pypi-local/", "-u", "__token__", "-p", key}, files...)...)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	for _, wrong := range []string{"atr_wrong", "atrpm_wrong", otherKey} {
		if out, err := twine(wrong, v1...); err == nil {
			t.Fatalf("upload with key %.8s… succeeded:\n%s", wrong, out)
		}
	}
	if out, err := twine(key, v1...); err != nil {
		t.Fatalf("twine upload: %v\n%s", err, out)
	}
	var snap struct {
		Transaction int64 `json:"transaction"`
	}
	if err := json.Unmarshal([]byte(atriumCLI(t, dataDir, "", "pm", "snapshot", "--repo", "pypi", "-o", "json")), &snap); err != nil {
		t.Fatal(err)
	}
	if out, err := twine(userKey, v2...); err != nil {
		t.Fatalf("twine upload 1.1.0: %v\n%s", err, out)
	}

	index := pm + "/pypi/latest/simple/"
	venv := newVenv(t)
	run(t, "", nil, filepath.Join(venv, "bin", "pip"), "install", "-q", "--index-url", index, "atr-demo")
	if out := run(t, "", nil, filepath.Join(venv, "bin", "python"), "-c", "import atrdemo; print(atrdemo.VERSION)"); strings.TrimSpace(out) != "1.1.0" {
		t.Errorf("pip installed %q from latest, want 1.1.0", out)
	}
	// The snapshot taken before 1.1.0 still gives 1.0.0.
	frozen := fmt.Sprintf("%s/pypi/%d/simple/", pm, snap.Transaction)
	venv2 := newVenv(t)
	run(t, "", nil, filepath.Join(tools, "bin", "uv"), "pip", "install", "--python", filepath.Join(venv2, "bin", "python"), "--index-url", frozen, "atr-demo")
	if out := run(t, "", nil, filepath.Join(venv2, "bin", "python"), "-c", "import atrdemo; print(atrdemo.VERSION)"); strings.TrimSpace(out) != "1.0.0" {
		t.Errorf("uv installed %q from snapshot %d, want 1.0.0", out, snap.Transaction)
	}
	dl := t.TempDir()
	run(t, "", nil, filepath.Join(tools, "bin", "python"), "-m", "pip", "download", "-q", "--no-deps", "--no-build-isolation", "--no-binary", ":all:", "-d", dl, "--index-url", index, "atr-demo==1.0.0")
	// setuptools names the sdist atr-demo-… or atr_demo-… by version.
	_, err1 := os.Stat(filepath.Join(dl, "atr-demo-1.0.0.tar.gz"))
	_, err2 := os.Stat(filepath.Join(dl, "atr_demo-1.0.0.tar.gz"))
	if err1 != nil && err2 != nil {
		t.Errorf("pip download of the sdist: %v", err2)
	}
	// uv add in a project that names the repository as its index.
	proj := t.TempDir()
	run(t, proj, nil, filepath.Join(tools, "bin", "uv"), "init", "--bare", "--name", "consumer", "--python", "python3")
	run(t, proj, []string{"UV_DEFAULT_INDEX=" + index}, filepath.Join(tools, "bin", "uv"), "add", "atr-demo==1.0.0")
	if lock, _ := os.ReadFile(filepath.Join(proj, "uv.lock")); !strings.Contains(string(lock), `name = "atr-demo"`) {
		t.Errorf("uv add did not lock atr-demo:\n%s", lock)
	}

	// The protocol, as clients see it.
	req := func(method, u, accept string, hdr ...string) (*http.Response, string) {
		r, _ := http.NewRequest(method, u, nil)
		if accept != "" {
			r.Header.Set("Accept", accept)
		}
		for i := 0; i+1 < len(hdr); i += 2 {
			r.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := http.DefaultTransport.RoundTrip(r)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	resp, body := req("GET", index+"atr-demo/", "application/vnd.pypi.simple.v1+json")
	if ct := resp.Header.Get("Content-Type"); ct != "application/vnd.pypi.simple.v1+json" || resp.Header.Get("Vary") != "Accept" {
		t.Errorf("JSON page: Content-Type %q, Vary %q", ct, resp.Header.Get("Vary"))
	}
	var page struct {
		Versions []string `json:"versions"`
		Files    []struct {
			Filename     string            `json:"filename"`
			URL          string            `json:"url"`
			Hashes       map[string]string `json:"hashes"`
			CoreMetadata any               `json:"core-metadata"`
		} `json:"files"`
	}
	if err := json.Unmarshal([]byte(body), &page); err != nil {
		t.Fatalf("JSON page: %v\n%s", err, body)
	}
	if strings.Join(page.Versions, ",") != "1.0.0,1.1.0" || len(page.Files) != 4 {
		t.Errorf("JSON page versions %v, %d files", page.Versions, len(page.Files))
	}
	if _, body := req("GET", index+"atr-demo/", "text/html"); !strings.Contains(body, `data-requires-python="&gt;=3.8"`) || !strings.Contains(body, "#sha256=") {
		t.Errorf("HTML page lacks hashes or requires-python:\n%s", body)
	}
	if resp, _ := req("GET", index+"atr-demo/", "application/xml"); resp.StatusCode != http.StatusNotAcceptable {
		t.Errorf("Accept: application/xml got %d, want 406", resp.StatusCode)
	}
	if resp, _ := req("GET", index+"Atr_Demo/", "text/html"); resp.StatusCode != http.StatusMovedPermanently || !strings.HasSuffix(resp.Header.Get("Location"), "/simple/atr-demo/") {
		t.Errorf("non-normalized name: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	for _, f := range page.Files {
		if !strings.HasSuffix(f.Filename, ".whl") {
			continue
		}
		fileURL := pm + f.URL
		resp, whole := req("GET", fileURL, "")
		if resp.StatusCode != 200 || resp.Header.Get("ETag") == "" {
			t.Fatalf("wheel: %d etag %q", resp.StatusCode, resp.Header.Get("ETag"))
		}
		if r2, _ := req("GET", fileURL, "", "If-None-Match", resp.Header.Get("ETag")); r2.StatusCode != http.StatusNotModified {
			t.Errorf("If-None-Match: %d, want 304", r2.StatusCode)
		}
		if r3, part := req("GET", fileURL, "", "Range", "bytes=0-9"); r3.StatusCode != http.StatusPartialContent || part != whole[:10] {
			t.Errorf("Range: %d %q", r3.StatusCode, part)
		}
		if r4, b := req("HEAD", fileURL, ""); r4.StatusCode != 200 || b != "" || r4.ContentLength != int64(len(whole)) {
			t.Errorf("HEAD: %d len %d", r4.StatusCode, r4.ContentLength)
		}
		// PEP 658/714: the advertised hash is the metadata file's own.
		meta, _ := f.CoreMetadata.(map[string]any)
		_, md := req("GET", fileURL+".metadata", "")
		if !strings.Contains(md, "Name: atr-demo") || meta["sha256"] != sha256hex(md) {
			t.Errorf(".metadata hash %v does not match its content %s", meta["sha256"], sha256hex(md))
		}
	}

	// Bad uploads (twine checks files itself, so these are sent as it
	// would send them) get a 400 and change nothing.
	v1wheel := ""
	for _, f := range v1 {
		if strings.HasSuffix(f, ".whl") {
			v1wheel = f
		}
	}
	good, _ := os.ReadFile(v1wheel)
	badCases := []struct {
		name     string
		filename string
		content  []byte
		fields   map[string]string
		want     string
	}{
		{"not a zip", "atr_demo-2.0.0-py3-none-any.whl", []byte("not a zip"), nil, "zip"},
		{"name disagrees with file", "atr_demo-2.0.0-py3-none-any.whl", good, nil, "2.0.0"},
		{"digest mismatch", "atr_demo-1.0.0-py3-none-any.whl", good, map[string]string{"sha256_digest": strings.Repeat("0", 64)}, "sha256"},
		{"same name, other content", "atr_demo-1.0.0-py3-none-any.whl", append(append([]byte{}, good...), 0), nil, ""},
	}
	for _, bc := range badCases {
		status, body := legacyUpload(t, pm+"/upload/pypi-local/", key, bc.filename, bc.content, bc.fields)
		if status != http.StatusBadRequest || !strings.Contains(strings.ToLower(body), strings.ToLower(bc.want)) {
			t.Errorf("%s: %d %s", bc.name, status, body)
		}
	}
	if _, body := req("GET", index+"atr-demo/", "application/vnd.pypi.simple.v1+json"); strings.Contains(body, "2.0.0") {
		t.Errorf("a refused upload is listed")
	}

	// The repository page says how to use it.
	b := newBrowser(t)
	_, status, page2 := browse(t, b, "GET", pm+"/pypi/?q=atr", nil)
	if status != 200 || !strings.Contains(page2, "atr-demo") || !strings.Contains(page2, "pip install --index-url "+index) {
		t.Errorf("repository page: %d\n%s", status, page2)
	}
	if err := p.stop(t); err != nil {
		t.Errorf("stop: %v", err)
	}
}

// legacyUpload posts a file the way twine does (multipart, :action
// file_upload, basic auth __token__).
func legacyUpload(t *testing.T, url, key, filename string, content []byte, fields map[string]string) (int, string) {
	t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	name, version, _ := strings.Cut(strings.TrimSuffix(filename, "-py3-none-any.whl"), "-")
	form := map[string]string{":action": "file_upload", "protocol_version": "1", "name": strings.ReplaceAll(name, "_", "-"),
		"version": version, "filetype": "bdist_wheel", "pyversion": "py3", "metadata_version": "2.1", "sha256_digest": sha256hex(string(content))}
	for k, v := range fields {
		form[k] = v
	}
	for k, v := range form {
		mw.WriteField(k, v)
	}
	fw, _ := mw.CreateFormFile("content", filename)
	fw.Write(content)
	mw.Close()
	req, _ := http.NewRequest("POST", url, &buf)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	req.SetBasicAuth("__token__", key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}
