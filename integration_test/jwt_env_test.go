package integration_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	faketokensvc "wsauth/fake_tokensvc"
	"wsauth/tokens"
)

// The env of JWT access tokens: the fake plays a provider that signs JWTs
// and publishes its JWK set, and the server verifies them as cmd/wsauth
// does with -issuer: a tokens.Kinds behind the cache, its rechecks by
// Kinds.Recheck.

// jwksMode says how an env validates tokens.
type jwksMode int

const (
	noJWKS               jwksMode = iota // every token introspected (newEnv's default)
	jwksOnly                             // JWTs verified locally; nothing introspected
	jwksAndIntrospection                 // JWTs verified locally, other tokens and every recheck introspected
)

// audience is the API the env's tokens are for (the fake's default "aud"
// of JWT access tokens), and jwksPath where the fake publishes its keys.
const (
	audience = "wsauth-api"
	jwksPath = "/.well-known/jwks.json"
)

// withJWKS makes the env verify JWTs against the fake's JWK set; with
// jwksAndIntrospection, the introspector also checks the audience and
// the issuer, as cmd/wsauth's does with -issuer and -audience.
func withJWKS(mode jwksMode) envOption { return func(c *envConfig) { c.jwks = mode } }

// withJWTConfig edits the env's JWTConfig (withJWKS).
func withJWTConfig(f func(*tokens.JWTConfig)) envOption {
	return func(c *envConfig) { c.jwtConfig = f }
}

// withTokenClock runs the fake and the JWT verifier on now: tests move it
// past a key's grace, a JWK set's max-age or the refetch interval.
func withTokenClock(now func() time.Time) envOption { return func(c *envConfig) { c.tokenClock = now } }

// offsetClock is the real clock plus an offset that tests advance: unlike
// testClock it moves by itself, as timers and token lifetimes need.
type offsetClock struct{ offset atomic.Int64 }

func (c *offsetClock) Now() time.Time          { return time.Now().Add(time.Duration(c.offset.Load())) }
func (c *offsetClock) Advance(d time.Duration) { c.offset.Add(int64(d)) }

// kinds returns the validator of an env made withJWKS, with its keys
// fetched, and sets the cache's rechecks to Kinds.Recheck, counted in
// e.rechecks.
func (e *env) kinds(cfg *envConfig, in *tokens.Introspector, client *http.Client) tokens.Validator {
	e.t.Helper()
	jc := tokens.JWTConfig{
		JWKSURL: e.svcURL + jwksPath, Issuer: e.svcURL, Audience: audience,
		HTTPClient: client, Timeout: 5 * time.Second, Now: cfg.tokenClock,
	}
	if cfg.jwtConfig != nil {
		cfg.jwtConfig(&jc)
	}
	v, err := tokens.NewJWTVerifier(jc)
	if err != nil {
		e.t.Fatalf("NewJWTVerifier: %v", err)
	}
	if err := v.FetchKeys(context.Background()); err != nil {
		e.t.Fatalf("FetchKeys: %v", err)
	}
	kinds := &tokens.Kinds{JWT: v}
	if cfg.jwks == jwksAndIntrospection {
		in.Issuer, in.Audience, in.AllowedClientIDs = jc.Issuer, jc.Audience, jc.AllowedClientIDs
		kinds.Introspector = in
	}
	cfg.cache.Recheck = func(ctx context.Context, token string) (tokens.Principal, error) {
		e.rechecks.Add(1)
		return kinds.Recheck(ctx, token)
	}
	return kinds
}

// issueToken mints the token req describes, and remembers it for the
// check that no token reaches a log.
func (e *env) issueToken(req faketokensvc.TokenRequest) string {
	e.t.Helper()
	tok, _, err := e.jwt.IssueToken(req)
	if err != nil {
		e.t.Fatalf("IssueToken(%+v): %v", req, err)
	}
	rememberSecret(tok)
	return tok
}

// issueJWT mints a JWT access token for this API, signed with alg.
func (e *env) issueJWT(sub string, ttl time.Duration, alg string, scopes ...string) string {
	return e.issueToken(faketokensvc.TokenRequest{Sub: sub, Scopes: scopes, TTL: ttl, JWT: true, Alg: alg})
}

// claims are a valid access token's claims for this API, issued now by
// the fake's clock; change them to make one that is not.
func (e *env) claims(now time.Time) map[string]any {
	return map[string]any{
		"iss": e.svcURL, "sub": "mallory", "aud": audience, "client_id": "wsauth", "scope": "api ws",
		"iat": now.Unix(), "exp": now.Add(time.Hour).Unix(), "jti": "j-" + base64.RawURLEncoding.EncodeToString([]byte(now.String())),
	}
}

// header is a valid access token's header for alg, with the fake's key.
func (e *env) header(alg string) map[string]any {
	return map[string]any{"alg": alg, "kid": e.jwt.KeyID(alg), "typ": "at+jwt"}
}

// sign signs header and claims (each a map, or raw JSON as []byte) with
// the fake's current key for alg, whatever the header says.
func (e *env) sign(alg string, header, claims any) string {
	e.t.Helper()
	raw := func(v any) []byte {
		if b, ok := v.([]byte); ok {
			return b
		}
		b, err := json.Marshal(v)
		if err != nil {
			e.t.Fatal(err)
		}
		return b
	}
	tok, err := e.jwt.Sign(alg, raw(header), raw(claims))
	if err != nil {
		e.t.Fatalf("Sign: %v", err)
	}
	rememberSecret(tok)
	return tok
}

// b64 is base64url without padding, as JWS uses.
var b64 = base64.RawURLEncoding

// jwtParts splits a compact JWS.
func jwtParts(tok string) (header, payload, sig string) {
	parts := strings.SplitN(tok, ".", 3)
	return parts[0], parts[1], parts[2]
}

// lines returns how many lines the server has logged, and tail those
// logged since the first n.
func (l *testLog) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.lines)
}

func (l *testLog) since(n int) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.lines[n:]...)
}

// bearer401 checks that GET /api/me and a /ws handshake with tok as a
// bearer token are refused with 401 invalid_token, and returns the causes
// the server logged for the two.
func bearer401(t *testing.T, e *env, tok string) []string {
	t.Helper()
	n := e.log.count()
	status, h, body := e.get("/api/me", bearer(tok))
	checkRefusal(t, "GET /api/me", status, h, body, 401, challengeInvalid, "invalid_token", tok)
	c, resp, body := e.dial("/ws", bearer(tok))
	if c != nil {
		c.Close()
		t.Fatal("GET /ws: upgraded; want 401")
	}
	checkRefusal(t, "GET /ws", resp.StatusCode, resp.Header, body, 401, challengeInvalid, "invalid_token", tok)
	var causes []string
	waitFor(t, 5*time.Second, "the log lines of both requests", func() bool {
		causes = causes[:0]
		for _, line := range e.log.since(n) {
			if _, cause, ok := strings.Cut(line, "cause="); ok && strings.Contains(line, "status=401") {
				causes = append(causes, strings.TrimSpace(cause))
			}
		}
		return len(causes) == 2
	})
	return causes
}
