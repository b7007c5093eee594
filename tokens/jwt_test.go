package tokens_test

import (
	"cmp"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	faketokensvc "wsauth/fake_tokensvc"
	"wsauth/tokens"
)

var b64 = base64.RawURLEncoding

// claims returns the claims of a valid access token of e's issuer, changed
// by over: a nil value deletes a claim.
func (e *env) claims(over map[string]any) map[string]any {
	now := e.clock.Now()
	c := map[string]any{
		"iss": e.url, "sub": "alice", "aud": "wsauth-api", "client_id": "wsauth", "scope": "api ws",
		"exp": now.Add(time.Hour).Unix(), "iat": now.Unix(), "jti": "j-1",
	}
	for k, v := range over {
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
	}
	return c
}

// header returns the header of a valid token signed by the fake's current
// key for alg, changed by over as claims is.
func (e *env) header(alg string, over map[string]any) map[string]any {
	h := map[string]any{"alg": alg, "kid": e.svc.KeyID(alg), "typ": "at+jwt"}
	for k, v := range over {
		if v == nil {
			delete(h, k)
		} else {
			h[k] = v
		}
	}
	return h
}

// sign signs header and claims with the fake's current key for alg.
func (e *env) sign(t testing.TB, alg string, header, claims map[string]any) string {
	t.Helper()
	tok, err := e.svc.Sign(alg, mustJSON(t, header), mustJSON(t, claims))
	if err != nil {
		t.Fatalf("Sign(%s): %v", alg, err)
	}
	return tok
}

// issue mints a JWT access token at the fake.
func (e *env) issue(t testing.TB, req faketokensvc.TokenRequest) string {
	t.Helper()
	tok, _, err := e.svc.IssueToken(req)
	if err != nil {
		t.Fatalf("IssueToken(%+v): %v", req, err)
	}
	return tok
}

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// testKey is a key of the test's own, for keys no fake publishes: an
// attacker's, or one a hand-made JWK set describes.
type testKey struct {
	kid, alg string
	priv     crypto.Signer
}

// rsaTestKey is made once: an RSA key takes a tenth of a second.
var rsaTestKey = sync.OnceValue(func() *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	return k
})

func newTestKey(alg, kid string) testKey {
	k := testKey{kid: kid, alg: alg}
	switch alg {
	case "RS256", "PS256":
		k.priv = rsaTestKey()
	case "ES256":
		k.priv, _ = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case "EdDSA":
		_, k.priv, _ = ed25519.GenerateKey(rand.Reader)
	}
	return k
}

// jwk is the key's public JWK, with alg unless noAlg.
func (k testKey) jwk(noAlg bool) map[string]any {
	j := map[string]any{"kid": k.kid, "use": "sig", "alg": k.alg}
	if noAlg {
		delete(j, "alg")
	}
	switch pub := k.priv.Public().(type) {
	case *rsa.PublicKey:
		j["kty"], j["n"], j["e"] = "RSA", b64.EncodeToString(pub.N.Bytes()), "AQAB"
	case *ecdsa.PublicKey:
		p, _ := pub.Bytes()
		j["kty"], j["crv"], j["x"], j["y"] = "EC", "P-256", b64.EncodeToString(p[1:33]), b64.EncodeToString(p[33:])
	case ed25519.PublicKey:
		j["kty"], j["crv"], j["x"] = "OKP", "Ed25519", b64.EncodeToString(pub)
	}
	return j
}

// sign signs header and claims with the key, by the key's algorithm
// whatever the header says.
func (k testKey) sign(t testing.TB, header, claims map[string]any) string {
	t.Helper()
	input := b64.EncodeToString(mustJSON(t, header)) + "." + b64.EncodeToString(mustJSON(t, claims))
	digest := sha256.Sum256([]byte(input))
	var sig []byte
	var err error
	switch k.alg {
	case "RS256":
		sig, err = rsa.SignPKCS1v15(nil, k.priv.(*rsa.PrivateKey), crypto.SHA256, digest[:])
	case "PS256":
		sig, err = rsa.SignPSS(rand.Reader, k.priv.(*rsa.PrivateKey), crypto.SHA256, digest[:], &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash})
	case "ES256":
		r, s, e := ecdsa.Sign(rand.Reader, k.priv.(*ecdsa.PrivateKey), digest[:])
		sig, err = append(r.FillBytes(make([]byte, 32)), s.FillBytes(make([]byte, 32))...), e
	case "EdDSA":
		sig = ed25519.Sign(k.priv.(ed25519.PrivateKey), []byte(input))
	}
	if err != nil {
		t.Fatal(err)
	}
	return input + "." + b64.EncodeToString(sig)
}

