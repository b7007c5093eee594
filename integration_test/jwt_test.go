package integration_test

import (
	"crypto"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	faketokensvc "wsauth/fake_tokensvc"
	"wsauth/server"
	"wsauth/tokens"
)

// jwtAlgs are the algorithms the fake signs with and the server accepts.
var jwtAlgs = []string{"RS256", "PS256", "ES256", "EdDSA"}

// TestJWTAuthMatrix is TestAuthMatrix over every token format: opaque
// tokens (introspected) and JWT access tokens of each algorithm (verified
// locally), carried every way, to /api/me and /ws, with JWT verification
// and introspection both configured, as cmd/wsauth runs with -issuer and a
// client secret. A revoked JWT is left out: local verification cannot see
// a revocation (TestRevokedJWT).
func TestJWTAuthMatrix(t *testing.T) {
	t.Parallel()
	for _, route := range []string{"api", "ws"} {
		t.Run(route, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, withJWKS(jwksAndIntrospection))
			t.Run("opaque", func(t *testing.T) { authMatrixOf(t, e, route, e.issue, true) })
			for _, alg := range jwtAlgs {
				t.Run(alg, func(t *testing.T) {
					authMatrixOf(t, e, route, func(sub string, ttl time.Duration, scopes ...string) string {
						return e.issueJWT(sub, ttl, alg, scopes...)
					}, false)
				})
			}
		})
	}
}

