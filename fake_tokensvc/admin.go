package faketokensvc

import (
	"math"
	"net/http"
	"strings"
	"time"
)

type issueRequest struct {
	Sub        string `json:"sub"`
	Scope      string `json:"scope"`       // space-separated, as RFC 7662's scope
	TTLSeconds *int64 `json:"ttl_seconds"` // absent: an hour; 0 or less: already expired
	Kind       string `json:"kind"`        // access_token (default), refresh_token, id_token
	Format     string `json:"format"`      // opaque (default) or jwt
	Alg        string `json:"alg"`         // for a JWT: RS256 (default), PS256, ES256, EdDSA
	Aud        string `json:"aud"`         // the audience; see TokenRequest.Audience
}

type issueReply struct {
	Token string `json:"token"`
	Exp   int64  `json:"exp"`
}

func (s *Service) handleIssue(w http.ResponseWriter, r *http.Request) {
	var req issueRequest
	if !decodeJSON(w, r, &req) {
		return
	}
	if req.Sub == "" {
		writeError(w, http.StatusBadRequest, "invalid_request", `missing "sub"`)
		return
	}
	ttl, ok := seconds(w, "ttl_seconds", req.TTLSeconds, time.Hour)
	if !ok {
		return
	}
	if req.Format != "" && req.Format != "opaque" && req.Format != "jwt" || req.Format == "opaque" && req.Kind == IDToken {
		writeError(w, http.StatusBadRequest, "invalid_request", `"format" must be opaque or jwt, and an ID token is a jwt`)
		return
	}
	token, exp, err := s.IssueToken(TokenRequest{
		Sub: req.Sub, Scopes: strings.Fields(req.Scope), TTL: ttl,
		Kind: req.Kind, JWT: req.Format == "jwt", Alg: req.Alg, Audience: req.Aud,
	})
	if err != nil {
		writeError(w, http.StatusBadRequest, "invalid_request", err.Error())
		return
	}
	writeJSON(w, http.StatusCreated, issueReply{Token: token, Exp: exp.Unix()})
}

// seconds is the duration of the request's member name, n seconds, or def
// when n is nil. A count of seconds a time.Duration cannot hold is answered
// 400, and ok is false.
func seconds(w http.ResponseWriter, name string, n *int64, def time.Duration) (d time.Duration, ok bool) {
	switch {
	case n == nil:
		return def, true
	case *n > math.MaxInt64/int64(time.Second) || *n < math.MinInt64/int64(time.Second):
		writeError(w, http.StatusBadRequest, "invalid_request", `"`+name+`" out of range`)
		return 0, false
	}
	return time.Duration(*n) * time.Second, true
}

// handleRotateKeys answers with the new key ids. The body is optional:
// {"grace_seconds":N} keeps the old keys published for N seconds instead
// of Options.KeyGrace (0 or less: drops them at once).
func (s *Service) handleRotateKeys(w http.ResponseWriter, r *http.Request) {
	var req struct {
		GraceSeconds *int64 `json:"grace_seconds"`
	}
	if r.ContentLength != 0 && !decodeJSON(w, r, &req) {
		return
	}
	grace, ok := seconds(w, "grace_seconds", req.GraceSeconds, s.opts.KeyGrace)
	if !ok {
		return
	}
	s.RotateKeys(grace)
	kids := make(map[string]string)
	for _, alg := range Algorithms {
		kids[alg] = s.KeyID(alg)
	}
	writeJSON(w, http.StatusOK, map[string]any{"kids": kids})
}

func (s *Service) handleRevoke(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Token string `json:"token"`
	}
	if !decodeJSON(w, r, &req) {
		return
	}
	if req.Token == "" {
		writeError(w, http.StatusBadRequest, "invalid_request", `missing "token"`)
		return
	}
	s.Revoke(req.Token)
	w.WriteHeader(http.StatusNoContent)
}

func (s *Service) handleSetScope(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Token string `json:"token"`
		Scope string `json:"scope"`
	}
	if !decodeJSON(w, r, &req) {
		return
	}
	if req.Token == "" {
		writeError(w, http.StatusBadRequest, "invalid_request", `missing "token"`)
		return
	}
	if !s.SetScopes(req.Token, strings.Fields(req.Scope)) {
		writeError(w, http.StatusNotFound, "not_found", "unknown or revoked token")
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// faultsJSON is [Faults] on the wire.
type faultsJSON struct {
	LatencyMS int64 `json:"latency_ms"`
	Status    int   `json:"status"`
	Garbage   bool  `json:"garbage"`
	HangUp    bool  `json:"hang_up"`
}

func (s *Service) handleGetFaults(w http.ResponseWriter, r *http.Request) {
	f := s.Faults()
	writeJSON(w, http.StatusOK, faultsJSON{f.Latency.Milliseconds(), f.Status, f.Garbage, f.HangUp})
}

func (s *Service) handleSetFaults(w http.ResponseWriter, r *http.Request) {
	var req faultsJSON
	if !decodeJSON(w, r, &req) {
		return
	}
	if req.LatencyMS < 0 || req.LatencyMS > math.MaxInt64/int64(time.Millisecond) {
		writeError(w, http.StatusBadRequest, "invalid_request", `"latency_ms" out of range`)
		return
	}
	if req.Status != 0 && (req.Status < 200 || req.Status > 599) {
		writeError(w, http.StatusBadRequest, "invalid_request", `"status" must be 0 (no fault) or 200-599`)
		return
	}
	s.SetFaults(Faults{
		Latency: time.Duration(req.LatencyMS) * time.Millisecond,
		Status:  req.Status,
		Garbage: req.Garbage,
		HangUp:  req.HangUp,
	})
	w.WriteHeader(http.StatusNoContent)
}

func (s *Service) handleStats(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]int64{"introspections": s.Introspections()})
}

func handleHealthz(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}
