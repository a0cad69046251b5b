package mirror_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/atrium-suite/atrium/packagemanager/mirror"
	"github.com/atrium-suite/atrium/shared/storage"
)

const wantAccept = "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html;q=0.2, text/html;q=0.01"

func sum(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// fakeUpstream is an index that serves fixed pages and files and counts
// requests per path.
type fakeUpstream struct {
	t   *testing.T
	srv *httptest.Server

	mu     sync.Mutex
	hits   map[string]int
	pages  map[string]page
	files  map[string][]byte
	accept []string
	agents []string
	// gate, if set, holds every file response until it is closed; started
	// gets a value when a file request arrives.
	gate    chan struct{}
	started chan string
}

type page struct {
	status      int
	contentType string
	body        string
	redirect    string
}

func newFakeUpstream(t *testing.T) *fakeUpstream {
	f := &fakeUpstream{t: t, hits: map[string]int{}, pages: map[string]page{}, files: map[string][]byte{}, started: make(chan string, 100)}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeUpstream) serve(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.hits[r.URL.Path]++
	p, isPage := f.pages[r.URL.Path]
	body, isFile := f.files[r.URL.Path]
	gate := f.gate
	if isPage {
		f.accept = append(f.accept, r.Header.Get("Accept"))
		f.agents = append(f.agents, r.Header.Get("User-Agent"))
	}
	f.mu.Unlock()
	switch {
	case isPage && p.redirect != "":
		http.Redirect(w, r, p.redirect, http.StatusMovedPermanently)
	case isPage && p.status == -1: // hang until the client gives up
		<-r.Context().Done()
	case isPage:
		if p.contentType != "" {
			w.Header().Set("Content-Type", p.contentType)
		} else {
			w.Header()["Content-Type"] = nil // suppress net/http's sniffing
		}
		w.WriteHeader(p.status)
		fmt.Fprint(w, strings.ReplaceAll(p.body, "{{BASE}}", f.srv.URL))
	case isFile:
		f.started <- r.URL.Path
		if gate != nil {
			select {
			case <-gate:
			case <-r.Context().Done():
				return
			}
		}
		w.Write(body)
	default:
		http.NotFound(w, r)
	}
}

func (f *fakeUpstream) hitCount(path string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.hits[path]
}

func (f *fakeUpstream) setPage(path string, p page) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if p.status == 0 {
		p.status = http.StatusOK
	}
	f.pages[path] = p
}

func (f *fakeUpstream) setFile(path string, body []byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.files[path] = body
}

func (f *fakeUpstream) upstream() mirror.Upstream {
	return mirror.Upstream{BaseURL: f.srv.URL + "/simple", UserAgent: "atrium-test/1"}
}

var (
	wheelBytes = []byte("pretend wheel bytes")
	sdistBytes = []byte("pretend sdist bytes")
	metaBytes  = []byte("Metadata-Version: 2.1\nName: demo\nVersion: 1.0\n")
	wheelSHA   = sum(wheelBytes)
	sdistSHA   = sum(sdistBytes)
	metaSHA    = sum(metaBytes)
)

const jsonPage = `{
  "meta": {"api-version": "1.1"},
  "name": "demo-proj",
  "versions": ["1.0"],
  "files": [
    {"filename": "demo_proj-1.0-py3-none-any.whl",
     "url": "../../files/demo_proj-1.0-py3-none-any.whl",
     "hashes": {"sha256": "` + "WHEELSHA" + `", "md5": "00"},
     "requires-python": ">=3.8,<4",
     "core-metadata": {"sha256": "METASHA"},
     "yanked": "broken build",
     "size": 19,
     "upload-time": "2024-03-01T12:30:45.123456Z"},
    {"filename": "demo_proj-1.0.tar.gz",
     "url": "{{BASE}}/files/demo_proj-1.0.tar.gz#sha256=SDISTSHA",
     "hashes": {},
     "dist-info-metadata": true,
     "yanked": false}
  ]
}`