// keyServer serves a JWK set of the given keys and counts its requests.
type keyServer struct {
	url  string
	hits atomic.Int64
}

func newKeyServer(t testing.TB, keys ...map[string]any) *keyServer {
	t.Helper()
	ks := &keyServer{}
	body := mustJSON(t, map[string]any{"keys": keys})
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ks.hits.Add(1)
		w.Header().Set("Content-Type", "application/jwk-set+json")
		w.Write(body)
	}))
	t.Cleanup(ts.Close)
	ks.url = ts.URL + "/jwks"
	return ks
}

// replace returns tok with its part i (0 header, 1 payload, 2 signature)
// replaced.
func replace(tok string, i int, part string) string {
	parts := strings.Split(tok, ".")
	parts[i] = part
	return strings.Join(parts, ".")
}

func TestJWTValid(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	v := e.verifier(t)
	exp := e.clock.Now().Add(time.Hour).Truncate(time.Second)
	for _, alg := range faketokensvc.Algorithms {
		tok := e.issue(t, faketokensvc.TokenRequest{Sub: "alice", Scopes: []string{"api", "ws"}, TTL: time.Hour, JWT: true, Alg: alg})
		p, err := v.Validate(context.Background(), tok)
		if err != nil {
			t.Errorf("Validate(%s access token from the fake) = %v; want nil", alg, err)
			continue
		}
		if p.Subject != "alice" || !slices.Equal(p.Scopes, []string{"api", "ws"}) || !p.Expiry.Equal(exp) || p.ClientID != "wsauth" {
			t.Errorf("Validate(%s access token) = %+v; want alice, [api ws], %v, client wsauth", alg, p, exp)
		}
	}

	// Claims and headers providers really send.
	for _, tc := range []struct {
		name          string
		header, claim map[string]any
		edit          func(*tokens.JWTConfig)
		wantScopes    []string
	}{
		{name: "aud as an array", claim: map[string]any{"aud": []string{"other", "wsauth-api"}}, wantScopes: []string{"api", "ws"}},
		{name: "typ JWT", header: map[string]any{"typ": "JWT"}, wantScopes: []string{"api", "ws"}},
		{name: "typ application/AT+JWT", header: map[string]any{"typ": "application/AT+JWT"}, wantScopes: []string{"api", "ws"}},
		{name: "no typ (Amazon Cognito)", header: map[string]any{"typ": nil}, wantScopes: []string{"api", "ws"}},
		{name: "scp as a string (Microsoft Entra ID)", claim: map[string]any{"scope": nil, "scp": "api ws"}, wantScopes: []string{"api", "ws"}},
		{name: "scp as an array (Okta)", claim: map[string]any{"scope": nil, "scp": []string{"api", "ws"}}, wantScopes: []string{"api", "ws"}},
		{name: "no scope", claim: map[string]any{"scope": nil}, wantScopes: nil},
		{name: "x5t and other unread headers", header: map[string]any{"x5t": "abc", "cty": "x"}, wantScopes: []string{"api", "ws"}},
		{name: "iat within the leeway", claim: map[string]any{"iat": e.clock.Now().Add(30 * time.Second).Unix()}, wantScopes: []string{"api", "ws"}},
		{name: "nbf within the leeway", claim: map[string]any{"nbf": e.clock.Now().Add(30 * time.Second).Unix()}, wantScopes: []string{"api", "ws"}},
		{name: "fractional exp", claim: map[string]any{"exp": float64(e.clock.Now().Unix()) + 3600.5}, wantScopes: []string{"api", "ws"}},
		{name: "token_use access (Amazon Cognito)", claim: map[string]any{"token_use": "access"}, wantScopes: []string{"api", "ws"}},
		{name: "typ Bearer in the claims (Keycloak)", claim: map[string]any{"typ": "Bearer"}, wantScopes: []string{"api", "ws"}},
		{name: "no aud, allowed client_id (Amazon Cognito)", claim: map[string]any{"aud": nil, "client_id": "app-1"},
			edit: func(c *tokens.JWTConfig) { c.AllowedClientIDs = []string{"app-1"} }, wantScopes: []string{"api", "ws"}},
		{name: "client_id only configured, aud of another API", claim: map[string]any{"aud": "other", "client_id": "app-1"},
			edit: func(c *tokens.JWTConfig) { c.Audience, c.AllowedClientIDs = "", []string{"app-1"} }, wantScopes: []string{"api", "ws"}},
	} {
		vv := v
		if tc.edit != nil {
			vv = e.verifier(t, tc.edit)
		}
		tok := e.sign(t, "ES256", e.header("ES256", tc.header), e.claims(tc.claim))
		p, err := vv.Validate(context.Background(), tok)
		if err != nil || p.Subject != "alice" || !slices.Equal(p.Scopes, tc.wantScopes) {
			t.Errorf("Validate(token with %s) = %+v, %v; want alice with scopes %q", tc.name, p, err, tc.wantScopes)
		}
	}
	if n := e.svc.Introspections(); n != 0 {
		t.Errorf("introspections = %d; want 0: JWTs are verified locally", n)
	}
}

