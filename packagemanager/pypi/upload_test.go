package pypi

import (
	"bytes"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/textproto"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"golang.org/x/crypto/blake2b"
)

type field struct{ k, v string }

// twineBody builds a multipart body the way twine 6/7 does: the flattened
// metadata fields, :action and protocol_version, then the file as
// "content" with its base name.
func twineBody(t *testing.T, fields []field, filename string, content []byte) (body *bytes.Buffer, contentType string) {
	t.Helper()
	body = &bytes.Buffer{}
	mw := multipart.NewWriter(body)
	for _, f := range fields {
		mw.WriteField(f.k, f.v)
	}
	if filename != "" {
		h := textproto.MIMEHeader{}
		h.Set("Content-Disposition", fmt.Sprintf(`form-data; name="content"; filename="%s"`, filename))
		h.Set("Content-Type", "application/octet-stream")
		w, err := mw.CreatePart(h)
		if err != nil {
			t.Fatal(err)
		}
		w.Write(content)
	}
	mw.Close()
	return body, mw.FormDataContentType()
}

func digests(b []byte) (sha, blake, md5hex string) {
	s := sha256.Sum256(b)
	bl := blake2b.Sum256(b)
	m := md5.Sum(b)
	return hex.EncodeToString(s[:]), hex.EncodeToString(bl[:]), hex.EncodeToString(m[:])
}

func uploadFields(content []byte, extra ...field) []field {
	sha, blake, _ := digests(content)
	return append([]field{
		{"name", "demo-pkg"}, {"version", "1.0"}, {"filetype", "bdist_wheel"}, {"pyversion", "py3"},
		{"metadata_version", "2.1"}, {"summary", "test"}, {"requires_dist", "a"}, {"requires_dist", "b"},
		{"sha256_digest", sha}, {"blake2_256_digest", blake},
		{":action", "file_upload"}, {"protocol_version", "1"},
	}, extra...)
}

func postUpload(t *testing.T, fields []field, filename string, content []byte, maxSize int64) (*Upload, []byte, error) {
	body, ct := twineBody(t, fields, filename, content)
	req := httptest.NewRequest(http.MethodPost, "/upload/pypi/local", body)
	req.Header.Set("Content-Type", ct)
	var got bytes.Buffer
	u, err := ParseUpload(req, maxSize, WriterSink(&got))
	return u, got.Bytes(), err
}

func TestParseUploadRoundTrip(t *testing.T) {
	wheel := goodWheel(t)
	sha, blake, _ := digests(wheel)
	u, stored, err := postUpload(t, uploadFields(wheel), "demo_pkg-1.0-py3-none-any.whl", wheel, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(stored, wheel) {
		t.Fatal("sink did not receive the file")
	}
	if u.Name != "demo-pkg" || u.Version != "1.0" || u.Filetype != FiletypeWheel || u.PyVersion != "py3" ||
		u.MetadataVersion != "2.1" || u.Filename != "demo_pkg-1.0-py3-none-any.whl" || u.Size != int64(len(wheel)) ||
		u.SHA256 != sha || u.Blake2b256 != blake {
		t.Errorf("got %+v", u)
	}
	if strings.Join(u.Fields["requires_dist"], ",") != "a,b" {
		t.Errorf("requires_dist = %q", u.Fields["requires_dist"])
	}
	d, err := Inspect(u.Filename, bytes.NewReader(stored), u.Size)
	if err != nil {
		t.Fatal(err)
	}
	if err := u.Check(d); err != nil {
		t.Fatal(err)
	}
}

func TestParseUploadRefuses(t *testing.T) {
	wheel := goodWheel(t)
	name := "demo_pkg-1.0-py3-none-any.whl"
	_, _, md5hex := digests(wheel)
	without := func(keys ...string) []field {
		var out []field
	next:
		for _, f := range uploadFields(wheel) {
			for _, k := range keys {
				if f.k == k {
					continue next
				}
			}
			out = append(out, f)
		}
		return out
	}
	tests := []struct {
		name     string
		fields   []field
		filename string
		maxSize  int64
		want     string
		tooLarge bool
	}{
		{"sha256 mismatch", append(without("sha256_digest"), field{"sha256_digest", strings.Repeat("0", 64)}), name, 0, "sha256 digest does not match the uploaded file", false},
		{"blake2 mismatch", append(without("blake2_256_digest"), field{"blake2_256_digest", strings.Repeat("0", 64)}), name, 0, "blake2b-256 digest does not match", false},
		{"md5 mismatch", append(uploadFields(wheel), field{"md5_digest", strings.Repeat("0", 32)}), name, 0, "md5 digest does not match", false},
		{"no digest", without("sha256_digest", "blake2_256_digest"), name, 0, "no sha256_digest", false},
		{"no content", uploadFields(wheel), "", 0, `no file`, false},
		{"register action", append(without(":action"), field{":action", "submit"}), name, 0, `unsupported :action "submit"`, false},
		{"no action", without(":action"), name, 0, "no :action", false},
		{"protocol 2", append(without("protocol_version"), field{"protocol_version", "2"}), name, 0, "protocol_version", false},
		{"egg", append(without("filetype"), field{"filetype", "bdist_egg"}), name, 0, `unsupported filetype "bdist_egg"`, false},
		{"no name", without("name"), name, 0, "no name", false},
		{"path in filename", uploadFields(wheel), "../../etc/demo_pkg-1.0-py3-none-any.whl", 0, "not allowed", false},
		{"too large", uploadFields(wheel), name, 100, "larger than the 100 bytes allowed", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			max := tt.maxSize
			if max == 0 {
				max = 1 << 20
			}
			u, _, err := postUpload(t, tt.fields, tt.filename, wheel, max)
			var inv *InvalidError
			if !errors.As(err, &inv) {
				t.Fatalf("ParseUpload = %+v, %v; want *InvalidError", u, err)
			}
			if !strings.Contains(inv.Msg, tt.want) {
				t.Errorf("message %q does not contain %q", inv.Msg, tt.want)
			}
			if errors.Is(err, ErrTooLarge) != tt.tooLarge {
				t.Errorf("errors.Is(ErrTooLarge) = %v", !tt.tooLarge)
			}
		})
	}
	// md5 alone (old twine) is accepted.
	if _, _, err := postUpload(t, append(without("sha256_digest", "blake2_256_digest"), field{"md5_digest", md5hex}), name, wheel, 1<<20); err != nil {
		t.Errorf("md5-only upload: %v", err)
	}
}