const htmlPage = `<!DOCTYPE html>
<html><head><meta name="pypi:repository-version" content="1.0"><title>Links for demo-proj</title></head>
<body><h1>Links for demo-proj</h1>
<a href="../../files/demo_proj-1.0-py3-none-any.whl#sha256=WHEELSHA" data-requires-python="&gt;=3.8,&lt;4" data-yanked="broken &amp; old" data-core-metadata="sha256=METASHA" data-dist-info-metadata="sha256=METASHA">demo_proj-1.0-py3-none-any.whl</a><br/>
<a href="{{BASE}}/files/demo_proj-1.0.tar.gz#sha256=SDISTSHA" data-dist-info-metadata="true" data-yanked>demo_proj-1.0.tar.gz</a><br/>
<a href="mailto:admin@example.invalid">contact</a>
</body></html>`

func fill(s string) string {
	return strings.NewReplacer("WHEELSHA", wheelSHA, "SDISTSHA", strings.ToUpper(sdistSHA), "METASHA", metaSHA).Replace(s)
}

func TestFetchProject(t *testing.T) {
	up := newFakeUpstream(t)
	up.setPage("/simple/demo-proj/", page{contentType: "application/vnd.pypi.simple.v1+json", body: fill(jsonPage)})
	up.setPage("/html/demo-proj/", page{contentType: "text/html; charset=utf-8", body: fill(htmlPage)})
	// A page served after a redirect: relative URLs resolve against the
	// final location, as pip resolves them.
	up.setPage("/moved/demo-proj/", page{redirect: "/html/demo-proj/"})
	up.setPage("/based/demo-proj/", page{contentType: "text/html", body: `<base href="/files/"><a href="x-1.0.tar.gz">x-1.0.tar.gz</a>`})
	up.setPage("/sniff/demo-proj/", page{body: fill(jsonPage)}) // no Content-Type

	base := up.srv.URL
	wheelURL := base + "/files/demo_proj-1.0-py3-none-any.whl"
	sdistURL := base + "/files/demo_proj-1.0.tar.gz"
	jsonFiles := []mirror.File{
		{Filename: "demo_proj-1.0-py3-none-any.whl", URL: wheelURL, SHA256: wheelSHA, RequiresPython: ">=3.8,<4",
			Yanked: true, YankedReason: "broken build", CoreMetadata: true, CoreMetadataSHA256: metaSHA, Size: 19,
			UploadTime: time.Date(2024, 3, 1, 12, 30, 45, 123456000, time.UTC)},
		{Filename: "demo_proj-1.0.tar.gz", URL: sdistURL, SHA256: sdistSHA, CoreMetadata: true},
	}
	htmlFiles := []mirror.File{
		{Filename: "demo_proj-1.0-py3-none-any.whl", URL: wheelURL, SHA256: wheelSHA, RequiresPython: ">=3.8,<4",
			Yanked: true, YankedReason: "broken & old", CoreMetadata: true, CoreMetadataSHA256: metaSHA},
		{Filename: "demo_proj-1.0.tar.gz", URL: sdistURL, SHA256: sdistSHA, CoreMetadata: true, Yanked: true},
	}
	tests := []struct {
		name, prefix, project string
		want                  []mirror.File
	}{
		{"json", "/simple", "Demo_Proj", jsonFiles},
		{"html", "/html/", "demo.proj", htmlFiles},
		{"redirect", "/moved", "DEMO-PROJ", htmlFiles},
		{"base element", "/based", "demo-proj", []mirror.File{{Filename: "x-1.0.tar.gz", URL: base + "/files/x-1.0.tar.gz"}}},
		{"sniffed json", "/sniff", "demo-proj", jsonFiles},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u := mirror.Upstream{BaseURL: base + tt.prefix, UserAgent: "atrium-test/1"}
			p, err := u.FetchProject(t.Context(), tt.project)
			if err != nil {
				t.Fatal(err)
			}
			if p.Name != "demo-proj" {
				t.Errorf("Name = %q, want demo-proj", p.Name)
			}
			if len(p.Files) != len(tt.want) {
				t.Fatalf("got %d files, want %d: %+v", len(p.Files), len(tt.want), p.Files)
			}
			for i := range tt.want {
				if !p.Files[i].UploadTime.Equal(tt.want[i].UploadTime) {
					t.Errorf("file %d UploadTime = %v, want %v", i, p.Files[i].UploadTime, tt.want[i].UploadTime)
				}
				got, want := p.Files[i], tt.want[i]
				got.UploadTime, want.UploadTime = time.Time{}, time.Time{}
				if got != want {
					t.Errorf("file %d:\n got %+v\nwant %+v", i, got, want)
				}
			}
		})
	}
	up.mu.Lock()
	defer up.mu.Unlock()
	for i, a := range up.accept {
		if a != wantAccept {
			t.Errorf("request %d Accept = %q", i, a)
		}
		if up.agents[i] != "atrium-test/1" {
			t.Errorf("request %d User-Agent = %q", i, up.agents[i])
		}
	}
}

