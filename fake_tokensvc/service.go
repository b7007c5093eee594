package faketokensvc

import (
	"cmp"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"net/http"
	"slices"
	"strings"
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

	// Issuer is the "iss" of the JWTs it signs and the "issuer" of its
	// discovery document. For discovery to work it must be the URL the
	// service is reached at (OpenID Connect Discovery §4.3), so set it
	// once the listener's address is known. Default
	// "http://faketokensvc.invalid".
	Issuer string
	// Audience is the "aud" of the JWT access tokens it signs when the
	// request names none: the API the tokens are for. Default
	// "wsauth-api". (ID tokens are for the client, ClientID.)
	Audience string
	// KeyGrace is how long a key replaced by POST /admin/rotate-keys stays
	// in the JWK set; default an hour, the default lifetime of a token.
	KeyGrace time.Duration
	// JWKSMaxAge is the max-age of the JWK set's Cache-Control; default
	// five minutes, negative for no-store.
	JWKSMaxAge time.Duration
}

func (o Options) withDefaults() Options {
	o.ClientID = cmp.Or(o.ClientID, "wsauth")
	o.ClientSecret = cmp.Or(o.ClientSecret, "dev-secret")
	o.Issuer = cmp.Or(o.Issuer, "http://faketokensvc.invalid")
	o.Audience = cmp.Or(o.Audience, "wsauth-api")
	o.KeyGrace = cmp.Or(o.KeyGrace, time.Hour)
	o.JWKSMaxAge = cmp.Or(o.JWKSMaxAge, 5*time.Minute)
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
	jwksFetches    atomic.Int64

	mu     sync.Mutex
	grants map[string]grant // by token; Revoke deletes
	faults Faults

	keysMu sync.Mutex
	keys   []signingKey // made on first use; see keysLocked
}

// grant is what the token system knows about one token.
type grant struct {
	sub      string
	scopes   []string
	iat, exp time.Time
	kind     string // AccessToken, RefreshToken or IDToken
	aud      string // "" for a token issued without one
	jwt      bool
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
	token, exp, _ = s.IssueToken(TokenRequest{Sub: sub, Scopes: scopes, TTL: ttl})
	return token, exp
}

// Kinds of token, as RFC 7009 §2.1's token_type_hint and Ory Hydra's
// "token_use" name them.
const (
	AccessToken  = "access_token"
	RefreshToken = "refresh_token"
	IDToken      = "id_token" // OpenID Connect Core §2
)

// TokenRequest describes a token for IssueToken. Its zero fields take the
// defaults: an opaque access token, valid for no time at all unless TTL
// says otherwise.
type TokenRequest struct {
	Sub    string
	Scopes []string
	TTL    time.Duration // zero or less: already expired

	// Kind is AccessToken (default), RefreshToken or IDToken.
	Kind string
	// JWT asks for a signed JWT rather than an opaque token; ID tokens are
	// always JWTs. Access tokens are RFC 9068 JWTs ("typ": "at+jwt");
	// refresh tokens are JWTs as Keycloak makes them ("typ": "Refresh" in
	// the claims, "aud" the issuer).
	JWT bool
	// Alg is the JWT's algorithm, one of Algorithms; default RS256.
	Alg string
	// Audience is the access token's "aud"; for a JWT it defaults to
	// Options.Audience, and an opaque token without one has none.
	Audience string
}

// IssueToken mints the token req describes and records it, so that
// introspection answers for it (ID tokens included, as Keycloak's does) and
// Revoke works on it. Introspection of a refresh token answers active:true
// with "token_use": "refresh_token", as real token systems do; a token with
// an audience, or a JWT, has "aud" and "iss" in its introspection answer.
// It fails only for a request that names an unknown kind or algorithm.
func (s *Service) IssueToken(req TokenRequest) (token string, exp time.Time, err error) {
	kind := cmp.Or(req.Kind, AccessToken)
	alg := cmp.Or(req.Alg, "RS256")
	if kind != AccessToken && kind != RefreshToken && kind != IDToken {
		return "", time.Time{}, fmt.Errorf("unknown token kind %q: want %s, %s or %s", kind, AccessToken, RefreshToken, IDToken)
	}
	if !slices.Contains(Algorithms, alg) {
		return "", time.Time{}, fmt.Errorf("unknown algorithm %q: want one of %q", alg, Algorithms)
	}
	now := s.opts.Now()
	exp = now.Add(req.TTL)
	g := grant{sub: req.Sub, scopes: slices.Clone(req.Scopes), iat: now, exp: exp, kind: kind, aud: req.Audience,
		jwt: req.JWT || kind == IDToken}
	if g.jwt {
		claims := map[string]any{"iss": s.opts.Issuer, "sub": req.Sub, "iat": now.Unix(), "exp": exp.Unix(), "jti": randomString()}
		typ := "JWT"
		switch kind {
		case AccessToken: // RFC 9068 §2.2
			typ = "at+jwt"
			g.aud = cmp.Or(g.aud, s.opts.Audience)
			claims["client_id"] = s.opts.ClientID
		case RefreshToken:
			g.aud = s.opts.Issuer
			claims["typ"] = "Refresh"
		case IDToken: // OpenID Connect Core §2: for the client that signed the user in
			g.aud = cmp.Or(req.Audience, s.opts.ClientID)
			claims["nonce"] = randomString()
			claims["auth_time"] = now.Unix()
		}
		claims["aud"] = g.aud
		if len(req.Scopes) > 0 && kind != IDToken {
			claims["scope"] = strings.Join(req.Scopes, " ")
		}
		if token, err = s.signJWT(alg, typ, claims); err != nil {
			return "", time.Time{}, err
		}
	} else {
		token = randomString()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.grants[token] = g
	return token, exp, nil
}

// randomString is 32 bytes from crypto/rand, base64url without padding (43
// characters): an opaque token, or a JWT's "jti" or "nonce".
func randomString() string {
	var b [32]byte
	rand.Read(b[:]) // crypto/rand.Read never returns an error (Go 1.24+).
	return base64.RawURLEncoding.EncodeToString(b[:])
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
