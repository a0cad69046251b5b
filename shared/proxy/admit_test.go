package proxy

import (
	"context"
	"errors"
	"net/http"
	"sync/atomic"
	"testing"
)

// gate is an Admitter over a StickyBalancer that admits while open.
type gate struct {
	sticky      *StickyBalancer
	refuse      error
	admits, end atomic.Int64
}

func (g *gate) Admit(context.Context) error {
	if g.refuse != nil {
		return g.refuse
	}
	g.admits.Add(1)
	return nil
}
func (g *gate) Done()                           { g.end.Add(1) }
func (g *gate) StickyBalancer() *StickyBalancer { return g.sticky }
func (g *gate) Pick(r *http.Request) (Target, func(), error) {
	panic("the proxy must use Admit and the sticky balancer, not Pick")
}

// TestAdmitter: a Balancer that admits requests gets Admit and Done once
// per request around the sticky pick (and its affinity cookie), and its
// refusals become the proxy's 503 or 502.
func TestAdmitter(t *testing.T) {
	_, tgt := backend(t, "one")
	sb, err := NewSticky(StickyConfig{Prefix: "/content/a/", LeastLoaded: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := sb.Set([]Target{tgt}); err != nil {
		t.Fatal(err)
	}
	g := &gate{sticky: sb}
	s := serve(t, Config{Prefix: "/content/a/", Balancer: g})
	res, body := get(t, s.URL+"/content/a/x", nil)
	if res.StatusCode != 200 || decode(t, body).ID != "one" {
		t.Fatalf("GET: %d %s", res.StatusCode, body)
	}
	if res.Header.Get("Set-Cookie") == "" {
		t.Error("no affinity cookie")
	}
	if g.admits.Load() != 1 || g.end.Load() != 1 {
		t.Fatalf("Admit %d, Done %d, want 1 and 1", g.admits.Load(), g.end.Load())
	}
	for _, tc := range []struct {
		err  error
		want int
	}{{ErrNoTarget, http.StatusServiceUnavailable}, {errors.New("crashing"), http.StatusBadGateway}} {
		g.refuse = tc.err
		if res, _ := get(t, s.URL+"/content/a/x", nil); res.StatusCode != tc.want {
			t.Errorf("refused with %v: %d, want %d", tc.err, res.StatusCode, tc.want)
		}
	}
	if g.end.Load() != 1 {
		t.Errorf("Done called %d times for refused requests", g.end.Load()-1)
	}
}
