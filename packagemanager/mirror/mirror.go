// Package mirror fetches Python packages from an upstream PyPI-style
// "simple" index (PEP 503 HTML or PEP 691 JSON) for Package Manager's
// pull-through sources.
//
// It has three parts:
//
//   - DefaultIndexURL asks the host's pip which index it would use, so a
//     fresh install mirrors whatever the machine is already configured for
//     (a corporate mirror, a proxy index) without Atrium hard-coding one;
//   - Upstream fetches and parses one project's page into Files with
//     absolute URLs and the hashes the upstream advertises;
//   - Fetcher downloads those files into the content-addressed store,
//     verifying the advertised SHA-256 and collapsing concurrent requests
//     for the same file into one upstream download.
//
// Errors distinguish "the upstream says no" (ErrNotFound) from "the upstream
// could not answer" (ErrUnreachable), because the server answers the first
// with 404 and the second by serving what it has cached.
package mirror

import (
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/atrium-suite/atrium/packagemanager/pypi"
	"github.com/atrium-suite/atrium/shared/pyname"
)

var (
	// ErrNotFound: the upstream answered 404 (or 410) for the project or
	// file, or the project name is not a valid name at all.
	ErrNotFound = errors.New("not found upstream")
	// ErrUnreachable: the upstream could not be reached, timed out, answered
	// with an unexpected status, or sent a response that is too large or
	// cannot be parsed. Callers fall back to cached data.
	ErrUnreachable = errors.New("upstream unreachable")
	// ErrNoMetadata: DownloadMetadata was asked for a file whose upstream
	// does not advertise a PEP 658 metadata file.
	ErrNoMetadata = errors.New("no core metadata advertised")
)

// Defaults used when the corresponding field is zero.
const (
	DefaultTimeout     = 30 * time.Second
	DefaultMaxPageSize = 64 << 20
	// DefaultUserAgent names Atrium so upstream operators can tell mirror
	// traffic from interactive pip traffic.
	DefaultUserAgent = "atrium-packagemanager-mirror"
)

// acceptHeader prefers PEP 691 JSON but takes HTML, because common
// self-hosted indexes (pypiserver among them) only speak PEP 503 HTML.
const acceptHeader = "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html;q=0.2, text/html;q=0.01"

// File is one distribution file listed on a project page.
type File struct {
	// Filename is the file's name (e.g. "pkg-1.0-py3-none-any.whl"). It is
	// never empty and never contains a path separator.
	Filename string
	// URL is the absolute http(s) URL to download it from, without any
	// fragment (the "#sha256=" fragment is parsed into SHA256).
	URL string
	// SHA256 is the advertised digest in lower-case hex, or "" if the
	// upstream advertises none.
	SHA256 string
	// RequiresPython is the PEP 345 Requires-Python specifier, unescaped;
	// "" if none.
	RequiresPython string
	// Yanked reports a PEP 592 yank; YankedReason may be "" even then.
	Yanked       bool
	YankedReason string
	// CoreMetadata reports that the upstream serves the file's METADATA at
	// URL+".metadata" (PEP 658/714). CoreMetadataSHA256 is its advertised
	// digest, or "" if advertised without a SHA-256.
	CoreMetadata       bool
	CoreMetadataSHA256 string
	// Size in bytes, or 0 if the upstream does not say (PEP 700 makes it
	// mandatory only in JSON API version 1.1).
	Size int64
	// UploadTime is the PEP 700 upload time, or the zero Time.
	UploadTime time.Time
}

// Project is one project's page on the upstream.
type Project struct {
	// Name is the normalized (PEP 503) project name.
	Name  string
	Files []File
}

// Upstream is a PyPI-style simple index. The zero value of every field but
// BaseURL is usable.
type Upstream struct {
	// BaseURL is the index root, e.g. "https://host/simple/"; a missing
	// trailing slash is added.
	BaseURL string
	// Client defaults to a client whose transport honours HTTP_PROXY,
	// HTTPS_PROXY and NO_PROXY and follows redirects.
	Client *http.Client
	// UserAgent defaults to DefaultUserAgent.
	UserAgent string
	// Timeout bounds one project-page request, including reading the body;
	// default DefaultTimeout.
	Timeout time.Duration
	// MaxPageSize caps a project page's body; default DefaultMaxPageSize.
	MaxPageSize int64
}

// defaultClient is shared so connections to the upstream are reused across
// requests and Upstream values.
var defaultClient = &http.Client{Transport: newTransport()}

func newTransport() *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	// Explicit although DefaultTransport has it today: mirroring behind a
	// corporate proxy is the common case and must not depend on that.
	t.Proxy = http.ProxyFromEnvironment
	return t
}

func (u *Upstream) client() *http.Client {
	if u.Client != nil {
		return u.Client
	}
	return defaultClient
}

func (u *Upstream) userAgent() string {
	if u.UserAgent != "" {
		return u.UserAgent
	}
	return DefaultUserAgent
}

