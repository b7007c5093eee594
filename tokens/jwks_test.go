package tokens_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	faketokensvc "wsauth/fake_tokensvc"
	"wsauth/tokens"
)

// eventually polls f until it returns nil, for up to 10 s: for what a
// background fetch of the key set changes.
func eventually(t testing.TB, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: still %v after 10s", what, err)
		}
		<-tick.C
	}
}

func TestJWKSRotation(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	v := e.verifier(t)
	ctx := context.Background()
	jwt := func() string {
		return e.issue(t, faketokensvc.TokenRequest{Sub: "alice", Scopes: []string{"ws"}, TTL: 3 * time.Hour, JWT: true, Alg: "ES256"})
	}
	old := jwt()
	if _, err := v.Validate(ctx, old); err != nil {
		t.Fatalf("Validate(token of the first key) = %v", err)
	}
	e.svc.RotateKeys(time.Hour)
	rotated := jwt()
	// A key published within the refetch interval of the last fetch waits
	// for the interval (real issuers publish keys ahead of using them).
	if _, err := v.Validate(ctx, rotated); !errors.Is(err, tokens.ErrInvalid) {
		t.Fatalf("Validate(token of the new key, within %v of the last fetch) = %v; want ErrInvalid", tokens.JWKSRefetchInterval, err)
	}
	e.clock.Advance(tokens.JWKSRefetchInterval)
	if _, err := v.Validate(ctx, rotated); err != nil {
		t.Fatalf("Validate(token of the new key, right after rotation) = %v; want nil (an unknown kid refetches the set)", err)
	}
	if _, err := v.Validate(ctx, old); err != nil {
		t.Errorf("Validate(token of the old key, within its grace) = %v; want nil", err)
	}
	if n := e.svc.JWKSFetches(); n != 2 {
		t.Errorf("JWK set fetches = %d; want 2 (first token, then the new kid)", n)
	}

	// After the grace the fake drops the old key; the verifier, at its next
	// refresh (max-age 5 min), does too.
	e.clock.Advance(61 * time.Minute)
	eventually(t, "Validate(token of the dropped key)", func() error {
		if _, err := v.Validate(ctx, old); !errors.Is(err, tokens.ErrInvalid) {
			return fmt.Errorf("error %v; want ErrInvalid", err)
		}
		return nil
	})
	if _, err := v.Validate(ctx, rotated); err != nil {
		t.Errorf("Validate(token of the current key) after the refresh = %v; want nil", err)
	}
}

func TestJWKSDown(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	v := e.verifier(t)
	ctx := context.Background()
	known := e.issue(t, faketokensvc.TokenRequest{Sub: "alice", TTL: 3 * time.Hour, JWT: true, Alg: "EdDSA"})
	if _, err := v.Validate(ctx, known); err != nil {
		t.Fatal(err)
	}
	e.svc.RotateKeys(time.Hour)
	rotated := e.issue(t, faketokensvc.TokenRequest{Sub: "alice", TTL: 3 * time.Hour, JWT: true, Alg: "EdDSA"})
	e.jwksDown.Store(true)
	e.clock.Advance(tokens.JWKSRefetchInterval)

	if _, err := v.Validate(ctx, known); err != nil {
		t.Errorf("key set down: Validate(token of a known key) = %v; want nil", err)
	}
	_, err := v.Validate(ctx, rotated)
	if !errors.Is(err, tokens.ErrUnavailable) || errors.Is(err, tokens.ErrInvalid) {
		t.Errorf("key set down: Validate(token of an unknown kid) = %v; want ErrUnavailable (503), not ErrInvalid", err)
	}
	// Within the refetch interval, no new fetch, and the same answer.
	before := e.jwksRequests()
	if _, err := v.Validate(ctx, rotated); !errors.Is(err, tokens.ErrUnavailable) {
		t.Errorf("key set down, again: Validate = %v; want ErrUnavailable", err)
	}
	if after := e.jwksRequests(); after != before {
		t.Errorf("key set requests within the refetch interval: %d; want none", after-before)
	}
	// Past its max-age, the set is still down: known keys still verify.
	e.clock.Advance(10 * time.Minute)
	if _, err := v.Validate(ctx, known); err != nil {
		t.Errorf("key set down past max-age: Validate(token of a known key) = %v; want nil", err)
	}
	// That Validate fetches in the background; FetchKeys waits for it, or
	// fetches again.
	if err := v.FetchKeys(ctx); !errors.Is(err, tokens.ErrUnavailable) || !strings.Contains(err.Error(), "503 Service Unavailable") {
		t.Errorf("FetchKeys with the set down = %v; want ErrUnavailable naming the 503", err)
	}
	if _, err := v.Validate(ctx, known); err != nil {
		t.Errorf("key set down after a failed fetch: Validate(token of a known key) = %v; want nil", err)
	}

	e.jwksDown.Store(false)
	e.clock.Advance(tokens.JWKSRefetchInterval)
	if _, err := v.Validate(ctx, rotated); err != nil {
		t.Errorf("key set back: Validate(token of the new key) = %v; want nil", err)
	}
	if err := v.FetchKeys(ctx); err != nil {
		t.Errorf("FetchKeys with the set back = %v; want nil", err)
	}
}

// jwksRequests counts the requests for the key set, answered or not.
func (e *env) jwksRequests() int {
	n := 0
	for _, p := range e.requests() {
		if p == jwksPath {
			n++
		}
	}
	return n
}

