package faketokensvc

import (
	"cmp"
	"crypto/rand"
	"encoding/base64"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Options configures a [Service]. The zero value is ready to use.
type Options struct {
	// ClientID and ClientSecret are the one pair of client credentials that
	// /introspect accepts (RFC 7662 §2.1: the caller must authenticate).
	ClientID     string // default "wsauth"
	ClientSecret string // default "dev-secret"

	// Now is the clock that decides expiry; nil means time.Now. Injected
	// latency ([Faults.Latency]) runs on real timers regardless.
	Now func() time.Time
}

func (o Options) withDefaults() Options {
	o.ClientID = cmp.Or(o.ClientID, "wsauth")
	o.ClientSecret = cmp.Or(o.ClientSecret, "dev-secret")
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}

// Service is the fake token system: the tokens it has issued, the faults it
// injects and the HTTP API over both. It is safe for concurrent use.
type Service struct {
	opts           Options
	handler        http.Handler
	introspections atomic.Int64

	mu     sync.Mutex
	grants map[string]grant // by token; Revoke deletes
	faults Faults
}

// grant is what the token system knows about one token.
type grant struct {
	sub      string
	scopes   []string
	iat, exp time.Time
}

// New returns a Service with no tokens and no faults.
func New(opts Options) *Service {
	s := &Service{opts: opts.withDefaults(), grants: make(map[string]grant)}
	s.handler = s.routes()
	return s
}

// Handler returns the HTTP API described in the package doc.
func (s *Service) Handler() http.Handler { return s.handler }

// Issue mints an opaque token for sub with the given scopes, valid for ttl on
// the service's clock. A ttl of zero or less gives a token that is already
// expired, which introspection reports as inactive.
//
// The token is 32 bytes from crypto/rand, base64url without padding (43
// characters).
func (s *Service) Issue(sub string, scopes []string, ttl time.Duration) (token string, exp time.Time) {
	var b [32]byte
	rand.Read(b[:]) // crypto/rand.Read never returns an error (Go 1.24+).
	token = base64.RawURLEncoding.EncodeToString(b[:])
	now := s.opts.Now()
	exp = now.Add(ttl)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.grants[token] = grant{sub: sub, scopes: slices.Clone(scopes), iat: now, exp: exp}
	return token, exp
}

// Revoke makes token inactive from now on. Revoking an unknown token does
// nothing, as RFC 7009 §2.2 has a revocation endpoint do.
func (s *Service) Revoke(token string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.grants, token)
}

// SetScopes replaces the scopes of an issued token, for tests of a session
// whose token loses a scope while it is in use. It reports false if the token
// was never issued or has been revoked.
func (s *Service) SetScopes(token string, scopes []string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	g, ok := s.grants[token]
	if ok {
		g.scopes = slices.Clone(scopes)
		s.grants[token] = g
	}
	return ok
}

// Introspections reports how many requests to /introspect carried valid
// client credentials, whether or not a fault then spoiled the answer.
func (s *Service) Introspections() int64 { return s.introspections.Load() }

// active returns the grant behind token if the token is active: issued, not
// revoked, and not yet expired (exp <= now is expired).
func (s *Service) active(token string) (grant, bool) {
	now := s.opts.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	g, ok := s.grants[token]
	if !ok || !now.Before(g.exp) {
		return grant{}, false
	}
	return g, true
}