// ProjectURL returns the URL of the project's page under BaseURL. Only a
// valid project name is asked for: that keeps slashes, dots-only names and
// query characters out of the path.
func (u *Upstream) ProjectURL(name string) (string, error) {
	if !pypi.ValidName(name) {
		return "", fmt.Errorf("mirror: project name %q: %w", name, ErrNotFound)
	}
	base, err := parseIndexURL(u.BaseURL)
	if err != nil {
		return "", fmt.Errorf("mirror: base URL: %w", err)
	}
	return base + pyname.Normalize(name) + "/", nil
}

// FetchProject fetches and parses the page of the named project. It returns
// an error wrapping ErrNotFound on 404, one wrapping ErrUnreachable for any
// other failure on the upstream's side, and the context's error if ctx ends.
func (u *Upstream) FetchProject(ctx context.Context, name string) (*Project, error) {
	pageURL, err := u.ProjectURL(name)
	if err != nil {
		return nil, err
	}
	timeout := u.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	maxSize := u.MaxPageSize
	if maxSize <= 0 {
		maxSize = DefaultMaxPageSize
	}
	rctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	resp, err := u.get(rctx, pageURL, acceptHeader)
	if err != nil {
		return nil, upstreamErr(ctx, "fetch project "+name, err)
	}
	defer resp.Body.Close()
	// Relative URLs resolve against the page that was actually served,
	// which differs from pageURL after a redirect.
	final := resp.Request.URL
	where := redact(final.String())
	switch {
	case resp.StatusCode == http.StatusOK:
	case resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusGone:
		return nil, fmt.Errorf("mirror: project %q at %s: %w", name, where, ErrNotFound)
	default:
		return nil, fmt.Errorf("mirror: project %q at %s: %w: HTTP %s", name, where, ErrUnreachable, resp.Status)
	}
	if resp.ContentLength > maxSize {
		return nil, fmt.Errorf("mirror: project %q at %s: %w: page of %d bytes exceeds limit of %d", name, where, ErrUnreachable, resp.ContentLength, maxSize)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxSize+1))
	if err != nil {
		return nil, upstreamErr(ctx, "read project "+name+" at "+where, err)
	}
	if int64(len(body)) > maxSize {
		return nil, fmt.Errorf("mirror: project %q at %s: %w: page exceeds limit of %d bytes", name, where, ErrUnreachable, maxSize)
	}

	var p *Project
	switch pageFormat(resp.Header.Get("Content-Type"), body) {
	case formatJSON:
		p, err = parseJSON(final, body)
	case formatHTML:
		p, err = parseHTML(final, body)
	default:
		err = fmt.Errorf("unsupported content type %q", resp.Header.Get("Content-Type"))
	}
	if err != nil {
		return nil, fmt.Errorf("mirror: project %q at %s: %w: %w", name, where, ErrUnreachable, err)
	}
	p.Name = pyname.Normalize(name)
	return p, nil
}

func (u *Upstream) get(ctx context.Context, rawURL, accept string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("User-Agent", u.userAgent())
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	return u.client().Do(req)
}

// upstreamErr classifies a transport error: if the caller's own context
// ended, that is the caller's business and is reported as such; anything
// else (refused connection, DNS, our own timeout, a reset mid-body) means
// the upstream is unreachable.
func upstreamErr(callerCtx context.Context, what string, err error) error {
	if cerr := callerCtx.Err(); cerr != nil {
		return fmt.Errorf("mirror: %s: %w", what, cerr)
	}
	// url.Error repeats the URL including any userinfo; redact it.
	var uerr *url.Error
	if errors.As(err, &uerr) {
		err = fmt.Errorf("%s %s: %w", uerr.Op, redact(uerr.URL), uerr.Err)
	}
	return fmt.Errorf("mirror: %s: %w: %w", what, ErrUnreachable, err)
}

// redact hides a password in a URL's userinfo (index URLs often carry
// tokens) before the URL goes into an error message or log.
func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "<unparseable URL>"
	}
	return u.Redacted()
}

type format int

const (
	formatUnknown format = iota
	formatJSON
	formatHTML
)

// pageFormat picks the parser from the Content-Type, sniffing only when the
// upstream sent none: a JSON body always starts with '{' after whitespace.
func pageFormat(contentType string, body []byte) format {
	if contentType == "" {
		if s := strings.TrimSpace(string(body[:min(len(body), 512)])); strings.HasPrefix(s, "{") {
			return formatJSON
		}
		return formatHTML
	}
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		return formatUnknown
	}
	switch mt {
	case "application/vnd.pypi.simple.v1+json", "application/vnd.pypi.simple.latest+json", "application/json":
		return formatJSON
	case "application/vnd.pypi.simple.v1+html", "application/vnd.pypi.simple.latest+html", "text/html", "application/xhtml+xml":
		return formatHTML
	}
	return formatUnknown
}
