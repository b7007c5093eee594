package tokens

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// fuzzKey is a signing key of FuzzJWT's verifier.
type fuzzKey struct {
	kid, alg string
	priv     crypto.Signer
}

func (k fuzzKey) sign(input string) []byte {
	digest := sha256.Sum256([]byte(input))
	switch k.alg {
	case RS256:
		sig, _ := rsa.SignPKCS1v15(nil, k.priv.(*rsa.PrivateKey), crypto.SHA256, digest[:])
		return sig
	case ES256:
		r, s, _ := ecdsa.Sign(rand.Reader, k.priv.(*ecdsa.PrivateKey), digest[:])
		return append(r.FillBytes(make([]byte, 32)), s.FillBytes(make([]byte, 32))...)
	default:
		return ed25519.Sign(k.priv.(ed25519.PrivateKey), []byte(input))
	}
}

// fuzzVerifier is a verifier whose key set is loaded, and will not be
// fetched again: no fuzz input reaches the network.
var fuzzVerifier = sync.OnceValues(func() (*JWTVerifier, []fuzzKey) {
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	edKey := ed25519.NewKeyFromSeed(make([]byte, 32))
	keys := []fuzzKey{{"r", RS256, rsaKey}, {"e", ES256, ecKey}, {"d", EdDSA, edKey}}
	v, err := NewJWTVerifier(JWTConfig{JWKSURL: "http://127.0.0.1:1/never", Issuer: "https://iss", Audience: "api",
		Now: func() time.Time { return time.Unix(1_800_000_000, 0) }})
	if err != nil {
		panic(err)
	}
	v.keys.keys = map[string]jwk{
		"r": {alg: RS256, pub: rsaKey.Public()},
		"e": {alg: ES256, pub: ecKey.Public()},
		"d": {alg: EdDSA, pub: edKey.Public()},
	}
	v.keys.refreshAt = time.Unix(1<<40, 0)
	v.keys.lastTry = v.cfg.Now() // and no refetch for an unknown kid
	return v, keys
})

// FuzzJWT signs the fuzzer's payload with a key the verifier knows, then
// checks two properties: a token that verifies carries exactly the claims
// signed (as encoding/json reads them, in a payload where no object names a
// member twice), and a token with any byte altered never verifies. Every
// refusal is ErrInvalid.
func FuzzJWT(f *testing.F) {
	for _, s := range []string{
		`{"iss":"https://iss","sub":"alice","aud":"api","exp":1900000000,"scope":"api ws","client_id":"c"}`,
		`{"iss":"https://iss","sub":"alice","aud":["x","api"],"exp":1.9e9,"scp":["api","ws"]}`,
		`{"iss":"https://iss","sub":"alice","aud":"api","exp":1900000000,"scp":"a b","scope":"c"}`,
		`{"iss":"https://iss","sub":"alice","aud":"api","exp":1900000000,"sub":"mallory"}`,
		`{"iss":"https://iss","sub":"alice","aud":"api","exp":1900000000,"SUB":"mallory"}`,
		`{"iss":"https://iss","s\u0075b":"alice","aud":"api","exp":1900000000}`,
		`{"iss":"https://iss","sub":"alice","aud":"api","exp":1900000000,"x":{"a":1,"a":2}}`,
		`{"iss":"https://iss","sub":"alice","aud":"api","exp":1000}`,
		`{"iss":"https://iss","sub":"alice","aud":"api","exp":1900000000,"nonce":"n"}`,
		`{"iss":"https://iss","sub":"alice","aud":"api","exp":1900000000,"nbf":1800000030,"iat":1800000000}`,
	} {
		for alg := range 3 {
			f.Add([]byte(s), uint8(alg), uint16(7), byte(1))
		}
	}
	f.Fuzz(func(t *testing.T, payload []byte, alg uint8, pos uint16, flip byte) {
		v, keys := fuzzVerifier()
		k := keys[int(alg)%len(keys)]
		enc := base64.RawURLEncoding
		input := enc.EncodeToString([]byte(`{"alg":"`+k.alg+`","kid":"`+k.kid+`","typ":"at+jwt"}`)) + "." + enc.EncodeToString(payload)
		token := input + "." + enc.EncodeToString(k.sign(input))

		p, err := v.Validate(context.Background(), token)
		if err != nil && (!errors.Is(err, ErrInvalid) || errors.Is(err, ErrUnavailable)) {
			t.Fatalf("Validate(token of %q) = %v; want nil or ErrInvalid only", payload, err)
		}
		if err == nil {
			if want := claimsOf(t, payload); !equalPrincipal(p, want) {
				t.Fatalf("Validate(token of %q) = %+v; the payload says %+v", payload, p, want)
			}
		}

		if flip != 0 {
			altered := []byte(token)
			altered[int(pos)%len(altered)] ^= flip
			if _, err := v.Validate(context.Background(), string(altered)); err == nil || !errors.Is(err, ErrInvalid) {
				t.Fatalf("Validate(token of %q with byte %d ^ %#x) = %v; an altered token must be ErrInvalid", payload, int(pos)%len(altered), flip, err)
			}
		}
	})
}

// claimsOf is what a verified token's payload must say, read with
// encoding/json and the countMembers oracle rather than the verifier's
// decoder. It fails the test for a payload no verified token may have.
func claimsOf(t *testing.T, payload []byte) Principal {
	t.Helper()
	if _, dup := countMembers(t, payload); dup {
		t.Fatalf("verified payload %q names a member twice", payload)
	}
	var c map[string]any
	dec := json.NewDecoder(strings.NewReader(string(payload)))
	dec.UseNumber()
	if err := dec.Decode(&c); err != nil {
		t.Fatalf("verified payload %q is not JSON: %v", payload, err)
	}
	auds, _ := c["aud"].([]any)
	if c["aud"] != "api" && !slices.Contains(auds, any("api")) || c["iss"] != "https://iss" || c["nonce"] != nil || c["at_hash"] != nil {
		t.Fatalf("verified payload %q is not for this issuer and audience, or is an ID token", payload)
	}
	sub, _ := c["sub"].(string)
	clientID, _ := c["client_id"].(string)
	scope, _ := c["scope"].(string)
	scopes := strings.Fields(scope)
	switch scp := c["scp"].(type) {
	case string:
		scopes = append(scopes, strings.Fields(scp)...)
	case []any:
		for _, s := range scp {
			scopes = append(scopes, strings.Fields(s.(string))...)
		}
	}
	n, _ := c["exp"].(json.Number)
	exp, err := strconv.ParseFloat(string(n), 64)
	if err != nil {
		t.Fatalf("verified payload %q has no numeric exp", payload)
	}
	return Principal{Subject: sub, Scopes: scopes, Expiry: time.Unix(int64(exp), 0), ClientID: clientID}
}

func equalPrincipal(a, b Principal) bool {
	return a.Subject == b.Subject && slices.Equal(a.Scopes, b.Scopes) && a.Expiry.Equal(b.Expiry) && a.ClientID == b.ClientID
}
