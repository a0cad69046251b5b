package connect

import (
	"context"

	"github.com/atrium-suite/atrium/shared/auth"
)

// EnvVarsOf and CanViewOf expose the store methods the runtime uses to the
// handler tests.
func EnvVarsOf(s *Server, ctx context.Context, guid string) (map[string]string, error) {
	return s.st.EnvVars(ctx, guid)
}

func CanViewOf(s *Server, ctx context.Context, guid string, u auth.User) (bool, error) {
	return s.st.CanView(ctx, guid, u)
}
