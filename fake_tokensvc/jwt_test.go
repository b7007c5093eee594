package faketokensvc_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/big"
	"slices"
	"strings"
	"testing"
	"time"

	faketokensvc "wsauth/fake_tokensvc"
)

var b64 = base64.RawURLEncoding

// jwkSet fetches the service's JWK set and returns its keys by kid.
func (e *env) jwkSet(t testing.TB) map[string]map[string]string {
	t.Helper()
	resp, body := e.do(t, "GET", "/.well-known/jwks.json", "", "")
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/jwk-set+json" {
		t.Fatalf("GET /.well-known/jwks.json: %d %s %s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	var set struct{ Keys []map[string]string }
	if err := json.Unmarshal([]byte(body), &set); err != nil {
		t.Fatalf("GET /.well-known/jwks.json: %v", err)
	}
	keys := make(map[string]map[string]string)
	for _, k := range set.Keys {
		keys[k["kid"]] = k
	}
	return keys
}

// verifyJWT checks token's signature against keys, as a resource server
// would, with the standard library alone, and returns its header and
// claims.
func verifyJWT(t testing.TB, token string, keys map[string]map[string]string) (header map[string]string, claims map[string]any) {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("token %q has %d parts; want 3", token, len(parts))
	}
	h, _ := b64.DecodeString(parts[0])
	p, _ := b64.DecodeString(parts[1])
	sig, _ := b64.DecodeString(parts[2])
	if json.Unmarshal(h, &header) != nil || json.Unmarshal(p, &claims) != nil {
		t.Fatalf("token %q: header or claims not JSON", token)
	}
	k, ok := keys[header["kid"]]
	if !ok || k["alg"] != header["alg"] || k["use"] != "sig" {
		t.Fatalf("token header %v: no signing key with that kid and alg in the JWK set", header)
	}
	bytesOf := func(name string) []byte { b, _ := b64.DecodeString(k[name]); return b }
	input := []byte(parts[0] + "." + parts[1])
	digest := sha256.Sum256(input)
	var err error
	switch k["alg"] {
	case "RS256", "PS256":
		pub := &rsa.PublicKey{N: new(big.Int).SetBytes(bytesOf("n")), E: int(new(big.Int).SetBytes(bytesOf("e")).Int64())}
		if k["alg"] == "RS256" {
			err = rsa.VerifyPKCS1v15(pub, crypto.SHA256, digest[:], sig)
		} else {
			err = rsa.VerifyPSS(pub, crypto.SHA256, digest[:], sig, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash})
		}
	case "ES256":
		pub, perr := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), append(append([]byte{4}, bytesOf("x")...), bytesOf("y")...))
		if perr != nil || len(sig) != 64 || !ecdsa.Verify(pub, digest[:], new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])) {
			err = fmt.Errorf("ES256 signature does not verify (%v)", perr)
		}
	case "EdDSA":
		if k["crv"] != "Ed25519" || !ed25519.Verify(bytesOf("x"), input, sig) {
			err = fmt.Errorf("EdDSA signature does not verify")
		}
	}
	if err != nil {
		t.Fatalf("token signed with %s: %v", k["alg"], err)
	}
	return header, claims
}

