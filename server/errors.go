package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"wsauth/tokens"
)

// badRequestError is a request this server cannot act on: 400
// invalid_request, its text the public description.
type badRequestError struct{ desc string }

func (e *badRequestError) Error() string { return e.desc }

func badRequest(desc string) error { return &badRequestError{desc} }

// scopeError is a valid token that lacks the scope a route needs (routes.go
// names it), or, with lost set, the token of an open WebSocket that no
// longer carries the scope it was opened with (session.go).
type scopeError struct {
	scope string
	lost  bool
}

func (e *scopeError) Error() string {
	if e.lost {
		return "token lost scope " + e.scope
	}
	return "token lacks scope " + e.scope
}

// upgradeError is a request to /ws that is not a WebSocket handshake this
// server speaks.
type upgradeError struct {
	status int
	desc   string
	header [][2]string
}

func (e *upgradeError) Error() string { return e.desc }

var (
	errOriginRefused = errors.New("origin not allowed")
	errTooManyConns  = errors.New("too many open WebSocket connections")
	errShuttingDown  = errors.New("shutting down")
	errSubjectConns  = errors.New("too many open WebSocket connections for this subject")
)

// throttledError is a request refused by the throttle: its client IP or its
// token failed too often (throttle.go).
type throttledError struct{ wait time.Duration }

func (e *throttledError) Error() string {
	return "too many failed authentications; wait " + e.wait.String()
}

// Why an open WebSocket's token no longer holds it, or a refresh is
// refused (session.go). They wrap tokens.ErrInvalid, so that every medium
// answers them like any other invalid token; only the close reasons
// differ. A lost scope is a *scopeError with lost set.
var (
	errTokenExpired = fmt.Errorf("token expired: %w", tokens.ErrInvalid)
	errTokenRevoked = fmt.Errorf("token revoked: %w", tokens.ErrInvalid)
	// errOtherSubject is a refresh with a valid token of someone else,
	// answered like an invalid token: refresh is no validity oracle.
	errOtherSubject = fmt.Errorf("refresh token belongs to another subject: %w", tokens.ErrInvalid)
)

// answer is what a client is told about an error, in each medium: an HTTP
// response, a close frame, or an in-band error message on an open
// WebSocket. Nothing in it comes from the request, so no token can leak
// through it.
type answer struct {
	status     int
	code       string // "error" in the body, in the challenge and in the in-band message
	desc       string // "error_description" in the body
	challenge  bool   // send WWW-Authenticate: Bearer
	scope      string // insufficient_scope only
	retryAfter int    // seconds, 0 for none: Retry-After, or "retry_after" in-band
	header     [][2]string

	// closeCode and closeReason end a WebSocket that err ends, or, in
	// close mode, answer a refused handshake (3000 and 3003 only); 0 when
	// err never closes a connection.
	closeCode   int
	closeReason string
}