func TestFetchProjectErrors(t *testing.T) {
	up := newFakeUpstream(t)
	up.setPage("/simple/broken/", page{status: http.StatusInternalServerError, body: "boom"})
	up.setPage("/simple/gone/", page{status: http.StatusGone})
	up.setPage("/simple/huge/", page{contentType: "text/html", body: strings.Repeat("<p>padding</p>", 200)})
	up.setPage("/simple/garbage/", page{contentType: "application/vnd.pypi.simple.v1+json", body: `{"files": [`})
	up.setPage("/simple/future/", page{contentType: "application/vnd.pypi.simple.v1+json", body: `{"meta": {"api-version": "2.0"}, "files": []}`})
	up.setPage("/simple/pdf/", page{contentType: "application/pdf", body: "%PDF"})
	up.setPage("/simple/badhash/", page{contentType: "text/html", body: `<a href="/f/x-1.tar.gz#sha256=abc">x-1.tar.gz</a>`})
	up.setPage("/simple/slow/", page{status: -1})

	tests := []struct {
		project string
		want    error
	}{
		{"missing", mirror.ErrNotFound},
		{"gone", mirror.ErrNotFound},
		{"../etc", mirror.ErrNotFound}, // not a valid name: never requested
		{"broken", mirror.ErrUnreachable},
		{"huge", mirror.ErrUnreachable},
		{"garbage", mirror.ErrUnreachable},
		{"future", mirror.ErrUnreachable},
		{"pdf", mirror.ErrUnreachable},
		{"badhash", mirror.ErrUnreachable},
		{"slow", mirror.ErrUnreachable},
	}
	for _, tt := range tests {
		t.Run(tt.project, func(t *testing.T) {
			u := up.upstream()
			u.MaxPageSize = 1024
			u.Timeout = 200 * time.Millisecond
			_, err := u.FetchProject(t.Context(), tt.project)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
		})
	}

	t.Run("caller cancelled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		u := up.upstream()
		_, err := u.FetchProject(ctx, "demo")
		if !errors.Is(err, context.Canceled) || errors.Is(err, mirror.ErrUnreachable) {
			t.Fatalf("err = %v, want context.Canceled only", err)
		}
	})

	t.Run("server down", func(t *testing.T) {
		down := httptest.NewServer(http.NotFoundHandler())
		down.Close()
		u := mirror.Upstream{BaseURL: "http://user:s3cret@" + strings.TrimPrefix(down.URL, "http://") + "/simple/"}
		_, err := u.FetchProject(t.Context(), "demo")
		if !errors.Is(err, mirror.ErrUnreachable) {
			t.Fatalf("err = %v, want ErrUnreachable", err)
		}
		if strings.Contains(err.Error(), "s3cret") {
			t.Errorf("error leaks the password: %v", err)
		}
	})
}