func TestDiscoveryAndJWKS(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(o *faketokensvc.Options) { o.Issuer = "https://issuer.example" })
	for _, path := range []string{"/.well-known/openid-configuration", "/.well-known/oauth-authorization-server"} {
		resp, body := e.do(t, "GET", path, "", "")
		var doc map[string]any
		if err := json.Unmarshal([]byte(body), &doc); resp.StatusCode != 200 || err != nil {
			t.Fatalf("GET %s: %d %s", path, resp.StatusCode, body)
		}
		want := map[string]string{
			"issuer":                 "https://issuer.example",
			"jwks_uri":               e.srv.URL + "/.well-known/jwks.json",
			"introspection_endpoint": e.srv.URL + "/introspect",
		}
		for name, v := range want {
			if doc[name] != v {
				t.Errorf("GET %s: %q = %v; want %q", path, name, doc[name], v)
			}
		}
	}
	resp, _ := e.do(t, "GET", "/.well-known/jwks.json", "", "")
	if cc := resp.Header.Get("Cache-Control"); cc != "public, max-age=300" {
		t.Errorf("JWK set Cache-Control = %q; want public, max-age=300", cc)
	}
	keys := e.jwkSet(t)
	var algs []string
	for kid, k := range keys {
		algs = append(algs, k["alg"])
		if k["use"] != "sig" || kid != e.svc.KeyID(k["alg"]) {
			t.Errorf("JWK %v: want use sig and the current kid of %s, %s", k, k["alg"], e.svc.KeyID(k["alg"]))
		}
	}
	slices.Sort(algs)
	if want := []string{"ES256", "EdDSA", "PS256", "RS256"}; !slices.Equal(algs, want) {
		t.Errorf("JWK set algorithms = %q; want %q", algs, want)
	}
	if n := e.svc.JWKSFetches(); n != 2 {
		t.Errorf("JWKSFetches() = %d; want 2", n)
	}
}

func TestIssueJWT(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(o *faketokensvc.Options) { o.Issuer = "https://issuer.example" })
	keys := e.jwkSet(t)
	now := epoch.Unix()
	for _, tc := range []struct {
		name       string
		req        faketokensvc.TokenRequest
		wantHeader map[string]string
		wantClaims map[string]any // besides iss, sub, iat, exp, jti
		introspect string         // the end of the introspection answer
	}{
		{"RS256 access token", faketokensvc.TokenRequest{JWT: true}, map[string]string{"alg": "RS256", "typ": "at+jwt"},
			map[string]any{"aud": "wsauth-api", "client_id": "wsauth", "scope": "api ws"}, `"iss":"https://issuer.example","aud":"wsauth-api"}`},
		{"PS256 access token", faketokensvc.TokenRequest{JWT: true, Alg: "PS256"}, map[string]string{"alg": "PS256", "typ": "at+jwt"},
			map[string]any{"aud": "wsauth-api", "client_id": "wsauth", "scope": "api ws"}, `"aud":"wsauth-api"}`},
		{"ES256 access token for another API", faketokensvc.TokenRequest{JWT: true, Alg: "ES256", Audience: "other-api"}, map[string]string{"alg": "ES256", "typ": "at+jwt"},
			map[string]any{"aud": "other-api", "client_id": "wsauth", "scope": "api ws"}, `"aud":"other-api"}`},
		{"EdDSA access token", faketokensvc.TokenRequest{JWT: true, Alg: "EdDSA"}, map[string]string{"alg": "EdDSA", "typ": "at+jwt"},
			map[string]any{"aud": "wsauth-api", "client_id": "wsauth", "scope": "api ws"}, `"aud":"wsauth-api"}`},
		{"ID token", faketokensvc.TokenRequest{Kind: faketokensvc.IDToken}, map[string]string{"alg": "RS256", "typ": "JWT"},
			map[string]any{"aud": "wsauth", "nonce": "*", "auth_time": float64(now)}, `"aud":"wsauth","token_use":"id_token"}`},
		{"refresh token as Keycloak makes it", faketokensvc.TokenRequest{Kind: faketokensvc.RefreshToken, JWT: true, Alg: "ES256"}, map[string]string{"alg": "ES256", "typ": "JWT"},
			map[string]any{"aud": "https://issuer.example", "typ": "Refresh", "scope": "api ws"}, `"token_use":"refresh_token"}`},
	} {
		tc.req.Sub, tc.req.Scopes, tc.req.TTL = "alice", []string{"api", "ws"}, time.Hour
		token, exp, err := e.svc.IssueToken(tc.req)
		if err != nil || !exp.Equal(epoch.Add(time.Hour)) {
			t.Fatalf("IssueToken(%s) = %v, %v", tc.name, exp, err)
		}
		header, claims := verifyJWT(t, token, keys)
		for name, v := range tc.wantHeader {
			if header[name] != v {
				t.Errorf("%s: header %q = %q; want %q", tc.name, name, header[name], v)
			}
		}
		want := map[string]any{"iss": "https://issuer.example", "sub": "alice", "iat": float64(now), "exp": float64(now + 3600)}
		for name, v := range tc.wantClaims {
			want[name] = v
		}
		for name, v := range want {
			if v == "*" && claims[name] != nil {
				continue
			}
			if claims[name] != v {
				t.Errorf("%s: claim %q = %v; want %v", tc.name, name, claims[name], v)
			}
		}
		if _, body := e.introspect(t, token); !strings.HasPrefix(body, `{"active":true,"sub":"alice",`) || !strings.HasSuffix(body, tc.introspect) {
			t.Errorf("%s: introspection = %s; want active, ending %s", tc.name, body, tc.introspect)
		}
	}
}

