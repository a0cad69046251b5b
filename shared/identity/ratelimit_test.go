package identity

import (
	"net/url"
	"strings"
	"testing"
	"time"
)

func TestLimiter(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	l := newLimiter(func() time.Time { return now })
	type step struct {
		advance  time.Duration
		fail     []string
		reset    string
		check    []string
		wantWait time.Duration // 0: not blocked
	}
	for _, s := range []step{
		{check: []string{"u", "ip"}},
		{fail: []string{"u", "ip"}, check: []string{"u"}},
		{advance: time.Minute, fail: []string{"u", "ip"}},
		{advance: time.Minute, fail: []string{"u", "ip"}},
		{advance: time.Minute, fail: []string{"u", "ip"}},
		{check: []string{"u"}}, // four failures
		{advance: time.Second, fail: []string{"u", "ip"}, check: []string{"u"}, wantWait: 2*time.Minute - time.Second},
		{check: []string{"other", "ip"}, wantWait: 2*time.Minute - time.Second}, // the address is blocked too
		{check: []string{"other"}},
		{reset: "u", check: []string{"u"}},                                  // a success clears the username…
		{check: []string{"u", "ip"}, wantWait: 2*time.Minute - time.Second}, // …not the address
		{advance: 2*time.Minute - time.Second, check: []string{"u", "ip"}},  // the first failure left the window
		{advance: 10 * time.Minute, check: []string{"ip"}},
	} {
		now = now.Add(s.advance)
		if s.reset != "" {
			l.reset(s.reset)
		}
		if s.fail != nil {
			l.fail(s.fail...)
		}
		if s.check != nil {
			wait, blocked := l.blocked(s.check...)
			if wait != s.wantWait || blocked != (s.wantWait > 0) {
				t.Fatalf("at %s, blocked(%v) = %v, %v; want %v", now.Format(time.TimeOnly), s.check, wait, blocked, s.wantWait)
			}
		}
	}
	if len(l.fails) != 0 {
		t.Fatalf("entries left after the window: %v", l.fails)
	}
}

func TestParseLoginForm(t *testing.T) {
	for _, tc := range []struct {
		name    string
		form    url.Values
		want    loginForm
		wantErr bool
	}{
		{"ok", url.Values{"authRequestID": {"id"}, "username": {"  Bob "}, "password": {" pw "}, "csrf": {"c"}},
			loginForm{AuthRequestID: "id", Username: "bob", Password: " pw ", CSRF: "c"}, false},
		{"no auth request", url.Values{"username": {"bob"}}, loginForm{}, true},
		{"long auth request", url.Values{"authRequestID": {strings.Repeat("i", 65)}}, loginForm{}, true},
		{"long password", url.Values{"authRequestID": {"id"}, "password": {strings.Repeat("p", 1025)}}, loginForm{}, true},
		{"long username", url.Values{"authRequestID": {"id"}, "username": {strings.Repeat("u", 257)}}, loginForm{}, true},
		{"bad UTF-8", url.Values{"authRequestID": {"id"}, "username": {"\xff"}}, loginForm{}, true},
	} {
		got, err := parseLoginForm(tc.form)
		if got != tc.want || (err != nil) != tc.wantErr {
			t.Errorf("%s: parseLoginForm = %+v, %v", tc.name, got, err)
		}
	}
}