func TestJWKSUnknownKidStorm(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	v := e.verifier(t)
	c := tokens.NewCache(v, tokens.CacheConfig{Now: e.clock.Now})
	ctx := context.Background()
	if err := v.FetchKeys(ctx); err != nil {
		t.Fatal(err)
	}
	storm := func(round int) {
		const n = 300
		var wg sync.WaitGroup
		for i := range n {
			tok := e.sign(t, "ES256", e.header("ES256", map[string]any{"kid": fmt.Sprintf("made-up-%d-%d", round, i)}), e.claims(nil))
			wg.Go(func() {
				if _, err := c.Validate(ctx, tok); !errors.Is(err, tokens.ErrInvalid) {
					t.Errorf("Validate(token with a made-up kid) = %v; want ErrInvalid", err)
				}
			})
		}
		wg.Wait()
	}
	// A storm costs one fetch if the last was at least 10 s ago, else none.
	for round, tc := range []struct {
		advance time.Duration
		want    int64
	}{{10 * time.Second, 1}, {time.Second, 0}, {8 * time.Second, 0}, {time.Second, 1}} {
		e.clock.Advance(tc.advance)
		before := e.svc.JWKSFetches()
		storm(round)
		if n := e.svc.JWKSFetches() - before; n != tc.want {
			t.Errorf("storm %d of 300 made-up kids, %v after the one before: %d JWK set fetches; want %d (at most one per %v)", round+1, tc.advance, n, tc.want, tokens.JWKSRefetchInterval)
		}
	}
}

func TestJWKSFetchErrors(t *testing.T) {
	t.Parallel()
	ec := newTestKey("ES256", "k")
	closed := httptest.NewServer(nil)
	closed.Close()
	serve := func(status int, header http.Header, body string) string {
		ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			for k, v := range header {
				w.Header()[k] = v
			}
			w.WriteHeader(status)
			w.Write([]byte(body))
		}))
		t.Cleanup(ts.Close)
		return ts.URL + "/jwks"
	}
	one := string(mustJSON(t, map[string]any{"keys": []any{ec.jwk(false)}}))
	many := make([]any, 101)
	for i := range many {
		k := ec.jwk(false)
		k["kid"] = fmt.Sprint(i)
		many[i] = k
	}
	for _, tc := range []struct {
		name string
		url  string
		want []string // substrings of the error
	}{
		{"connection refused", closed.URL + "/jwks", []string{"GET " + closed.URL + "/jwks", "connection refused"}},
		{"404", serve(404, nil, "no"), []string{"/jwks answered 404 Not Found"}},
		{"redirect", serve(302, http.Header{"Location": {"https://elsewhere.example/jwks"}}, ""), []string{"answered 302 Found", "https://elsewhere.example/jwks", "not followed"}},
		{"not JSON", serve(200, nil, "<html>"), []string{"/jwks: JWK set: not a JSON object"}},
		{"no keys array", serve(200, nil, `{"kys":[]}`), []string{`no "keys" array`}},
		{"empty set", serve(200, nil, `{"keys":[]}`), []string{"no key this server can use: the set is empty"}},
		{"only refused keys", serve(200, nil, `{"keys":[{"kid":"x","kty":"RSA","alg":"RS256","n":"AQAB","e":"AQAB"}]}`), []string{"no key this server can use: RSA key of 17 bits"}},
		{"too many keys", serve(200, nil, string(mustJSON(t, map[string]any{"keys": many}))), []string{"101 keys; at most 100"}},
		{"too large", serve(200, nil, `{"keys":[],"x":"`+strings.Repeat("a", tokens.DefaultMaxJWKSBytes)+`"}`), []string{"larger than"}},
		{"duplicate member", serve(200, nil, `{"keys":[],"keys":`+one[8:]), []string{"names a member twice"}},
		{"healthy", serve(200, nil, one), nil},
	} {
		v, _ := tokens.NewJWTVerifier(tokens.JWTConfig{JWKSURL: tc.url, Issuer: "iss", Audience: "api"})
		err := v.FetchKeys(context.Background())
		if tc.want == nil && err != nil {
			t.Errorf("FetchKeys(%s) = %v; want nil", tc.name, err)
		}
		if tc.want != nil && !errors.Is(err, tokens.ErrUnavailable) {
			t.Errorf("FetchKeys(%s) = %v; want ErrUnavailable", tc.name, err)
		}
		for _, want := range tc.want {
			if !strings.Contains(fmt.Sprint(err), want) {
				t.Errorf("FetchKeys(%s) = %v; want it to say %q", tc.name, err, want)
			}
		}
	}
}

// TestFetchKeysUnreachable: a JWK set URL where nothing listens is
// ErrUnreachable (the token system may not be up yet, and cmd/wsauth only
// warns), and still ErrUnavailable; a set that answers 503 is not
// unreachable: something there answered.
func TestFetchKeysUnreachable(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + ln.Addr().String() + "/jwks.json"
	ln.Close()
	down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "down", http.StatusServiceUnavailable)
	}))
	defer down.Close()
	for _, tc := range []struct {
		name, url   string
		unreachable bool
	}{
		{"nothing listening", url, true},
		{"503", down.URL, false},
	} {
		v, err := tokens.NewJWTVerifier(tokens.JWTConfig{JWKSURL: tc.url, Issuer: "https://issuer.example", Audience: "api"})
		if err != nil {
			t.Fatal(err)
		}
		err = v.FetchKeys(context.Background())
		if !errors.Is(err, tokens.ErrUnavailable) || errors.Is(err, tokens.ErrUnreachable) != tc.unreachable {
			t.Errorf("%s: FetchKeys = %v; want ErrUnavailable, and ErrUnreachable %v", tc.name, err, tc.unreachable)
		}
	}
}