func TestIssueOpaqueKinds(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(o *faketokensvc.Options) { o.Issuer = "https://issuer.example" })
	exp, iat := epoch.Add(time.Hour).Unix(), epoch.Unix()
	for _, tc := range []struct {
		name string
		req  faketokensvc.TokenRequest
		want string
	}{
		{"access token", faketokensvc.TokenRequest{}, activeBody},
		{"access token with an audience", faketokensvc.TokenRequest{Audience: "wsauth-api"},
			fmt.Sprintf(`{"active":true,"sub":"alice","scope":"api ws","exp":%d,"iat":%d,"client_id":"wsauth","token_type":"Bearer","iss":"https://issuer.example","aud":"wsauth-api"}`, exp, iat)},
		{"refresh token", faketokensvc.TokenRequest{Kind: faketokensvc.RefreshToken},
			fmt.Sprintf(`{"active":true,"sub":"alice","scope":"api ws","exp":%d,"iat":%d,"client_id":"wsauth","token_type":"Bearer","token_use":"refresh_token"}`, exp, iat)},
	} {
		tc.req.Sub, tc.req.Scopes, tc.req.TTL = "alice", []string{"api", "ws"}, time.Hour
		token, _, err := e.svc.IssueToken(tc.req)
		if err != nil || strings.Contains(token, ".") {
			t.Fatalf("IssueToken(%s) = %q, %v; want an opaque token", tc.name, token, err)
		}
		if _, body := e.introspect(t, token); body != tc.want {
			t.Errorf("introspect %s: %s; want %s", tc.name, body, tc.want)
		}
	}
	for _, req := range []faketokensvc.TokenRequest{{Kind: "session"}, {JWT: true, Alg: "HS256"}, {JWT: true, Alg: "none"}} {
		if _, _, err := e.svc.IssueToken(req); err == nil {
			t.Errorf("IssueToken(%+v) = nil error; want one", req)
		}
	}
}

func TestJWTRevokedSeenByIntrospection(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	token, _, _ := e.svc.IssueToken(faketokensvc.TokenRequest{Sub: "alice", TTL: time.Hour, JWT: true, Alg: "EdDSA"})
	if _, body := e.introspect(t, token); !strings.HasPrefix(body, `{"active":true`) {
		t.Fatalf("introspect JWT: %s; want active", body)
	}
	e.svc.Revoke(token)
	if _, body := e.introspect(t, token); body != inactiveBody {
		t.Errorf("introspect revoked JWT: %s; want %s", body, inactiveBody)
	}
}

