package proxy

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestStickyThroughProxy(t *testing.T) {
	_, a := backend(t, "a")
	_, b := backend(t, "b")
	bal, err := NewSticky(StickyConfig{Prefix: "/content/abc/"})
	if err != nil {
		t.Fatal(err)
	}
	if err := bal.Set([]Target{a, b}); err != nil {
		t.Fatal(err)
	}
	s := serve(t, Config{Prefix: "/content/abc/", Balancer: bal})

	// Without a cookie, requests take turns, and each gets a cookie.
	counts := map[string]int{}
	var first *http.Cookie
	for range 4 {
		res, body := get(t, s.URL+"/content/abc/", nil)
		got := decode(t, body)
		counts[got.ID]++
		cs := res.Cookies()
		if len(cs) != 1 || cs[0].Name != bal.CookieName() || cs[0].Path != "/content/abc/" || !cs[0].HttpOnly {
			t.Fatalf("affinity cookie %v", cs)
		}
		if got.Header.Get("Cookie") != "" {
			t.Errorf("backend saw cookies %q", got.Header.Get("Cookie"))
		}
		if first == nil {
			first = cs[0]
		}
	}
	if counts["a"] != 2 || counts["b"] != 2 {
		t.Errorf("round robin spread %v, want 2 each", counts)
	}
	if !strings.HasPrefix(bal.CookieName(), "atrium_sticky_") {
		t.Errorf("cookie name %q", bal.CookieName())
	}

	// With the cookie, every request goes to the same target and no new
	// cookie is set; the app's own cookies still pass.
	var pinned string
	for i := range 5 {
		res, body := get(t, s.URL+"/content/abc/x", http.Header{"Cookie": {first.Name + "=" + first.Value + "; app=1"}})
		got := decode(t, body)
		if i == 0 {
			pinned = got.ID
		}
		if got.ID != pinned {
			t.Fatalf("request %d went to %s, pinned to %s", i, got.ID, pinned)
		}
		if len(res.Cookies()) != 0 {
			t.Errorf("cookie set again: %v", res.Cookies())
		}
		if c := got.Header.Get("Cookie"); c != "app=1" {
			t.Errorf("backend saw cookies %q", c)
		}
	}

	// The pinned target goes away: the client moves and is re-pinned.
	rest := map[string]Target{"a": b, "b": a}[pinned]
	if err := bal.Set([]Target{rest}); err != nil {
		t.Fatal(err)
	}
	res, body := get(t, s.URL+"/content/abc/", http.Header{"Cookie": {first.Name + "=" + first.Value}})
	if got := decode(t, body); got.ID != rest.ID {
		t.Errorf("went to %s after its target was removed, want %s", got.ID, rest.ID)
	}
	if cs := res.Cookies(); len(cs) != 1 || cs[0].Value == first.Value {
		t.Errorf("not re-pinned: %v", cs)
	}
}

func TestStickyPick(t *testing.T) {
	targets := []Target{target(t, "a", "http://127.0.0.1:1"), target(t, "b", "http://127.0.0.1:2"), target(t, "c", "http://127.0.0.1:3")}
	req := httptest.NewRequest(http.MethodGet, "/content/abc/", nil)
	for _, tc := range []struct {
		name        string
		leastLoaded bool
		// hold: picks whose release is not called; then want is the
		// sequence of further picks (each released at once).
		hold int
		want []string
	}{
		{"round robin", false, 0, []string{"a", "b", "c", "a"}},
		{"round robin ignores load", false, 2, []string{"c", "a", "b", "c"}},
		{"least loaded, all idle, takes turns", true, 0, []string{"a", "b", "c", "a"}},
		{"least loaded picks the idle target", true, 2, []string{"c", "c", "c"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bal, err := NewSticky(StickyConfig{Prefix: "/content/abc/", LeastLoaded: tc.leastLoaded})
			if err != nil {
				t.Fatal(err)
			}
			if err := bal.Set(targets); err != nil {
				t.Fatal(err)
			}
			var releases []func()
			for range tc.hold {
				_, release, err := bal.Pick(req)
				if err != nil {
					t.Fatal(err)
				}
				releases = append(releases, release)
			}
			var got []string
			for range tc.want {
				tgt, release, err := bal.Pick(req)
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, tgt.ID)
				release()
				release() // twice must not count twice
			}
			if strings.Join(got, ",") != strings.Join(tc.want, ",") {
				t.Errorf("picked %v, want %v", got, tc.want)
			}
			load := bal.InFlight()
			if sum := load["a"] + load["b"] + load["c"]; sum != tc.hold {
				t.Errorf("in flight %v, want %d in total", load, tc.hold)
			}
			for _, r := range releases {
				r()
			}
			if load := bal.InFlight(); load["a"]+load["b"]+load["c"] != 0 {
				t.Errorf("in flight after release: %v", load)
			}
		})
	}
}

func TestStickySet(t *testing.T) {
	a := target(t, "a", "http://127.0.0.1:1")
	for _, tc := range []struct {
		name    string
		targets []Target
		ok      bool
	}{
		{"empty", nil, true},
		{"one", []Target{a}, true},
		{"duplicate", []Target{a, a}, false},
		{"no id", []Target{{URL: a.URL}}, false},
		{"no url", []Target{{ID: "x"}}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bal, err := NewSticky(StickyConfig{Prefix: "/s/1/"})
			if err != nil {
				t.Fatal(err)
			}
			if err := bal.Set(tc.targets); (err == nil) != tc.ok {
				t.Errorf("Set = %v, want ok %v", err, tc.ok)
			}
		})
	}
	if _, err := NewSticky(StickyConfig{Prefix: "s/1/"}); err == nil {
		t.Error("NewSticky accepted a relative prefix")
	}
	// Different prefixes, different cookies: two apps on one host keep
	// separate affinities.
	b1, _ := NewSticky(StickyConfig{Prefix: "/content/a/"})
	b2, _ := NewSticky(StickyConfig{Prefix: "/content/b/"})
	if b1.CookieName() == b2.CookieName() {
		t.Errorf("same cookie name %q for two prefixes", b1.CookieName())
	}
}

func TestLeastLoadedThroughProxy(t *testing.T) {
	// Backend "busy" holds its first request until the test ends; the
	// next requests must all go to the idle one.
	entered := make(chan struct{})
	hold := make(chan struct{})
	busy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		select {
		case <-hold:
		case <-r.Context().Done():
		}
	}))
	defer busy.Close()
	defer close(hold)
	_, idle := backend(t, "idle")
	bal, err := NewSticky(StickyConfig{Prefix: "/content/abc/", LeastLoaded: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := bal.Set([]Target{target(t, "busy", busy.URL), idle}); err != nil {
		t.Fatal(err)
	}
	s := serve(t, Config{Prefix: "/content/abc/", Balancer: bal})
	go func() {
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, s.URL+"/content/abc/slow", nil)
		if res, err := http.DefaultClient.Do(req); err == nil {
			res.Body.Close()
		}
	}()
	select {
	case <-entered:
	case <-time.After(10 * time.Second):
		t.Fatal("the slow request never reached the busy backend")
	}
	for i := range 3 {
		_, body := get(t, s.URL+"/content/abc/", nil)
		if got := decode(t, body); got.ID != "idle" {
			t.Fatalf("request %d went to %s", i, got.ID)
		}
	}
	if n := bal.InFlight()["busy"]; n != 1 {
		t.Errorf("busy has %d in flight, want 1", n)
	}
}