func TestJWTHostile(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	v := e.verifier(t)
	ctx := context.Background()
	if err := v.FetchKeys(ctx); err != nil {
		t.Fatal(err)
	}
	attacker := newTestKey("RS256", "attacker-key")
	attackerKeys := newKeyServer(t, attacker.jwk(false))
	sameKid := newTestKey("RS256", e.svc.KeyID("RS256"))
	// The RSA public key as PEM, the secret of the classic HS256 confusion.
	rsaPEM := func() []byte {
		var set struct{ Keys []struct{ Kid, N, E string } }
		resp, err := e.http.Get(e.url + jwksPath)
		if err != nil {
			t.Fatal(err)
		}
		json.NewDecoder(resp.Body).Decode(&set)
		resp.Body.Close()
		for _, k := range set.Keys {
			if k.Kid == e.svc.KeyID("RS256") {
				n, _ := b64.DecodeString(k.N)
				der, _ := x509.MarshalPKIXPublicKey(&rsa.PublicKey{N: new(big.Int).SetBytes(n), E: 65537})
				return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
			}
		}
		t.Fatal("no RS256 key in the fake's JWK set")
		return nil
	}()
	hs256 := func(key []byte) string {
		input := b64.EncodeToString(mustJSON(t, e.header("HS256", map[string]any{"kid": e.svc.KeyID("RS256")}))) + "." + b64.EncodeToString(mustJSON(t, e.claims(nil)))
		mac := hmac.New(sha256.New, key)
		mac.Write([]byte(input))
		return input + "." + b64.EncodeToString(mac.Sum(nil))
	}
	valid := e.sign(t, "RS256", e.header("RS256", nil), e.claims(nil))
	es := e.sign(t, "ES256", e.header("ES256", nil), e.claims(nil))
	now := e.clock.Now()

	tests := []struct {
		name    string
		token   string
		want    error
		because string // a substring of the error
	}{
		{"alg none", replace(e.sign(t, "RS256", e.header("none", map[string]any{"kid": e.svc.KeyID("RS256")}), e.claims(nil)), 2, ""),
			tokens.ErrInvalid, "alg not in the allow-list"},
		{"alg none, signature kept", e.sign(t, "RS256", e.header("none", map[string]any{"kid": e.svc.KeyID("RS256")}), e.claims(nil)),
			tokens.ErrInvalid, "alg not in the allow-list"},
		{"HS256 signed with the RSA public key as PEM", hs256(rsaPEM), tokens.ErrInvalid, "alg not in the allow-list"},
		{"RS256 named on the ES256 key", e.sign(t, "ES256", e.header("RS256", map[string]any{"kid": e.svc.KeyID("ES256")}), e.claims(nil)),
			tokens.ErrInvalid, "not the algorithm of the key"},
		{"ES256 named on the RSA key", e.sign(t, "RS256", e.header("ES256", map[string]any{"kid": e.svc.KeyID("RS256")}), e.claims(nil)),
			tokens.ErrInvalid, "not the algorithm of the key"},
		{"PS256 named on the RS256 key", e.sign(t, "PS256", e.header("PS256", map[string]any{"kid": e.svc.KeyID("RS256")}), e.claims(nil)),
			tokens.ErrInvalid, "not the algorithm of the key"},
		{"unknown kid", e.sign(t, "RS256", e.header("RS256", map[string]any{"kid": "no-such-key"}), e.claims(nil)),
			tokens.ErrInvalid, "no key in the JWK set has the token's kid"},
		{"kid with a path", e.sign(t, "RS256", e.header("RS256", map[string]any{"kid": "../../../../etc/passwd"}), e.claims(nil)),
			tokens.ErrInvalid, "no key in the JWK set"},
		{"kid with SQL", e.sign(t, "RS256", e.header("RS256", map[string]any{"kid": "' OR '1'='1' --"}), e.claims(nil)),
			tokens.ErrInvalid, "no key in the JWK set"},
		{"no kid", e.sign(t, "RS256", e.header("RS256", map[string]any{"kid": nil}), e.claims(nil)), tokens.ErrInvalid, "string alg and kid"},
		{"jku naming the attacker's key set", attacker.sign(t, e.header("RS256", map[string]any{"kid": attacker.kid, "jku": attackerKeys.url}), e.claims(nil)),
			tokens.ErrInvalid, "no key in the JWK set"},
		{"x5u naming the attacker's key set", attacker.sign(t, e.header("RS256", map[string]any{"kid": attacker.kid, "x5u": attackerKeys.url}), e.claims(nil)),
			tokens.ErrInvalid, "no key in the JWK set"},
		{"jku, with the issuer's kid", attacker.sign(t, e.header("RS256", map[string]any{"jku": attackerKeys.url}), e.claims(nil)),
			tokens.ErrInvalid, "signature does not verify"},
		{"jwk embedding the attacker's key", attacker.sign(t, e.header("RS256", map[string]any{"jwk": attacker.jwk(false)}), e.claims(nil)),
			tokens.ErrInvalid, "signature does not verify"},
		{"x5c embedding a certificate", attacker.sign(t, e.header("RS256", map[string]any{"x5c": []string{"MIIB"}}), e.claims(nil)),
			tokens.ErrInvalid, "signature does not verify"},
		{"crit", e.sign(t, "RS256", e.header("RS256", map[string]any{"crit": []string{"exp"}}), e.claims(nil)), tokens.ErrInvalid, "crit"},
		{"crit b64 (RFC 7797)", e.sign(t, "RS256", e.header("RS256", map[string]any{"crit": []string{"b64"}, "b64": false}), e.claims(nil)),
			tokens.ErrInvalid, "crit"},
		{"huge header", e.sign(t, "ES256", e.header("ES256", map[string]any{"pad": strings.Repeat("a", 2000)}), e.claims(nil)),
			tokens.ErrInvalid, "header larger than"},
		{"huge payload", e.sign(t, "ES256", e.header("ES256", nil), e.claims(map[string]any{"pad": strings.Repeat("a", 5000)})),
			tokens.ErrInvalid, "longer than"},
		{"wrong iss", e.sign(t, "RS256", e.header("RS256", nil), e.claims(map[string]any{"iss": "https://evil.example"})), tokens.ErrInvalid, "iss is not the issuer"},
		{"iss with a trailing slash", e.sign(t, "RS256", e.header("RS256", nil), e.claims(map[string]any{"iss": e.url + "/"})), tokens.ErrInvalid, "iss is not the issuer"},
		{"wrong aud", e.sign(t, "RS256", e.header("RS256", nil), e.claims(map[string]any{"aud": "another-api"})), tokens.ErrInvalid, "not for this audience"},
		{"aud array without ours", e.sign(t, "RS256", e.header("RS256", nil), e.claims(map[string]any{"aud": []string{"a", "b"}})), tokens.ErrInvalid, "not for this audience"},
		{"missing aud", e.sign(t, "RS256", e.header("RS256", nil), e.claims(map[string]any{"aud": nil})), tokens.ErrInvalid, "not for this audience"},
		{"expired", e.sign(t, "RS256", e.header("RS256", nil), e.claims(map[string]any{"exp": now.Add(-time.Second).Unix()})), tokens.ErrInvalid, "expired"},
		{"expiring now", e.sign(t, "RS256", e.header("RS256", nil), e.claims(map[string]any{"exp": now.Unix()})), tokens.ErrInvalid, "expired"},
		{"no exp", e.sign(t, "RS256", e.header("RS256", nil), e.claims(map[string]any{"exp": nil})), tokens.ErrInvalid, "without exp"},
		{"exp as a string", e.sign(t, "RS256", e.header("RS256", nil), e.claims(map[string]any{"exp": fmt.Sprint(now.Add(time.Hour).Unix())})), tokens.ErrInvalid, "without exp"},
		{"future nbf", e.sign(t, "RS256", e.header("RS256", nil), e.claims(map[string]any{"nbf": now.Add(2 * time.Minute).Unix()})), tokens.ErrInvalid, "in the future"},
		{"future iat", e.sign(t, "RS256", e.header("RS256", nil), e.claims(map[string]any{"iat": now.Add(2 * time.Minute).Unix()})), tokens.ErrInvalid, "in the future"},
		{"no sub", e.sign(t, "RS256", e.header("RS256", nil), e.claims(map[string]any{"sub": nil})), tokens.ErrInvalid, "without sub"},
		{"payload altered after signing", replace(valid, 1, b64.EncodeToString(mustJSON(t, e.claims(map[string]any{"sub": "mallory"})))),
			tokens.ErrInvalid, "signature does not verify"},
		{"header altered after signing", replace(valid, 0, b64.EncodeToString(mustJSON(t, e.header("RS256", map[string]any{"typ": "JWT"})))),
			tokens.ErrInvalid, "signature does not verify"},
		{"signature of another token", replace(valid, 2, strings.Split(e.sign(t, "RS256", e.header("RS256", nil), e.claims(map[string]any{"sub": "bob"})), ".")[2]),
			tokens.ErrInvalid, "signature does not verify"},
		{"ES256 signature in DER", replace(es, 2, func() string {
			raw, _ := b64.DecodeString(strings.Split(es, ".")[2])
			der, _ := asn1.Marshal(struct{ R, S *big.Int }{new(big.Int).SetBytes(raw[:32]), new(big.Int).SetBytes(raw[32:])})
			return b64.EncodeToString(der)
		}()), tokens.ErrInvalid, "signature does not verify"},
		{"signature with non-zero trailing bits", replace(valid, 2, func() string {
			s := strings.Split(valid, ".")[2] // 256 bytes: 342 characters, the last with 4 unused bits
			return s[:len(s)-1] + string(b64Alphabet[strings.IndexByte(b64Alphabet, s[len(s)-1])|1])
		}()), tokens.ErrInvalid, "base64url"},
		{"padded signature", valid + "==", tokens.ErrInvalid, "base64url"},
		{"valid ID token", e.issue(t, faketokensvc.TokenRequest{Sub: "alice", Kind: faketokensvc.IDToken, TTL: time.Hour}), tokens.ErrInvalid, "ID token"},
		{"ID token without nonce (aud is the client)", e.sign(t, "RS256", e.header("RS256", map[string]any{"typ": "JWT"}), e.claims(map[string]any{"aud": "wsauth", "scope": nil})),
			tokens.ErrInvalid, "not for this audience"},
		{"ID token by token_use (Amazon Cognito)", e.sign(t, "RS256", e.header("RS256", nil), e.claims(map[string]any{"token_use": "id"})), tokens.ErrInvalid, "not an access token"},
		{"valid refresh token (Keycloak's JWT form)", e.issue(t, faketokensvc.TokenRequest{Sub: "alice", Kind: faketokensvc.RefreshToken, JWT: true, TTL: time.Hour}),
			tokens.ErrInvalid, "not an access token"},
		{"another issuer's token, signed with a key of the same kid", sameKid.sign(t, e.header("RS256", nil), e.claims(map[string]any{"iss": "https://other.example"})),
			tokens.ErrInvalid, "signature does not verify"},
		{"our claims, signed with another key of the same kid", sameKid.sign(t, e.header("RS256", nil), e.claims(nil)), tokens.ErrInvalid, "signature does not verify"},
		{"typ not accepted", e.sign(t, "RS256", e.header("RS256", map[string]any{"typ": "JOSE"}), e.claims(nil)), tokens.ErrInvalid, "typ not accepted"},
		{"JWE (five parts)", "eyJhbGciOiJSU0EtT0FFUCJ9.a.b.c.d", tokens.ErrInvalid, "compact serialization"},
		{"duplicate claim", mustSignRaw(t, e, "RS256", `{"alg":"RS256","kid":"`+e.svc.KeyID("RS256")+`"}`,
			`{"iss":"`+e.url+`","sub":"mallory","sub":"alice","aud":"wsauth-api","exp":9999999999}`), tokens.ErrInvalid, "claims not a JSON object"},
		{"duplicate header member", mustSignRaw(t, e, "RS256", `{"alg":"RS256","alg":"none","kid":"`+e.svc.KeyID("RS256")+`"}`, string(mustJSON(t, e.claims(nil)))),
			tokens.ErrInvalid, "header not a JSON object"},
		{"claim names differing in case", e.sign(t, "RS256", e.header("RS256", nil), e.claims(map[string]any{"iss": nil, "ISS": e.url})), tokens.ErrInvalid, "iss is not the issuer"},
		{"payload not UTF-8", mustSignRaw(t, e, "RS256", `{"alg":"RS256","kid":"`+e.svc.KeyID("RS256")+`"}`,
			`{"iss":"`+e.url+`","sub":"al`+"\xff"+`ice","aud":"wsauth-api","exp":9999999999}`), tokens.ErrInvalid, "claims not a JSON object"},
		{"aud of the wrong type", e.sign(t, "RS256", e.header("RS256", nil), e.claims(map[string]any{"aud": 7})), tokens.ErrInvalid, "claims not a JSON object"},
	}
	e.clock.Advance(tokens.JWKSRefetchInterval) // the first unknown kid may refetch
	before := len(e.requests())
	fetches := e.svc.JWKSFetches()
	for _, tc := range tests {
		_, err := v.Validate(ctx, tc.token)
		if !errors.Is(err, tc.want) || errors.Is(err, tokens.ErrUnavailable) || !strings.Contains(fmt.Sprint(err), tc.because) {
			t.Errorf("Validate(%s) = %v; want %v because %q", tc.name, err, tc.want, tc.because)
		}
	}
	// Tokens never choose where keys come from: every request after the
	// first fetch went to the configured JWK set (a refetch for the first
	// unknown kid), none to the attacker.
	for _, path := range e.requests()[before:] {
		if path != jwksPath {
			t.Errorf("a hostile token made the verifier request %q; want only %s", path, jwksPath)
		}
	}
	if n := attackerKeys.hits.Load(); n != 0 {
		t.Errorf("the attacker's key set was fetched %d times; want 0 (jku and x5u are never followed)", n)
	}
	if n := e.svc.JWKSFetches() - fetches; n != 1 {
		t.Errorf("JWK set fetches = %d; want 1, for the first unknown kid (the others fall within the refetch interval)", n)
	}
}