func newStore(t *testing.T) *storage.Store {
	t.Helper()
	s, err := storage.New(storage.Config{Root: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func newFetcher(t *testing.T, up *fakeUpstream) *mirror.Fetcher {
	return &mirror.Fetcher{Upstream: up.upstream(), Store: newStore(t)}
}

func TestDownload(t *testing.T) {
	up := newFakeUpstream(t)
	up.setFile("/files/w.whl", wheelBytes)
	up.setFile("/files/w.whl.metadata", metaBytes)
	base := up.srv.URL
	f := newFetcher(t, up)

	wheel := mirror.File{Filename: "w.whl", URL: base + "/files/w.whl", SHA256: wheelSHA, CoreMetadata: true, CoreMetadataSHA256: metaSHA}
	b, err := f.Download(t.Context(), wheel)
	if err != nil {
		t.Fatal(err)
	}
	if b.Digest != "sha256:"+wheelSHA || b.Size != int64(len(wheelBytes)) {
		t.Fatalf("blob = %+v", b)
	}
	mb, err := f.DownloadMetadata(t.Context(), wheel)
	if err != nil {
		t.Fatal(err)
	}
	if mb.Digest != "sha256:"+metaSHA {
		t.Fatalf("metadata blob = %+v", mb)
	}

	tests := []struct {
		name     string
		file     mirror.File
		metadata bool
		want     error
	}{
		{"digest mismatch", mirror.File{Filename: "w.whl", URL: base + "/files/w.whl", SHA256: sdistSHA}, false, storage.ErrDigestMismatch},
		{"metadata mismatch", mirror.File{Filename: "w.whl", URL: base + "/files/w.whl", CoreMetadata: true, CoreMetadataSHA256: sdistSHA}, true, storage.ErrDigestMismatch},
		{"metadata not advertised", mirror.File{Filename: "w.whl", URL: base + "/files/w.whl"}, true, mirror.ErrNoMetadata},
		{"file 404", mirror.File{Filename: "gone.whl", URL: base + "/files/gone.whl", SHA256: sdistSHA}, false, mirror.ErrNotFound},
		{"upstream down", mirror.File{Filename: "w.whl", URL: "http://127.0.0.1:1/files/w.whl", SHA256: sdistSHA}, false, mirror.ErrUnreachable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var err error
			if tt.metadata {
				_, err = f.DownloadMetadata(t.Context(), tt.file)
			} else {
				_, err = f.Download(t.Context(), tt.file)
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
		})
	}
	if _, err := f.Store.Stat("sha256:" + sdistSHA); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("a mismatched download left a blob behind: %v", err)
	}

	t.Run("no advertised hash", func(t *testing.T) {
		b, err := f.Download(t.Context(), mirror.File{Filename: "w.whl", URL: base + "/files/w.whl"})
		if err != nil || b.Digest != "sha256:"+wheelSHA {
			t.Fatalf("Download = %+v, %v", b, err)
		}
	})
}

// TestDownloadSingleflight: concurrent downloads of one file hit the
// upstream once, and a download of a stored file does not hit it at all.
func TestDownloadSingleflight(t *testing.T) {
	up := newFakeUpstream(t)
	up.setFile("/files/w.whl", wheelBytes)
	up.gate = make(chan struct{})
	f := newFetcher(t, up)
	file := mirror.File{Filename: "w.whl", URL: up.srv.URL + "/files/w.whl", SHA256: wheelSHA}

	const n = 20
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Go(func() {
			b, err := f.Download(t.Context(), file)
			if err == nil && b.Digest != "sha256:"+wheelSHA {
				err = fmt.Errorf("blob %+v", b)
			}
			errs <- err
		})
	}
	<-up.started // the one upstream request is in flight; hold it until released
	close(up.gate)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if got := up.hitCount("/files/w.whl"); got != 1 {
		t.Fatalf("upstream hit %d times, want 1", got)
	}
	if _, err := f.Download(t.Context(), file); err != nil {
		t.Fatal(err)
	}
	if got := up.hitCount("/files/w.whl"); got != 1 {
		t.Fatalf("download of a stored file hit upstream: %d hits", got)
	}
}

// TestDownloadCallerCancel: the requester that started the shared download
// gives up; the download still completes for the others and lands in the
// store.
func TestDownloadCallerCancel(t *testing.T) {
	up := newFakeUpstream(t)
	up.setFile("/files/w.whl", wheelBytes)
	up.gate = make(chan struct{})
	f := newFetcher(t, up)
	file := mirror.File{Filename: "w.whl", URL: up.srv.URL + "/files/w.whl", SHA256: wheelSHA}

	ctx, cancel := context.WithCancel(t.Context())
	first := make(chan error, 1)
	go func() {
		_, err := f.Download(ctx, file)
		first <- err
	}()
	<-up.started

	const n = 5
	others := make(chan error, n)
	for range n {
		go func() {
			_, err := f.Download(t.Context(), file)
			others <- err
		}()
	}
	cancel()
	if err := <-first; !errors.Is(err, context.Canceled) {
		t.Fatalf("first requester: err = %v, want context.Canceled", err)
	}
	close(up.gate)
	for range n {
		if err := <-others; err != nil {
			t.Errorf("other requester: %v", err)
		}
	}
	if _, err := f.Store.Stat("sha256:" + wheelSHA); err != nil {
		t.Fatalf("blob not stored: %v", err)
	}
	if got := up.hitCount("/files/w.whl"); got != 1 {
		t.Fatalf("upstream hit %d times, want 1", got)
	}
}
