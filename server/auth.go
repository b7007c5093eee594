package server

import (
	"context"
	"errors"
	"net/http"

	"wsauth/tokens"
)

// The order of checks on every protected route, cheapest and most
// hostile-proof first, so that no refused request costs a call to the token
// system:
//
//  1. (/ws only) the request is a WebSocket handshake this server speaks: upgradeRequest
//  2. (/ws only) the Origin is allowed: checkOrigin
//  3. one credential is found: extractCredential; a ticket is opened and
//     spent (ticket.go)
//  4. the token is valid, asking the token system through the cache
//  5. the token carries the route's scope
//  6. the Principal goes into the request's context for the handler
//
// Nothing reaches a handler without passing all of them: every failure ends
// in writeError.

// authorized is a request's principal, the token that proved it, and the
// scope the route required of it.
type authorized struct {
	p     tokens.Principal
	token string // kept for the rechecks of a WebSocket; never logged
	scope string // a WebSocket must keep it (session.go refresh, recheck)
}

// decision is what the checks decided about a request, handed to its
// handler in the request's context: the principal and its token, or, in
// close mode only (reject.go), the authentication error that the WebSocket
// handler answers with a close frame instead of an HTTP status. A handler
// acts on the decision and never infers one, so "no principal, no upgrade"
// holds however a handler is reached.
type decision struct {
	authorized       // when refused is nil
	refused    error // close mode: why the token was refused
}

// decisionKey is the context key of a request's decision. An unexported
// type of its own, so that no other package can set or read the value.
type decisionKey struct{}

// withDecision returns a copy of r whose context carries d.
func withDecision(r *http.Request, d decision) *http.Request {
	return r.WithContext(context.WithValue(r.Context(), decisionKey{}, d))
}

// decisionFrom returns the decision in ctx, and whether there is one.
func decisionFrom(ctx context.Context) (decision, bool) {
	d, ok := ctx.Value(decisionKey{}).(decision)
	return d, ok
}

// PrincipalFrom returns the Principal that authorized the request whose
// context is ctx, and false when no principal authorized it.
func PrincipalFrom(ctx context.Context) (tokens.Principal, bool) {
	d, ok := decisionFrom(ctx)
	if !ok || d.refused != nil {
		return tokens.Principal{}, false
	}
	return d.p, true
}

// require lets through requests whose credential, from one of the accepted
// sources, is a valid token carrying scope.
func (s *Server) require(scope string, accepted source, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a, err := s.authenticate(r, scope, accepted)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		next.ServeHTTP(w, withDecision(r, decision{authorized: a}))
	})
}

// authenticate runs steps 3 to 5 above.
func (s *Server) authenticate(r *http.Request, scope string, accepted source) (authorized, error) {
	cred, err := extractCredential(r, accepted, s.cfg.CookieName)
	if err != nil {
		return authorized{}, s.failed(r, err)
	}
	rl := logRecordFrom(r.Context())
	if rl != nil {
		rl.source = cred.source
	}
	a, err := s.validate(r.Context(), s.requestIP(r), cred, "")
	if err != nil {
		return authorized{}, err
	}
	if rl != nil {
		rl.subject = a.p.Subject
	}
	if !a.p.HasScope(scope) {
		return authorized{}, &scopeError{scope: scope}
	}
	a.scope = scope
	return a, nil
}

// validate is step 4, for a handshake or request and for an in-band
// refresh alike: it opens and spends cred when it is a ticket, and asks the
// token system about the token, inside the throttle of failed
// authentications (throttle.go): a client IP or a presented token that
// failed too often is refused before the token system is asked, and every
// failure that is the client's fault counts against both. With sub set, a
// valid token of another subject fails like an invalid one, and counts
// like one, so that an answer never tells a guesser which tokens are
// valid.
func (s *Server) validate(ctx context.Context, ip string, cred credential, sub string) (authorized, error) {
	var keys throttleKeys
	if s.limits != nil {
		// Keyed by what the client presented: for a ticket, the ticket.
		keys = s.limits.keys(ip, cred.value)
		if wait := s.limits.wait(keys); wait > 0 {
			return authorized{}, &throttledError{wait}
		}
	}
	token := cred.value
	if cred.source == fromTicket {
		var err error
		if token, err = s.tickets.redeem(cred.value); err != nil {
			return authorized{}, s.failedKeys(keys, err)
		}
	}
	p, err := s.cfg.Validator.Validate(ctx, token)
	if err == nil && sub != "" && p.Subject != sub {
		err = errOtherSubject
	}
	if err != nil {
		return authorized{}, s.failedKeys(keys, err)
	}
	if s.limits != nil && cred.source != fromTicket {
		// A ticket is used once: remembering it as good is no use.
		s.limits.succeed(keys)
	}
	return authorized{p: p, token: token}, nil
}

// failed counts err, for a request that presented no credential, against
// its IP's bucket when it is the client's fault (a 400, 401 or 431), and
// returns it, or the throttle's 429 when the IP had no attempt left.
func (s *Server) failed(r *http.Request, err error) error {
	if s.limits == nil || !clientsFault(err) {
		return err
	}
	k := s.limits.keys(s.requestIP(r), "")
	// Nothing was asked of the token system: refuse with 429 once the IP
	// has no attempt left, as for a bad token.
	if wait := s.limits.wait(k); wait > 0 {
		return &throttledError{wait}
	}
	s.limits.fail(k)
	return err
}

// failedKeys counts err against the buckets of k when it is the client's
// fault, and returns it.
func (s *Server) failedKeys(k throttleKeys, err error) error {
	if s.limits != nil && clientsFault(err) {
		s.limits.fail(k)
	}
	return err
}

// clientsFault reports whether err is a failed authentication the throttle
// counts: a 400, 401 or 431. The token system's unavailability is nobody's
// failure.
func clientsFault(err error) bool {
	if errors.Is(err, tokens.ErrUnavailable) {
		return false
	}
	switch answerFor(err).status {
	case http.StatusBadRequest, http.StatusUnauthorized, http.StatusRequestHeaderFieldsTooLarge:
		return true
	}
	return false
}

// checkOrigin refuses WebSocket handshakes from pages of foreign origins
// before any credential is looked at: a hijack attempt costs no call to the
// token system and gets a readable 403.
func (s *Server) checkOrigin(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !s.originAllowed(r) {
			s.writeError(w, r, errOriginRefused)
			return
		}
		next.ServeHTTP(w, r)
	})
}