// answerFor is the one table from error to answer (RFC 6750 §3 for the
// challenges; close codes in frames.go). Anything it does not know is a
// 500.
func answerFor(err error) answer {
	var (
		bad   *badRequestError
		scope *scopeError
		up    *upgradeError
		thr   *throttledError
	)
	switch {
	case errors.Is(err, errNoCredential):
		// RFC 6750 §3.1: no error code when the request had no credential.
		return answer{status: 401, code: "missing_token", challenge: true,
			desc:      "send a bearer token, a token cookie or a one-time ticket",
			closeCode: CloseUnauthorized, closeReason: "missing token"}
	case errors.Is(err, tokens.ErrInvalid):
		return answer{status: 401, code: "invalid_token", challenge: true,
			desc:      "the token is invalid, expired or revoked",
			closeCode: CloseUnauthorized, closeReason: invalidReason(err)}
	case errors.As(err, &scope):
		reason := "insufficient scope: token lacks " + scope.scope
		if scope.lost {
			reason = "insufficient scope"
		}
		return answer{status: 403, code: "insufficient_scope", challenge: true, scope: scope.scope, desc: "the token lacks the scope " + scope.scope,
			closeCode: CloseForbidden, closeReason: reason}
	case errors.Is(err, tokens.ErrUnavailable):
		return answer{status: 503, code: "temporarily_unavailable", retryAfter: 5,
			desc: "the token system cannot answer; retry later"}
	case errors.As(err, &bad):
		return answer{status: 400, code: "invalid_request", challenge: true, desc: bad.desc}
	case errors.Is(err, errOriginRefused):
		return answer{status: 403, code: "forbidden_origin",
			desc: "this page's origin may not open a WebSocket here"}
	case errors.Is(err, errTooManyCookies):
		return answer{status: 431, code: "too_many_cookies",
			desc: "the request carries more cookies than the server reads"}
	case errors.As(err, &up):
		return answer{status: up.status, code: "invalid_request", desc: up.desc, header: up.header}
	case errors.As(err, &thr):
		// RFC 6585 §4. Retry-After is in whole seconds, at least 1.
		return answer{status: 429, code: "too_many_requests", retryAfter: int((thr.wait + time.Second - 1) / time.Second),
			desc: "too many failed authentications from this client or with this token; retry later"}
	case errors.Is(err, errSubjectConns):
		return answer{status: 429, code: "too_many_connections", retryAfter: 5,
			desc: "this subject has as many open WebSocket connections as it may; close one first"}
	case errors.Is(err, errSubjectTickets):
		// A subject's oldest ticket expires within TicketTTL.
		return answer{status: 429, code: "too_many_tickets", retryAfter: int(TicketTTL / time.Second),
			desc: "this subject holds as many unexpired tickets as it may; use them, or retry later"}
	case errors.Is(err, errTicketsFull):
		return answer{status: 503, code: "temporarily_unavailable", retryAfter: int(TicketTTL / time.Second),
			desc: "the server mints no more tickets now; retry later"}
	case errors.Is(err, errShuttingDown):
		return answer{status: 503, code: "temporarily_unavailable", retryAfter: 5,
			desc:      "the server takes no more WebSocket connections now; retry later",
			closeCode: CloseGoingAway, closeReason: "server shutting down"}
	case errors.Is(err, errTooManyConns):
		return answer{status: 503, code: "temporarily_unavailable", retryAfter: 5,
			desc: "the server takes no more WebSocket connections now; retry later"}
	}
	return answer{status: 500, code: "server_error", desc: "internal error"}
}

// invalidReason is the close reason for an invalid credential: as much of
// why as the server knows, in fixed words. Every one of them is
// tokens.ErrInvalid, answered alike in every other way.
func invalidReason(err error) string {
	switch {
	case errors.Is(err, errTicketMalformed), errors.Is(err, errTicketForged),
		errors.Is(err, errTicketExpired), errors.Is(err, errTicketReplayed):
		return "invalid, expired or used ticket"
	case errors.Is(err, errTokenExpired):
		return "token expired"
	case errors.Is(err, errTokenRevoked):
		return "token revoked"
	}
	return "invalid, expired or revoked token"
}

// refusesByClose reports whether close mode answers a refused handshake
// with a's close frame rather than its HTTP status: only the
// authentication refusals, 3000 and 3003. A foreign Origin, a malformed
// request, a throttled client and an unavailable token system stay HTTP.
func (a answer) refusesByClose() bool {
	return a.closeCode == CloseUnauthorized || a.closeCode == CloseForbidden
}

// message is a's in-band form on an open WebSocket:
// {"type":"error","error":…}, with "retry_after" (seconds) when the HTTP
// answer would carry Retry-After.
func (a answer) message() errorMsg {
	return errorMsg{Type: "error", Error: a.code, RetryAfter: a.retryAfter}
}

// writeError answers r with err's answer and hands err, the private cause,
// to the request's log line.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	a := answerFor(err)
	if rl := logRecordFrom(r.Context()); rl != nil {
		rl.err = err
	}
	h := w.Header()
	if a.challenge {
		h.Set("WWW-Authenticate", s.challenge(a))
	}
	if a.retryAfter > 0 {
		h.Set("Retry-After", strconv.Itoa(a.retryAfter))
	}
	for _, kv := range a.header {
		h.Set(kv[0], kv[1])
	}
	writeJSON(w, a.status, errorBody{Error: a.code, Description: a.desc})
}

// challenge renders WWW-Authenticate for a (RFC 6750 §3). Codes are fixed
// strings of this package and scopes those of the Config, which New checks
// to be RFC 6749 §3.3 scope tokens: never quoted input.
func (s *Server) challenge(a answer) string {
	c := `Bearer realm="` + s.cfg.Realm + `"`
	if a.status == http.StatusUnauthorized && a.code == "missing_token" {
		return c
	}
	c += `, error="` + a.code + `"`
	if a.scope != "" {
		c += `, scope="` + a.scope + `"`
	}
	return c
}

type errorBody struct {
	Error       string `json:"error"`
	Description string `json:"error_description,omitempty"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}
