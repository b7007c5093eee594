package faketokensvc

import (
	"crypto/subtle"
	"errors"
	"mime"
	"net/http"
	"net/url"
	"strings"
)

// introspection is the RFC 7662 §2.2 answer for an active token. An inactive
// token gets only {"active":false}, which tells nothing about why.
type introspection struct {
	Active    bool   `json:"active"`
	Sub       string `json:"sub"`
	Scope     string `json:"scope,omitempty"`
	Exp       int64  `json:"exp"`
	Iat       int64  `json:"iat"`
	ClientID  string `json:"client_id"`
	TokenType string `json:"token_type"`
	// Only for tokens issued with an audience, JWTs and tokens other than
	// access tokens, so that the answer for Issue's tokens stays as it was.
	Iss      string `json:"iss,omitempty"`
	Aud      string `json:"aud,omitempty"`
	TokenUse string `json:"token_use,omitempty"` // Ory Hydra's name for the kind of token
}

func (s *Service) handleIntrospect(w http.ResponseWriter, r *http.Request) {
	// Read the body before anything else: client_secret_post puts the
	// client credentials in it, and net/http notices that a client has
	// gone away, and cancels r.Context(), only once the body has been
	// consumed.
	formBody := false
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt == "application/x-www-form-urlencoded" {
		formBody = true
		r.Body = http.MaxBytesReader(w, r.Body, maxBody)
		if err := r.ParseForm(); err != nil {
			if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
				writeError(w, http.StatusRequestEntityTooLarge, "invalid_request", "request body too large")
				return
			}
			writeError(w, http.StatusBadRequest, "invalid_request", "malformed form body")
			return
		}
	}
	if !s.clientAuthenticated(r) {
		w.Header().Set("WWW-Authenticate", `Basic realm="tokensvc"`)
		writeError(w, http.StatusUnauthorized, "invalid_client",
			"client authentication failed: send the client id and secret as HTTP Basic auth (client_secret_basic) or in the form body (client_secret_post)")
		return
	}
	s.introspections.Add(1)
	if !formBody {
		writeError(w, http.StatusUnsupportedMediaType, "invalid_request", "Content-Type must be application/x-www-form-urlencoded (RFC 7662 §2.1)")
		return
	}
	if s.injectFault(w, r) {
		return
	}

	token := r.PostForm.Get("token") // RFC 7662 §2.1: in the body, not the URL.
	if token == "" {
		writeError(w, http.StatusBadRequest, "invalid_request", "missing token parameter in the form body (RFC 7662 §2.1)")
		return
	}
	g, ok := s.active(token)
	if !ok {
		writeJSON(w, http.StatusOK, map[string]bool{"active": false})
		return
	}
	reply := introspection{
		Active:    true,
		Sub:       g.sub,
		Scope:     strings.Join(g.scopes, " "),
		Exp:       g.exp.Unix(),
		Iat:       g.iat.Unix(),
		ClientID:  s.opts.ClientID,
		TokenType: "Bearer",
		Aud:       g.aud,
	}
	if g.jwt || g.aud != "" {
		reply.Iss = s.opts.Issuer
	}
	if g.kind != AccessToken {
		reply.TokenUse = g.kind
	}
	writeJSON(w, http.StatusOK, reply)
}

// clientAuthenticated reports whether r carries the service's client
// credentials: as HTTP Basic auth when r has an Authorization header
// (client_secret_basic), else as client_id and client_secret in the form
// body (client_secret_post), the two methods of RFC 6749 §2.3.1, to which
// RFC 7662 §2.1 defers. A request uses one method only. For Basic, RFC 6749
// form-encodes id and secret first; many clients skip that, and for most
// secrets it makes no difference, so either spelling passes.
func (s *Service) clientAuthenticated(r *http.Request) bool {
	if id, secret, basic := r.BasicAuth(); basic {
		return s.credentialsMatch(id, secret) || s.credentialsMatch(formDecode(id), formDecode(secret))
	}
	if r.Header.Get("Authorization") != "" || r.PostForm == nil {
		return false
	}
	id, secret := r.PostForm["client_id"], r.PostForm["client_secret"]
	return len(id) == 1 && len(secret) == 1 && s.credentialsMatch(id[0], secret[0])
}

func (s *Service) credentialsMatch(id, secret string) bool {
	idOK := subtle.ConstantTimeCompare([]byte(id), []byte(s.opts.ClientID))
	secretOK := subtle.ConstantTimeCompare([]byte(secret), []byte(s.opts.ClientSecret))
	return idOK&secretOK == 1
}

func formDecode(s string) string {
	if d, err := url.QueryUnescape(s); err == nil {
		return d
	}
	return s
}
