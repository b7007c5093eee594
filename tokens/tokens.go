// Package tokens validates bearer tokens: opaque ones by asking the
// external token system (RFC 7662 token introspection), JWT access tokens
// (RFC 9068) by verifying them locally against the issuer's JWK set
// (RFC 7517, with the practices of RFC 8725), found by discovery (OpenID
// Connect Discovery, RFC 8414) if need be; Kinds picks one per token. A
// bounded, single-flight cache sits in front of either. Each of them is a
// Validator, the interface to implement for a token system this package
// does not speak.
//
// Every answer falls into one of three cases, which callers tell apart with
// errors.Is: a valid token (nil error and a Principal), an invalid one
// (ErrInvalid: the client's fault, HTTP 401) and a token system that could not
// answer (ErrUnavailable: not the client's fault, HTTP 503). An unavailable
// token system is never turned into a valid token.
package tokens

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"
)

// Errors returned by validators, wrapped with context. Test with errors.Is.
var (
	// ErrInvalid means the token is unknown, expired, revoked, inactive or
	// malformed: the client must get a new one.
	ErrInvalid = errors.New("invalid token")
	// ErrUnavailable means the token system could not give an answer
	// (unreachable, timed out, 5xx, undecodable or oversized reply): the
	// client may retry the same token later.
	ErrUnavailable = errors.New("token system unavailable")
)

// MaxTokenLen is the longest token worth sending to the token system or
// verifying: it bounds a JWT's header and claims too.
const MaxTokenLen = 4096

// Principal is who a valid token speaks for, as the token system said.
type Principal struct {
	Subject  string    // "sub": whom the token was issued to
	Scopes   []string  // "scope", split on spaces
	Expiry   time.Time // "exp"; this package's validators refuse a token without one
	ClientID string    // "client_id": the client the token was issued to, if given
}

// HasScope reports whether p carries scope.
func (p Principal) HasScope(scope string) bool {
	return slices.Contains(p.Scopes, scope)
}

// Validator validates a token: the one method a resource server needs of a
// token system. Introspector, JWTVerifier, Kinds and Cache implement it,
// and server.Config.Validator takes it.
//
// It is also the extension point for a token system this package does not
// speak (a provider's own API, a session store, a test double): implement
// Validate, wrap it in a Cache if its answers cost a call, and hand it to
// the server. The contract is the package's: a valid token returns its
// Principal and a nil error; otherwise the error wraps ErrInvalid (the
// client must get a new token: 401) or ErrUnavailable (the token system
// could not answer: 503, and never a valid token). Set the Principal's
// Expiry: the server closes a WebSocket when it passes, and a zero Expiry
// leaves the socket to rechecks alone, which is why this package's
// validators refuse a token without one.
type Validator interface {
	Validate(ctx context.Context, token string) (Principal, error)
}

// ValidatorFunc adapts a function to the Validator interface.
type ValidatorFunc func(ctx context.Context, token string) (Principal, error)

// Validate calls f(ctx, token).
func (f ValidatorFunc) Validate(ctx context.Context, token string) (Principal, error) {
	return f(ctx, token)
}

// Errors for the cheap checks, allocated once: CheckFormat runs on every
// request and its answer must not cost an allocation.
var (
	errEmpty    = fmt.Errorf("%w: empty", ErrInvalid)
	errTooLong  = fmt.Errorf("%w: longer than %d bytes", ErrInvalid, MaxTokenLen)
	errBadBytes = fmt.Errorf("%w: characters outside visible ASCII", ErrInvalid)
)

// CheckFormat is the check that costs no call to the token system: a token
// must be 1 to MaxTokenLen bytes of visible ASCII, 0x21 to 0x7E (RFC 6750
// §2.1's b64token is narrower still; a space, a control byte or anything
// non-ASCII cannot be a token). It returns nil or an error wrapping
// ErrInvalid.
func CheckFormat(token string) error {
	switch {
	case token == "":
		return errEmpty
	case len(token) > MaxTokenLen:
		return errTooLong
	}
	for i := 0; i < len(token); i++ {
		if c := token[i]; c <= ' ' || c > '~' {
			return errBadBytes
		}
	}
	return nil
}