const b64Alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

func mustSignRaw(t testing.TB, e *env, alg, header, payload string) string {
	t.Helper()
	tok, err := e.svc.Sign(alg, []byte(header), []byte(payload))
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestNewJWTVerifierConfig(t *testing.T) {
	t.Parallel()
	ok := tokens.JWTConfig{JWKSURL: "http://127.0.0.1:1/jwks", Issuer: "https://issuer.example", Audience: "api"}
	for _, tc := range []struct {
		name string
		edit func(*tokens.JWTConfig)
		want string // a substring of the error; "" for none
	}{
		{"complete", func(*tokens.JWTConfig) {}, ""},
		{"client ids instead of an audience", func(c *tokens.JWTConfig) { c.Audience, c.AllowedClientIDs = "", []string{"app"} }, ""},
		{"no JWKS URL", func(c *tokens.JWTConfig) { c.JWKSURL = "" }, "JWK set"},
		{"no issuer", func(c *tokens.JWTConfig) { c.Issuer = "" }, "issuer"},
		{"neither audience nor client ids", func(c *tokens.JWTConfig) { c.Audience = "" }, "audience"},
		{"HS256 allowed", func(c *tokens.JWTConfig) { c.Algorithms = []string{"RS256", "HS256"} }, `"HS256" is not supported`},
		{"none allowed", func(c *tokens.JWTConfig) { c.Algorithms = []string{"none"} }, `"none" is not supported`},
		{"empty allow-list", func(c *tokens.JWTConfig) { c.Algorithms = []string{} }, "empty"},
		{"empty types", func(c *tokens.JWTConfig) { c.Types = []string{} }, "empty"},
		{"leeway of 61s", func(c *tokens.JWTConfig) { c.Leeway = 61 * time.Second }, "more than"},
		{"leeway of 60s", func(c *tokens.JWTConfig) { c.Leeway = 60 * time.Second }, ""},
	} {
		cfg := ok
		tc.edit(&cfg)
		_, err := tokens.NewJWTVerifier(cfg)
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("NewJWTVerifier(%s) = %v; want an error containing %q", tc.name, err, tc.want)
		}
	}
}