func TestParseUploadNotMultipart(t *testing.T) {
	req := httptest.NewRequest(http.MethodPost, "/", strings.NewReader("name=x"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	_, err := ParseUpload(req, 1<<20, WriterSink(io.Discard))
	var inv *InvalidError
	if !errors.As(err, &inv) {
		t.Fatalf("err = %v", err)
	}
}

func TestParseUploadSinkError(t *testing.T) {
	wheel := goodWheel(t)
	body, ct := twineBody(t, uploadFields(wheel), "demo_pkg-1.0-py3-none-any.whl", wheel)
	req := httptest.NewRequest(http.MethodPost, "/", body)
	req.Header.Set("Content-Type", ct)
	disk := errors.New("disk full")
	_, err := ParseUpload(req, 1<<20, func(string, io.Reader) error { return disk })
	var inv *InvalidError
	if !errors.Is(err, disk) || errors.As(err, &inv) {
		t.Fatalf("err = %v, want the sink's error, not *InvalidError", err)
	}
}

func TestUploadCheck(t *testing.T) {
	d := Dist{Name: "Demo.Pkg", Version: "1.0", Filename: "demo_pkg-1.0-py3-none-any.whl", Filetype: FiletypeWheel}
	u := Upload{Name: "demo-pkg", Version: "1.0", Filename: d.Filename, Filetype: FiletypeWheel}
	if err := u.Check(d); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		mutate func(*Upload)
		want   string
	}{
		{func(u *Upload) { u.Name = "other" }, "the upload form says name 'other' but the file's metadata says 'Demo.Pkg'"},
		{func(u *Upload) { u.Version = "2.0" }, "version '2.0'"},
		{func(u *Upload) { u.Filetype = FiletypeSdist }, "filetype 'sdist'"},
		{func(u *Upload) { u.Filename = "x.whl" }, "inspected as"},
	} {
		u2 := u
		tt.mutate(&u2)
		if err := u2.Check(d); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Check = %v, want %q", err, tt.want)
		}
	}
}

// TestTwineUpload runs the real twine against a server that does what
// Package Manager's upload handler will: ParseUpload into a temp file,
// Inspect, Check.
func TestTwineUpload(t *testing.T) {
	dir := realDists(t)
	requireTool(t, "twine", "python3", "-m", "twine", "--version")
	var (
		mu       sync.Mutex
		accepted []Dist
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if user, pass, ok := r.BasicAuth(); !ok || user != "__token__" || pass != "secret" {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		tmp, err := os.CreateTemp(t.TempDir(), "upload-")
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		defer tmp.Close()
		u, err := ParseUpload(r, 64<<20, WriterSink(tmp))
		var d Dist
		if err == nil {
			d, err = Inspect(u.Filename, tmp, u.Size)
		}
		if err == nil {
			err = u.Check(d)
		}
		if err != nil {
			t.Errorf("upload refused: %v", err)
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		mu.Lock()
		accepted = append(accepted, d)
		mu.Unlock()
	}))
	defer srv.Close()
	files, _ := filepath.Glob(filepath.Join(dir, "*"))
	cmd := exec.Command("python3", append([]string{"-m", "twine", "upload", "--non-interactive", "--disable-progress-bar",
		"--repository-url", srv.URL + "/upload/pypi/local", "-u", "__token__", "-p", "secret"}, files...)...)
	cmd.Env = append(os.Environ(), "TWINE_NON_INTERACTIVE=1", "KEYRING_PROVIDER=fail", "PYTHON_KEYRING_BACKEND=keyring.backends.null.Keyring")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("twine upload: %v\n%s", err, out)
	}
	if len(accepted) != len(files) {
		t.Fatalf("accepted %d of %d files", len(accepted), len(files))
	}
}