// TestHostileJWTs sends each forged or misused JWT an attacker would try
// (no signature, the public key as an HMAC secret, a key URL of their own,
// a token for another issuer or audience, an ID or refresh token) as a
// bearer token to GET /api/me and GET /ws: each is refused with 401 and
// WWW-Authenticate error="invalid_token", never introspected, and for its
// own reason, which the log line names (the cause, never the token).
func TestHostileJWTs(t *testing.T) {
	t.Parallel()
	clk := &offsetClock{}
	e := newEnv(t, withJWKS(jwksAndIntrospection), withTokenClock(clk.Now))
	now := clk.Now()

	// An attacker's own key and the JWK set it would like us to fetch.
	attacker, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	var attackerHits atomic.Int64
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		attackerHits.Add(1)
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"keys":[{"kty":"RSA","kid":"attacker","alg":"RS256","use":"sig","n":%q,"e":"AQAB"}]}`, b64.EncodeToString(attacker.N.Bytes()))
	}))
	defer evil.Close()
	signRS256 := func(key *rsa.PrivateKey, header, claims map[string]any) string {
		h, _ := json.Marshal(header)
		c, _ := json.Marshal(claims)
		input := b64.EncodeToString(h) + "." + b64.EncodeToString(c)
		digest := sha256.Sum256([]byte(input))
		sig, err := rsa.SignPKCS1v15(nil, key, crypto.SHA256, digest[:])
		if err != nil {
			t.Fatal(err)
		}
		tok := input + "." + b64.EncodeToString(sig)
		rememberSecret(tok)
		return tok
	}
	// Another issuer, whose keys happen to share our issuer's kid.
	other := faketokensvc.New(faketokensvc.Options{Issuer: "https://other.example"})

	with := func(m map[string]any, kv ...any) map[string]any {
		out := make(map[string]any, len(m))
		for k, v := range m {
			out[k] = v
		}
		for i := 0; i < len(kv); i += 2 {
			if kv[i+1] == nil {
				delete(out, kv[i].(string))
			} else {
				out[kv[i].(string)] = kv[i+1]
			}
		}
		return out
	}
	rsHeader, claims := e.header("RS256"), e.claims(now)
	unsigned := func(header, claims map[string]any) string {
		h, _ := json.Marshal(header)
		c, _ := json.Marshal(claims)
		return b64.EncodeToString(h) + "." + b64.EncodeToString(c)
	}

	cases := []struct {
		name  string
		token func() string
		cause string // in the log line's cause
	}{
		{"alg none", func() string {
			tok := unsigned(with(rsHeader, "alg", "none"), claims) + "."
			rememberSecret(tok)
			return tok
		}, "JWT alg not in the allow-list"},
		{"HS256 signed with the RSA public key", func() string {
			der, err := x509.MarshalPKIXPublicKey(publicKey(t, e, e.jwt.KeyID("RS256")))
			if err != nil {
				t.Fatal(err)
			}
			secret := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
			input := unsigned(with(rsHeader, "alg", "HS256"), claims)
			mac := hmac.New(sha256.New, secret)
			mac.Write([]byte(input))
			tok := input + "." + b64.EncodeToString(mac.Sum(nil))
			rememberSecret(tok)
			return tok
		}, "JWT alg not in the allow-list"},
		{"unknown kid", func() string { return e.sign("RS256", with(rsHeader, "kid", "no-such-key"), claims) },
			"no key in the JWK set has the token's kid"},
		{"kid with path characters", func() string { return e.sign("RS256", with(rsHeader, "kid", "../../../../etc/passwd"), claims) },
			"no key in the JWK set has the token's kid"},
		{"kid with SQL characters", func() string { return e.sign("RS256", with(rsHeader, "kid", "x' OR '1'='1"), claims) },
			"no key in the JWK set has the token's kid"},
		{"jku pointing elsewhere", func() string {
			return signRS256(attacker, map[string]any{"alg": "RS256", "kid": "attacker", "typ": "at+jwt", "jku": evil.URL + "/jwks.json"}, claims)
		}, "no key in the JWK set has the token's kid"},
		{"x5u pointing elsewhere", func() string {
			return signRS256(attacker, map[string]any{"alg": "RS256", "kid": "attacker", "typ": "at+jwt", "x5u": evil.URL + "/cert.pem"}, claims)
		}, "no key in the JWK set has the token's kid"},
		{"its own key in jwk", func() string {
			jwk := map[string]any{"kty": "RSA", "kid": "attacker", "n": b64.EncodeToString(attacker.N.Bytes()), "e": "AQAB"}
			return signRS256(attacker, map[string]any{"alg": "RS256", "kid": "attacker", "typ": "at+jwt", "jwk": jwk}, claims)
		}, "no key in the JWK set has the token's kid"},
		{"its own key in jwk, under our kid", func() string {
			jwk := map[string]any{"kty": "RSA", "kid": e.jwt.KeyID("RS256"), "n": b64.EncodeToString(attacker.N.Bytes()), "e": "AQAB"}
			return signRS256(attacker, with(rsHeader, "jwk", jwk), claims)
		}, "JWT signature does not verify"},
		{"crit", func() string { return e.sign("RS256", with(rsHeader, "crit", []string{"exp"}), claims) },
			"JWT header has crit"},
		{"huge header", func() string { return e.sign("RS256", with(rsHeader, "x", strings.Repeat("h", 4000)), claims) },
			"longer than 4096 bytes"},
		{"huge payload", func() string { return e.sign("RS256", rsHeader, with(claims, "x", strings.Repeat("p", 4000))) },
			"longer than 4096 bytes"},
		{"wrong iss", func() string { return e.sign("RS256", rsHeader, with(claims, "iss", "https://evil.example")) },
			"JWT iss is not the issuer"},
		{"wrong aud", func() string { return e.sign("RS256", rsHeader, with(claims, "aud", "other-api")) },
			"JWT not for this audience or client"},
		{"missing aud", func() string { return e.sign("RS256", rsHeader, with(claims, "aud", nil)) },
			"JWT not for this audience or client"},
		{"expired", func() string {
			return e.sign("ES256", e.header("ES256"), with(claims, "iat", now.Add(-2*time.Hour).Unix(), "exp", now.Add(-time.Minute).Unix()))
		}, "JWT expired or without exp"},
		{"no exp", func() string { return e.sign("ES256", e.header("ES256"), with(claims, "exp", nil)) },
			"JWT expired or without exp"},
		{"future nbf", func() string {
			return e.sign("EdDSA", e.header("EdDSA"), with(claims, "nbf", now.Add(10*time.Minute).Unix()))
		},
			"JWT nbf or iat in the future"},
		{"payload altered after signing", func() string {
			h, _, sig := jwtParts(e.sign("RS256", rsHeader, claims))
			p, _ := json.Marshal(with(claims, "sub", "admin"))
			tok := h + "." + b64.EncodeToString(p) + "." + sig
			rememberSecret(tok)
			return tok
		}, "JWT signature does not verify"},
		{"ES256 signature in DER", func() string {
			h, p, sig := jwtParts(e.sign("ES256", e.header("ES256"), claims))
			raw, _ := b64.DecodeString(sig)
			der, err := asn1.Marshal(struct{ R, S *big.Int }{new(big.Int).SetBytes(raw[:32]), new(big.Int).SetBytes(raw[32:])})
			if err != nil {
				t.Fatal(err)
			}
			tok := h + "." + p + "." + b64.EncodeToString(der)
			rememberSecret(tok)
			return tok
		}, "JWT signature does not verify"},
		{"RS256 alg on the EC key's kid", func() string { return e.sign("RS256", with(rsHeader, "kid", e.jwt.KeyID("ES256")), claims) },
			"JWT alg is not the algorithm of the key its kid names"},
		{"claim named twice", func() string {
			c, _ := json.Marshal(claims)
			dup := append([]byte(`{"sub":"admin",`), c[1:]...)
			return e.sign("RS256", rsHeader, dup)
		}, "JWT claims not a JSON object"},
		{"a valid ID token", func() string {
			return e.issueToken(faketokensvc.TokenRequest{Sub: "alice", TTL: time.Hour, Kind: faketokensvc.IDToken, Alg: "ES256"})
		}, "an OpenID Connect ID token"},
		{"a valid ID token for this API's audience", func() string {
			return e.issueToken(faketokensvc.TokenRequest{Sub: "alice", TTL: time.Hour, Kind: faketokensvc.IDToken, Audience: audience})
		}, "an OpenID Connect ID token"},
		{"a valid refresh token", func() string {
			return e.issueToken(faketokensvc.TokenRequest{Sub: "alice", Scopes: []string{"api", "ws"}, TTL: time.Hour, Kind: faketokensvc.RefreshToken, JWT: true})
		}, "not an access token"},
		{"another issuer's token, same kid", func() string {
			tok, err := other.Sign("RS256", mustJSON(t, rsHeader), mustJSON(t, claims))
			if err != nil {
				t.Fatal(err)
			}
			rememberSecret(tok)
			return tok
		}, "JWT signature does not verify"},
	}
	clk.Advance(tokens.JWKSRefetchInterval) // the first unknown kid may fetch the JWK set
	before := e.svc.Introspections()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			causes := bearer401(t, e, tc.token())
			for _, c := range causes {
				if !strings.Contains(c, tc.cause) {
					t.Errorf("logged cause %s; want it to say %q", c, tc.cause)
				}
			}
			t.Logf("answer: 401 invalid_token; cause: %s", causes[0])
		})
	}
	if n := e.svc.Introspections() - before; n != 0 {
		t.Errorf("hostile JWTs cost %d introspections; want 0", n)
	}
	if n := attackerHits.Load(); n != 0 {
		t.Errorf("the server fetched from the URL a token named %d times; want never", n)
	}
}

// publicKey returns the RSA public key of kid from the fake's JWK set, as
// anyone can read it.
func publicKey(t *testing.T, e *env, kid string) *rsa.PublicKey {
	t.Helper()
	resp, err := http.Get(e.svcURL + jwksPath)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var set struct {
		Keys []struct{ Kid, N, E string }
	}
	if err := json.NewDecoder(resp.Body).Decode(&set); err != nil {
		t.Fatal(err)
	}
	for _, k := range set.Keys {
		if k.Kid == kid {
			n, _ := b64.DecodeString(k.N)
			e, _ := b64.DecodeString(k.E)
			return &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(new(big.Int).SetBytes(e).Int64())}
		}
	}
	t.Fatalf("no key %q in the JWK set", kid)
	return nil
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestJWKSRotationWhileSocketsOpen: with JWKS only, the issuer rotates its
// keys while WebSockets on tokens of the old keys are open. They stay
// open, rechecked, while the old keys are still published (the grace);
// once the JWK set, fetched again, has dropped them, the next recheck
// closes them with 3000. Sockets on the new keys stay.
func TestJWKSRotationWhileSocketsOpen(t *testing.T) {
	checkNoLeaks(t)
	const recheck = 200 * time.Millisecond
	clk := &offsetClock{}
	e := newEnv(t, withJWKS(jwksOnly), withTokenClock(clk.Now), withRecheck(recheck))
	var old []*wsConn
	for _, alg := range jwtAlgs {
		c, _ := openWS(t, e, e.issueJWT("alice-"+alg, 2*time.Hour, alg, "ws"))
		old = append(old, c)
	}
	e.jwt.RotateKeys(time.Minute)
	clk.Advance(tokens.JWKSRefetchInterval) // so that the new kid may be fetched
	var fresh []*wsConn
	for _, alg := range jwtAlgs {
		c, _ := openWS(t, e, e.issueJWT("bob-"+alg, 2*time.Hour, alg, "ws"))
		fresh = append(fresh, c)
	}
	waitRechecks := func(what string, sweeps int) {
		t.Helper()
		n := e.rechecks.Load()
		want := n + int64(sweeps*(len(old)+len(fresh)))
		waitFor(t, time.Duration(sweeps)*recheck*10+5*time.Second, what, func() bool { return e.rechecks.Load() >= want })
	}
	waitRechecks("three sweeps during the grace", 3)
	for i, c := range append(old, fresh...) {
		expectEcho(t, c, fmt.Sprint("during the grace, connection ", i))
	}

	// Past the grace, and past the JWK set's max-age: the next recheck
	// refetches the set, which has dropped the old keys; the one after
	// finds their kids gone.
	clk.Advance(6 * time.Minute)
	for _, c := range old {
		expectClose(t, c, 10*recheck+5*time.Second, server.CloseUnauthorized, "token revoked")
	}
	waitRechecks("a sweep after the old keys left", 1)
	for i, c := range fresh {
		expectEcho(t, c, fmt.Sprint("after the grace, new-key connection ", i))
	}
}

// TestJWKSEndpointDown: while the JWK set cannot be fetched, tokens of the
// keys already fetched verify; a token naming an unknown kid is answered
// 503 with Retry-After (the server cannot tell whether it is forged), not
// 401; once the set is back, it verifies.
func TestJWKSEndpointDown(t *testing.T) {
	t.Parallel()
	clk := &offsetClock{}
	e := newEnv(t, withJWKS(jwksOnly), withTokenClock(clk.Now))
	known := e.issueJWT("alice", time.Hour, "ES256", "api", "ws")
	e.jwksDown.Store(true)
	e.jwt.RotateKeys(time.Hour)
	clk.Advance(tokens.JWKSRefetchInterval)
	unknown := e.issueJWT("bob", time.Hour, "ES256", "api", "ws")

	if status, _, body := e.get("/api/me", bearer(known)); status != 200 {
		t.Errorf("GET /api/me with a known key's token while the JWK set is down: %d %s; want 200", status, body)
	}
	c, _ := openWS(t, e, known)
	c.Close()
	status, h, body := e.get("/api/me", bearer(unknown))
	checkRefusal(t, "GET /api/me with an unknown kid while the JWK set is down", status, h, body, 503, "", "temporarily_unavailable", unknown)
	if h.Get("Retry-After") == "" {
		t.Error("503 while the JWK set is down: no Retry-After")
	}
	c, resp, body := e.dial("/ws", bearer(unknown))
	if c != nil {
		t.Fatal("GET /ws with an unknown kid while the JWK set is down: upgraded; want 503")
	}
	checkRefusal(t, "GET /ws with an unknown kid while the JWK set is down", resp.StatusCode, resp.Header, body, 503, "", "temporarily_unavailable", unknown)

	e.jwksDown.Store(false)
	clk.Advance(tokens.JWKSRefetchInterval)
	if status, _, body := e.get("/api/me", bearer(unknown)); status != 200 {
		t.Errorf("GET /api/me with the new key's token once the JWK set is back: %d %s; want 200", status, body)
	}
}

// TestUnknownKidStorm: a flood of tokens naming made-up kids costs at most
// one fetch of the JWK set per refetch interval, however many arrive at
// once, and each is answered 401.
func TestUnknownKidStorm(t *testing.T) {
	t.Parallel()
	clk := &offsetClock{}
	e := newEnv(t, withJWKS(jwksOnly), withTokenClock(clk.Now))
	storm := func() {
		t.Helper()
		var wg sync.WaitGroup
		statuses := make(chan int, 200)
		for i := range 200 {
			tok := e.sign("ES256", map[string]any{"alg": "ES256", "kid": fmt.Sprint("made-up-", i), "typ": "at+jwt"}, e.claims(clk.Now()))
			wg.Go(func() {
				req, _ := http.NewRequest("GET", e.URL+"/api/me", nil)
				req.Header.Set("Authorization", "Bearer "+tok)
				resp, err := e.client.Do(req)
				if err != nil {
					t.Error(err)
					return
				}
				resp.Body.Close()
				statuses <- resp.StatusCode
			})
		}
		wg.Wait()
		close(statuses)
		for s := range statuses {
			if s != 401 {
				t.Errorf("GET /api/me with a made-up kid: %d; want 401", s)
				return
			}
		}
	}
	for _, tc := range []struct {
		what    string
		advance time.Duration
		want    int64
	}{
		{"just after the fetch at start", 0, 0},
		{"one refetch interval later", tokens.JWKSRefetchInterval, 1},
		{"again within that interval", 0, 0},
		{"another interval later", tokens.JWKSRefetchInterval, 1},
	} {
		clk.Advance(tc.advance)
		before := e.jwt.JWKSFetches()
		storm()
		if n := e.jwt.JWKSFetches() - before; n != tc.want {
			t.Errorf("200 made-up kids %s: %d fetches of the JWK set; want %d", tc.what, n, tc.want)
		}
	}
}

// TestRevokedJWT: with introspection configured, a recheck introspects a
// JWT, so a revoked one closes its socket with 3000 at the next recheck,
// and from then on it opens nothing new, even once the cache has forgotten
// the recheck's answer. With JWKS only, revocation waits for expiry: the
// socket stays open, as the docs and the startup log say.
func TestRevokedJWT(t *testing.T) {
	checkNoLeaks(t)
	const recheck = 200 * time.Millisecond
	t.Run("JWKS and introspection", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, withJWKS(jwksAndIntrospection), withRecheck(recheck),
			func(c *envConfig) { c.cache.InvalidTTL = -1 }) // no reuse of invalid answers: only Kinds remembers
		tok := e.issueJWT("alice", time.Hour, "RS256", "api", "ws")
		keep := e.issueJWT("bob", time.Hour, "RS256", "api", "ws")
		c, _ := openWS(t, e, tok)
		other, _ := openWS(t, e, keep)
		if status, _, _ := e.get("/api/me", bearer(tok)); status != 200 {
			t.Fatalf("GET /api/me before the revocation: %d; want 200", status)
		}
		e.svc.Revoke(tok)
		revokedAt := time.Now()
		at := expectClose(t, c, recheck+slack+5*time.Second, server.CloseUnauthorized, "token revoked")
		if d := at.Sub(revokedAt); d > recheck+slack {
			t.Errorf("the revoked JWT's socket closed %v after the revocation; want within %v", d, recheck+slack)
		}
		bearer401(t, e, tok)
		expectEcho(t, other, "another subject's JWT stays")
	})
	t.Run("JWKS only", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, withJWKS(jwksOnly), withRecheck(recheck))
		tok := e.issueJWT("alice", time.Hour, "EdDSA", "api", "ws")
		c, _ := openWS(t, e, tok)
		e.svc.Revoke(tok)
		n := e.rechecks.Load()
		waitFor(t, 10*recheck+5*time.Second, "three rechecks", func() bool { return e.rechecks.Load() >= n+3 })
		expectEcho(t, c, "revocation waits for expiry")
		if status, _, _ := e.get("/api/me", bearer(tok)); status != 200 {
			t.Errorf("GET /api/me with a revoked JWT, JWKS only: %d; want 200 (no one can tell it is revoked)", status)
		}
	})
}

// TestIntrospectionRefusesOtherTokens: introspection, with an audience
// configured, refuses the fake's refresh tokens (active, "token_use":
// "refresh_token") and tokens of another audience or of none, with 401
// invalid_token on both routes.
func TestIntrospectionRefusesOtherTokens(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withJWKS(jwksAndIntrospection))
	for _, tc := range []struct {
		name  string
		req   faketokensvc.TokenRequest
		cause string
	}{
		{"refresh token", faketokensvc.TokenRequest{Kind: faketokensvc.RefreshToken, Audience: audience}, "not an access token"},
		{"another audience", faketokensvc.TokenRequest{Audience: "other-api"}, "not for this audience or client"},
		{"no audience", faketokensvc.TokenRequest{}, "not for this audience or client"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.req.Sub, tc.req.Scopes, tc.req.TTL = "alice", []string{"api", "ws"}, time.Hour
			before := e.svc.Introspections()
			for _, c := range bearer401(t, e, e.issueToken(tc.req)) {
				if !strings.Contains(c, tc.cause) {
					t.Errorf("logged cause %s; want it to say %q", c, tc.cause)
				}
			}
			if n := e.svc.Introspections() - before; n != 1 {
				t.Errorf("%d introspections; want 1 (the handshake reuses the cached invalid answer)", n)
			}
		})
	}
}

// TestJWTHandshakesCostNoIntrospection: with JWT verification and
// introspection both configured, handshakes and requests with JWTs,
// valid or not, ask the token system nothing.
func TestJWTHandshakesCostNoIntrospection(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withJWKS(jwksAndIntrospection))
	before := e.svc.Introspections()
	for i := range 20 {
		alg := jwtAlgs[i%len(jwtAlgs)]
		tok := e.issueJWT(fmt.Sprint("user-", i), time.Hour, alg, "api", "ws")
		c, _ := openWS(t, e, tok)
		c.Close()
		if status, _, _ := e.get("/api/me", bearer(tok)); status != 200 {
			t.Errorf("GET /api/me with a %s JWT: %d; want 200", alg, status)
		}
		if status, _, _ := e.get("/api/me", bearer(e.issueJWT("user", 0, alg, "api"))); status != 401 {
			t.Errorf("GET /api/me with an expired %s JWT: %d; want 401", alg, status)
		}
	}
	if n := e.svc.Introspections() - before; n != 0 {
		t.Errorf("20 handshakes and 40 requests with JWTs made %d introspections; want 0", n)
	}
}

// TestProviderShapedJWTs: access tokens shaped as each provider's public
// documentation shows them (docs/TOKEN-SYSTEMS.md), signed by the fake,
// pass with the flags that provider's recipe gives, and the token each
// recipe must refuse (another kind, another audience) is refused. Issuer
// URLs are the fake's own: discovery and the exact "iss" match are tested
// on their own.
func TestProviderShapedJWTs(t *testing.T) {
	t.Parallel()
	type shape struct {
		header map[string]any // over e.header(alg); nil values delete
		claims map[string]any // over e.claims(now); nil values delete
	}
	for _, tc := range []struct {
		name      string
		audience  string
		clientIDs []string
		api, ws   string // the route scopes; empty: api, ws
		good      shape
		wantScope []string
		bad       []shape
	}{
		{name: "auth0", audience: "https://chat.example.com/api",
			good: shape{map[string]any{"typ": "JWT"}, map[string]any{
				"aud": []string{"https://chat.example.com/api", "https://tenant.example/userinfo"}, "azp": "app1", "client_id": nil,
				"scope": "openid profile api ws"}},
			wantScope: []string{"openid", "profile", "api", "ws"},
			bad:       []shape{{nil, map[string]any{"aud": "https://tenant.example/userinfo"}}}},
		{name: "auth0 RFC 9068 profile", audience: "https://chat.example.com/api",
			good:      shape{nil, map[string]any{"aud": []string{"https://chat.example.com/api", "https://tenant.example/userinfo"}, "client_id": "app1"}},
			wantScope: []string{"api", "ws"},
			bad:       []shape{{map[string]any{"typ": "JWT"}, map[string]any{"aud": "app1", "nonce": "n-0S6_WzA2Mj"}}}},
		{name: "okta", audience: "api://default",
			good: shape{map[string]any{"typ": nil}, map[string]any{
				"aud": "api://default", "cid": "0oa1", "uid": "00u1", "client_id": nil, "scope": nil, "scp": []string{"api", "ws"}, "ver": 1}},
			wantScope: []string{"api", "ws"},
			bad:       []shape{{map[string]any{"typ": nil}, map[string]any{"aud": "0oa1", "at_hash": "x"}}}},
		{name: "entra ID", audience: "6e74172b-be56-4843-9ff4-e66a39bb12e3", api: "chat.read", ws: "chat.write",
			good: shape{map[string]any{"typ": "JWT"}, map[string]any{
				"aud": "6e74172b-be56-4843-9ff4-e66a39bb12e3", "azp": "app1", "client_id": nil, "ver": "2.0",
				"scope": nil, "scp": "chat.read chat.write"}},
			wantScope: []string{"chat.read", "chat.write"},
			bad:       []shape{{map[string]any{"typ": "JWT"}, map[string]any{"aud": "00000003-0000-0000-c000-000000000000", "scope": nil, "scp": "chat.read chat.write"}}}},
		{name: "cognito", clientIDs: []string{"57cbishk4j24pabc1234567890"},
			good: shape{map[string]any{"typ": nil}, map[string]any{
				"aud": nil, "client_id": "57cbishk4j24pabc1234567890", "token_use": "access", "username": "janedoe"}},
			wantScope: []string{"api", "ws"},
			bad: []shape{
				{map[string]any{"typ": nil}, map[string]any{"aud": "57cbishk4j24pabc1234567890", "client_id": nil, "token_use": "id"}},
				{map[string]any{"typ": nil}, map[string]any{"aud": nil, "client_id": "another-app-client", "token_use": "access"}},
			}},
		{name: "keycloak", audience: "chat-api",
			good: shape{map[string]any{"typ": "JWT"}, map[string]any{
				"aud": []string{"chat-api", "account"}, "typ": "Bearer", "azp": "chat-web", "client_id": nil}},
			wantScope: []string{"api", "ws"},
			bad:       []shape{{map[string]any{"typ": "JWT"}, map[string]any{"aud": []string{"chat-api"}, "typ": "Refresh"}}}},
		{name: "ory hydra, JWT strategy", audience: "chat-api",
			good: shape{map[string]any{"typ": "JWT"}, map[string]any{
				"aud": []string{"chat-api"}, "scope": nil, "scp": []string{"api", "ws"}}},
			wantScope: []string{"api", "ws"},
			bad:       []shape{{map[string]any{"typ": "JWT"}, map[string]any{"aud": []string{}, "scope": nil, "scp": []string{"api", "ws"}}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, withJWKS(jwksOnly),
				withJWTConfig(func(c *tokens.JWTConfig) { c.Audience, c.AllowedClientIDs = tc.audience, tc.clientIDs }),
				withServer(func(c *server.Config) { c.APIScope, c.WSScope = tc.api, tc.ws }))
			mint := func(s shape) string {
				h, c := e.header("RS256"), e.claims(time.Now())
				for k, v := range s.header {
					if v == nil {
						delete(h, k)
					} else {
						h[k] = v
					}
				}
				for k, v := range s.claims {
					if v == nil {
						delete(c, k)
					} else {
						c[k] = v
					}
				}
				return e.sign("RS256", h, c)
			}
			good := mint(tc.good)
			status, _, body := e.get("/api/me", bearer(good))
			var me struct{ Scope []string }
			json.Unmarshal([]byte(body), &me)
			if status != 200 || strings.Join(me.Scope, " ") != strings.Join(tc.wantScope, " ") {
				t.Errorf("GET /api/me with a %s-shaped token: %d %s; want 200 and scopes %q", tc.name, status, body, tc.wantScope)
			}
			c, _ := openWS(t, e, good)
			c.Close()
			for i, s := range tc.bad {
				if status, _, body := e.get("/api/me", bearer(mint(s))); status != 401 {
					t.Errorf("GET /api/me with %s's token %d that its recipe must refuse: %d %s; want 401", tc.name, i, status, body)
				}
			}
		})
	}
}

// b64 is base64url without padding, as JWS uses.
var b64 = base64.RawURLEncoding

// jwtParts splits a compact JWS.
func jwtParts(tok string) (header, payload, sig string) {
	parts := strings.SplitN(tok, ".", 3)
	return parts[0], parts[1], parts[2]
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