func TestJWTTypesAndLeeway(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	now := e.clock.Now()
	strict := e.verifier(t, func(c *tokens.JWTConfig) { c.Types = []string{"at+jwt"} })
	noLeeway := e.verifier(t, func(c *tokens.JWTConfig) { c.Leeway = -1 })
	for _, tc := range []struct {
		name   string
		v      *tokens.JWTVerifier
		header map[string]any
		claims map[string]any
		valid  bool
	}{
		{"at+jwt, only at+jwt accepted", strict, nil, nil, true},
		{"typ JWT, only at+jwt accepted", strict, map[string]any{"typ": "JWT"}, nil, false},
		{"no typ, only at+jwt accepted", strict, map[string]any{"typ": nil}, nil, false},
		{"iat 1s ahead, no leeway", noLeeway, nil, map[string]any{"iat": now.Add(time.Second).Unix()}, false},
		{"iat now, no leeway", noLeeway, nil, map[string]any{"iat": now.Unix()}, true},
	} {
		_, err := tc.v.Validate(ctx, e.sign(t, "EdDSA", e.header("EdDSA", tc.header), e.claims(tc.claims)))
		if tc.valid != (err == nil) || err != nil && !errors.Is(err, tokens.ErrInvalid) {
			t.Errorf("Validate(%s) = %v; want valid = %v, else ErrInvalid", tc.name, err, tc.valid)
		}
	}
}

