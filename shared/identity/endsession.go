package identity

import (
	"context"
	"net/http"

	"github.com/gin-gonic/gin"
	"github.com/zitadel/oidc/v3/pkg/op"
)

// End session: op validates the request (id_token_hint, client_id,
// post_logout_redirect_uri against the client's registered URIs) and then
// calls TerminateSessionFromRequest, which only gets a context. The browser's
// cookie is therefore handed over in the context, and the response writer
// adds the Set-Cookie that clears it, but only once the session was really
// ended: a refused request (say, an unregistered redirect URI) leaves the
// browser signed in, as it leaves the sign-in active.

type endSessionKey struct{}

type endSessionState struct {
	token      string // the browser's SessionCookie
	terminated bool
}

// endSession wraps op's end_session endpoint.
func (p *Provider) endSession(c *gin.Context) {
	st := &endSessionState{}
	if v, err := c.Cookie(SessionCookie); err == nil {
		st.token = v
	}
	w := &clearingWriter{ResponseWriter: c.Writer, st: st, clear: p.clearSessionCookie}
	p.op.ServeHTTP(w, c.Request.WithContext(context.WithValue(c.Request.Context(), endSessionKey{}, st)))
}

// clearingWriter adds the cookie-clearing header before the status line
// goes out if the session was ended.
type clearingWriter struct {
	http.ResponseWriter
	st          *endSessionState
	clear       func(http.Header)
	wroteHeader bool
}

func (w *clearingWriter) WriteHeader(code int) {
	if !w.wroteHeader {
		w.wroteHeader = true
		if w.st.terminated {
			w.clear(w.Header())
		}
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *clearingWriter) Write(b []byte) (int, error) {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	return w.ResponseWriter.Write(b)
}

// TerminateSessionFromRequest ends the browser's provider sign-in and the
// one named by the id_token_hint's "sid" (usually the same; they differ when
// the product's session came from an earlier sign-in), then redirects to the
// validated post_logout_redirect_uri or, without one, to the signed-out
// page.
func (s *storage) TerminateSessionFromRequest(ctx context.Context, req *op.EndSessionRequest) (string, error) {
	st, _ := ctx.Value(endSessionKey{}).(*endSessionState)
	if st != nil {
		s.provider.endSignInByToken(ctx, st.token)
	}
	if req.IDTokenHintClaims != nil && req.IDTokenHintClaims.SessionID != "" {
		// The hint is signed by us, so its sid is one we issued; ending it
		// again after the cookie's is harmless.
		if err := s.accounts.EndSignIn(ctx, req.IDTokenHintClaims.SessionID); err == nil {
			s.log.Info("signed out", "sid", req.IDTokenHintClaims.SessionID, "user_id", req.UserID)
		}
	}
	if st != nil {
		st.terminated = true
	}
	if req.RedirectURI == "" {
		return s.provider.issuer + SignedOutPath, nil
	}
	return req.RedirectURI, nil
}
