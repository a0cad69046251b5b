package packagemanager

import (
	"net/http"

	"github.com/atrium-suite/atrium/shared/h1"
)

// SimpleFast exposes the fast path's handler to the tests.
func (s *Server) SimpleFast(w http.ResponseWriter, r *h1.Request) bool { return s.simpleFast(w, r) }