func TestJWKSKeys(t *testing.T) {
	t.Parallel()
	rs := newTestKey("RS256", "rsa")
	ps := newTestKey("PS256", "rsa") // the same RSA key, to sign PSS
	ec := newTestKey("ES256", "ec")
	claims := map[string]any{"iss": "https://issuer.example", "sub": "alice", "aud": "api", "exp": time.Now().Add(time.Hour).Unix()}
	header := func(alg, kid string) map[string]any { return map[string]any{"alg": alg, "kid": kid} }
	weak := map[string]any{"kty": "RSA", "kid": "weak", "alg": "RS256", "n": b64.EncodeToString(append([]byte{0xc1}, make([]byte, 127)...)), "e": "AQAB"}
	offCurve := ec.jwk(false)
	offCurve["kid"], offCurve["y"] = "off-curve", b64.EncodeToString(append(make([]byte, 31), 1))
	enc := ec.jwk(false)
	enc["kid"], enc["use"] = "enc", "enc"
	rs384 := rs.jwk(false)
	rs384["kid"], rs384["alg"] = "rs384", "RS384"
	ecAsRSA := ec.jwk(false)
	ecAsRSA["kid"], ecAsRSA["alg"] = "ec-as-rsa", "RS256"

	// PS256 with a salt longer than the hash: a valid PSS signature, but not
	// the one RFC 7518 §3.5 allows.
	longSalt := func() string {
		input := b64.EncodeToString(mustJSON(t, header("PS256", "rsa"))) + "." + b64.EncodeToString(mustJSON(t, claims))
		digest := sha256.Sum256([]byte(input))
		sig, err := rsa.SignPSS(rand.Reader, rsaTestKey(), crypto.SHA256, digest[:], &rsa.PSSOptions{SaltLength: 64})
		if err != nil {
			t.Fatal(err)
		}
		return input + "." + b64.EncodeToString(sig)
	}()
	for _, tc := range []struct {
		name    string
		keys    []map[string]any
		algs    []string
		token   string
		because string // "" for valid
	}{
		{"PS256 with a 64-byte salt", []map[string]any{ps.jwk(false)}, nil, longSalt, "signature does not verify"},
		{"RSA key without alg takes RS256", []map[string]any{rs.jwk(true)}, nil, rs.sign(t, header("RS256", "rsa"), claims), ""},
		{"RSA key without alg refuses PS256", []map[string]any{rs.jwk(true)}, nil, ps.sign(t, header("PS256", "rsa"), claims), "not the algorithm of the key"},
		{"RSA key without alg, PS256 listed first", []map[string]any{rs.jwk(true)}, []string{"PS256", "RS256"}, ps.sign(t, header("PS256", "rsa"), claims), ""},
		{"PS256", []map[string]any{ps.jwk(false)}, nil, ps.sign(t, header("PS256", "rsa"), claims), ""},
		{"EC key without alg takes ES256", []map[string]any{ec.jwk(true)}, nil, ec.sign(t, header("ES256", "ec"), claims), ""},
		{"RS256 key, RS256 not allowed", []map[string]any{rs.jwk(false)}, []string{"ES256"}, rs.sign(t, header("RS256", "rsa"), claims), "alg not in the allow-list"},
		{"RSA key of 1024 bits", []map[string]any{weak, ec.jwk(false)}, nil, rs.sign(t, header("RS256", "weak"), claims), "RSA key of 1024 bits"},
		{"EC point off the curve", []map[string]any{offCurve, ec.jwk(false)}, nil, ec.sign(t, header("ES256", "off-curve"), claims), "not on P-256"},
		{"key for encryption", []map[string]any{enc, ec.jwk(false)}, nil, ec.sign(t, header("ES256", "enc"), claims), "use is not sig"},
		{"key for an algorithm not supported", []map[string]any{rs384, ec.jwk(false)}, nil, rs.sign(t, header("RS256", "rs384"), claims), "RS384"},
		{"EC key that says RS256", []map[string]any{ecAsRSA, ec.jwk(false)}, nil, rs.sign(t, header("RS256", "ec-as-rsa"), claims), "of type EC P-256"},
		{"two keys with one kid", []map[string]any{ec.jwk(false), ec.jwk(false), rs.jwk(false)}, nil, ec.sign(t, header("ES256", "ec"), claims), "share this kid"},
		{"three keys with one kid", []map[string]any{ec.jwk(false), ec.jwk(false), ec.jwk(false), rs.jwk(false)}, nil, ec.sign(t, header("ES256", "ec"), claims), "share this kid"},
	} {
		ks := newKeyServer(t, tc.keys...)
		v, err := tokens.NewJWTVerifier(tokens.JWTConfig{JWKSURL: ks.url, Issuer: "https://issuer.example", Audience: "api", Algorithms: tc.algs})
		if err != nil {
			t.Fatal(err)
		}
		_, err = v.Validate(context.Background(), tc.token)
		if tc.because == "" && err != nil || tc.because != "" && (!errors.Is(err, tokens.ErrInvalid) || !strings.Contains(err.Error(), tc.because)) {
			t.Errorf("%s: Validate = %v; want %s", tc.name, err, cmp.Or(tc.because, "nil"))
		}
	}
}