func TestRotateKeys(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(o *faketokensvc.Options) { o.KeyGrace = 10 * time.Minute })
	old := e.svc.KeyID("ES256")
	oldToken, _, _ := e.svc.IssueToken(faketokensvc.TokenRequest{Sub: "alice", TTL: time.Hour, JWT: true, Alg: "ES256"})

	resp, body := e.do(t, "POST", "/admin/rotate-keys", "", "")
	var got struct{ Kids map[string]string }
	if err := json.Unmarshal([]byte(body), &got); resp.StatusCode != 200 || err != nil || got.Kids["ES256"] != e.svc.KeyID("ES256") || got.Kids["ES256"] == old {
		t.Fatalf("POST /admin/rotate-keys: %d %s; want 200 with the new kids", resp.StatusCode, body)
	}
	keys := e.jwkSet(t)
	if len(keys) != 8 || keys[old] == nil {
		t.Errorf("JWK set after a rotation: %d keys, old ES256 key present = %v; want 8, true (grace)", len(keys), keys[old] != nil)
	}
	verifyJWT(t, oldToken, keys) // tokens of the old key still verify
	newToken, _, _ := e.svc.IssueToken(faketokensvc.TokenRequest{Sub: "alice", TTL: time.Hour, JWT: true, Alg: "ES256"})
	if h, _ := verifyJWT(t, newToken, keys); h["kid"] != got.Kids["ES256"] {
		t.Errorf("token issued after the rotation has kid %q; want the new %q", h["kid"], got.Kids["ES256"])
	}

	e.clock.Advance(10 * time.Minute)
	if keys := e.jwkSet(t); len(keys) != 4 || keys[old] != nil {
		t.Errorf("JWK set after the grace: %d keys, old key present = %v; want 4, false", len(keys), keys[old] != nil)
	}

	current := e.svc.KeyID("RS256")
	if resp, body := e.do(t, "POST", "/admin/rotate-keys", "application/json", `{"grace_seconds":0}`); resp.StatusCode != 200 {
		t.Fatalf("POST /admin/rotate-keys {grace_seconds:0}: %d %s", resp.StatusCode, body)
	}
	if keys := e.jwkSet(t); len(keys) != 4 || keys[current] != nil {
		t.Errorf("JWK set after a rotation without grace: %d keys, replaced key present = %v; want 4, false", len(keys), keys[current] != nil)
	}
}

func TestAdminJWTErrors(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	const js = "application/json"
	for _, tt := range []struct {
		method, path, body string
		wantStatus         int
		wantDesc           string
	}{
		{"POST", "/admin/tokens", `{"sub":"alice","format":"jwt","alg":"HS256"}`, 400, `unknown algorithm "HS256"`},
		{"POST", "/admin/tokens", `{"sub":"alice","format":"jws"}`, 400, `"format" must be opaque or jwt`},
		{"POST", "/admin/tokens", `{"sub":"alice","kind":"id_token","format":"opaque"}`, 400, "an ID token is a jwt"},
		{"POST", "/admin/tokens", `{"sub":"alice","kind":"session"}`, 400, `unknown token kind "session"`},
		{"POST", "/admin/rotate-keys", `{"grace":1}`, 400, `unknown field "grace"`},
		{"GET", "/admin/rotate-keys", "", 405, "allowed methods are POST"},
		{"POST", "/.well-known/jwks.json", "", 405, "allowed methods are GET, HEAD"},
	} {
		resp, body := e.do(t, tt.method, tt.path, js, tt.body)
		var got struct {
			ErrorDescription string `json:"error_description"`
		}
		json.Unmarshal([]byte(body), &got)
		if resp.StatusCode != tt.wantStatus || !strings.Contains(got.ErrorDescription, tt.wantDesc) {
			t.Errorf("%s %s %s: %d %s; want %d with %q", tt.method, tt.path, tt.body, resp.StatusCode, body, tt.wantStatus, tt.wantDesc)
		}
	}
	resp, body := e.do(t, "POST", "/admin/tokens", js, `{"sub":"alice","scope":"ws","format":"jwt","alg":"ES256","aud":"x"}`)
	var issued struct{ Token string }
	if json.Unmarshal([]byte(body), &issued); resp.StatusCode != 201 || strings.Count(issued.Token, ".") != 2 {
		t.Errorf("POST /admin/tokens for an ES256 JWT: %d %s; want 201 with a JWT", resp.StatusCode, body)
	}
	_, claims := verifyJWT(t, issued.Token, e.jwkSet(t))
	if claims["aud"] != "x" || claims["scope"] != "ws" {
		t.Errorf("JWT issued over HTTP: claims %v; want aud x, scope ws", claims)
	}
}
