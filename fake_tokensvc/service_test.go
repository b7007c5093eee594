package faketokensvc_test

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	faketokensvc "wsauth/fake_tokensvc"
)

func TestIntrospect(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	token, _ := e.svc.Issue("alice", []string{"api", "ws"}, time.Hour)
	noAuth := func(*http.Request) {}
	tests := []struct {
		name        string
		path        string
		contentType string
		body        string
		auth        func(*http.Request)
		wantStatus  int
		wantBody    string // the exact body, or a substring of it if contains
		contains    bool
	}{
		{"active token", "/introspect", formType, form(token), basicAuth("wsauth", "dev-secret"), 200, activeBody, false},
		{"token_type_hint is ignored", "/introspect", formType, form(token) + "&token_type_hint=access_token", basicAuth("wsauth", "dev-secret"), 200, activeBody, false},
		{"unknown token", "/introspect", formType, form("nope"), basicAuth("wsauth", "dev-secret"), 200, inactiveBody, false},
		{"wrong secret", "/introspect", formType, form(token), basicAuth("wsauth", "wrong"), 401, `"error":"invalid_client"`, true},
		{"wrong client id", "/introspect", formType, form(token), basicAuth("other", "dev-secret"), 401, `"error":"invalid_client"`, true},
		{"no credentials", "/introspect", formType, form(token), noAuth, 401, `"error":"invalid_client"`, true},
		{"missing token", "/introspect", formType, "", basicAuth("wsauth", "dev-secret"), 400, `"error":"invalid_request"`, true},
		{"token only in the query", "/introspect?" + form(token), formType, "", basicAuth("wsauth", "dev-secret"), 400, `"error":"invalid_request"`, true},
		{"JSON body", "/introspect", "application/json", `{"token":"` + token + `"}`, basicAuth("wsauth", "dev-secret"), 415, `"error":"invalid_request"`, true},
		{"body too large", "/introspect", formType, form(strings.Repeat("x", 65<<10)), basicAuth("wsauth", "dev-secret"), 413, `"error":"invalid_request"`, true},
		{"client_secret_post", "/introspect", formType, form(token) + "&client_id=wsauth&client_secret=dev-secret", noAuth, 200, activeBody, false},
		{"client_secret_post, wrong secret", "/introspect", formType, form(token) + "&client_id=wsauth&client_secret=wrong", noAuth, 401, `"error":"invalid_client"`, true},
		{"client_secret_post, no secret", "/introspect", formType, form(token) + "&client_id=wsauth", noAuth, 401, `"error":"invalid_client"`, true},
		{"client_secret_post, repeated secret", "/introspect", formType, form(token) + "&client_id=wsauth&client_secret=dev-secret&client_secret=x", noAuth, 401, `"error":"invalid_client"`, true},
		{"Basic wins over the form", "/introspect", formType, form(token) + "&client_id=wsauth&client_secret=dev-secret", basicAuth("wsauth", "wrong"), 401, `"error":"invalid_client"`, true},
		{"client_secret_post in the query", "/introspect?client_id=wsauth&client_secret=dev-secret", formType, form(token), noAuth, 401, `"error":"invalid_client"`, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			resp, body := e.do(t, "POST", tt.path, tt.contentType, tt.body, tt.auth)
			if resp.StatusCode != tt.wantStatus {
				t.Errorf("POST %s: status = %d; want %d (body %s)", tt.path, resp.StatusCode, tt.wantStatus, body)
			}
			if tt.contains && !strings.Contains(body, tt.wantBody) || !tt.contains && body != tt.wantBody {
				t.Errorf("POST %s: body = %s; want %s", tt.path, body, tt.wantBody)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("POST %s: Content-Type = %q; want application/json", tt.path, ct)
			}
			wantChallenge := ""
			if tt.wantStatus == 401 {
				wantChallenge = `Basic realm="tokensvc"`
			}
			if got := resp.Header.Get("WWW-Authenticate"); got != wantChallenge {
				t.Errorf("POST %s: WWW-Authenticate = %q; want %q", tt.path, got, wantChallenge)
			}
		})
	}
}

func TestClientCredentialEncoding(t *testing.T) {
	t.Parallel()
	const secret = "a+b c/="
	e := newEnv(t, func(o *faketokensvc.Options) { o.ClientID, o.ClientSecret = "my app", secret })
	tests := []struct {
		name       string
		id, secret string
		want       int
	}{
		{"raw", "my app", secret, 200},
		{"form-encoded (RFC 6749 §2.3.1)", url.QueryEscape("my app"), url.QueryEscape(secret), 200},
		{"wrong", "my app", "a b c/=", 401},
	}
	for _, tt := range tests {
		resp, _ := e.do(t, "POST", "/introspect", formType, form("x"), basicAuth(tt.id, tt.secret))
		if resp.StatusCode != tt.want {
			t.Errorf("%s credentials: status = %d; want %d", tt.name, resp.StatusCode, tt.want)
		}
	}
}

func TestExpiry(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		ttl        time.Duration
		advance    time.Duration
		wantActive bool
	}{
		{"fresh", time.Hour, 0, true},
		{"a nanosecond before exp", time.Hour, time.Hour - time.Nanosecond, true},
		{"at exp", time.Hour, time.Hour, false},
		{"after exp", time.Hour, 2 * time.Hour, false},
		{"ttl zero", 0, 0, false},
		{"ttl negative", -time.Minute, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			token, exp := e.svc.Issue("alice", []string{"api"}, tt.ttl)
			if want := epoch.Add(tt.ttl); !exp.Equal(want) {
				t.Errorf("Issue(ttl %v): exp = %v; want %v", tt.ttl, exp, want)
			}
			e.clock.Advance(tt.advance)
			_, body := e.introspect(t, token)
			if active := strings.HasPrefix(body, `{"active":true`); active != tt.wantActive {
				t.Errorf("introspect after %v of a %v token: %s; want active %v", tt.advance, tt.ttl, body, tt.wantActive)
			}
		})
	}
}

func TestRevoke(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	token, _ := e.svc.Issue("alice", []string{"api", "ws"}, time.Hour)
	other, _ := e.svc.Issue("bob", nil, time.Hour)
	e.svc.Revoke(token)
	e.svc.Revoke("never-issued") // a no-op
	if _, body := e.introspect(t, token); body != inactiveBody {
		t.Errorf("introspect revoked token: %s; want %s", body, inactiveBody)
	}
	if _, body := e.introspect(t, other); !strings.HasPrefix(body, `{"active":true,"sub":"bob"`) {
		t.Errorf("introspect another token after a revoke: %s; want active for bob", body)
	}
	if e.svc.SetScopes(token, []string{"api"}) {
		t.Errorf("SetScopes on a revoked token = true; want false")
	}
}

func TestSetScopes(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	token, _ := e.svc.Issue("alice", []string{"api", "ws"}, time.Hour)
	tests := []struct {
		scopes []string
		want   string
	}{
		{[]string{"api"}, `"sub":"alice","scope":"api","exp":`},
		{[]string{"ws", "admin"}, `"sub":"alice","scope":"ws admin","exp":`},
		{nil, `"sub":"alice","exp":`}, // RFC 7662 §2.2: scope is optional; no scopes, no member
	}
	for _, tt := range tests {
		if !e.svc.SetScopes(token, tt.scopes) {
			t.Fatalf("SetScopes(live token, %q) = false; want true", tt.scopes)
		}
		if _, body := e.introspect(t, token); !strings.Contains(body, tt.want) {
			t.Errorf("introspect after SetScopes(%q): %s; want it to contain %s", tt.scopes, body, tt.want)
		}
	}
	if e.svc.SetScopes("never-issued", []string{"api"}) {
		t.Errorf("SetScopes on an unknown token = true; want false")
	}
}

func TestIssueTokenFormat(t *testing.T) {
	t.Parallel()
	svc := faketokensvc.New(faketokensvc.Options{})
	seen := make(map[string]bool)
	for range 100 {
		token, _ := svc.Issue("alice", nil, time.Hour)
		b, err := base64.RawURLEncoding.DecodeString(token)
		if len(token) != 43 || err != nil || len(b) != 32 {
			t.Fatalf("Issue() token = %q (%d chars, decode error %v); want 32 bytes as 43 base64url characters", token, len(token), err)
		}
		if seen[token] {
			t.Fatalf("Issue() returned %q twice", token)
		}
		seen[token] = true
	}
}

func TestIntrospectionsCounter(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	token, _ := e.svc.Issue("alice", nil, time.Hour)
	e.introspect(t, token)
	e.introspect(t, "unknown")
	e.do(t, "POST", "/introspect", formType, form(token), basicAuth("wsauth", "wrong")) // not counted
	e.svc.SetFaults(faketokensvc.Faults{Status: 503})
	e.introspect(t, token) // counted: the credentials were valid
	if got := e.svc.Introspections(); got != 3 {
		t.Errorf("Introspections() = %d; want 3 (two answered, one faulted, not the 401)", got)
	}
}

func TestConcurrentUse(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	const workers, rounds = 16, 20
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range rounds {
				sub := fmt.Sprintf("user%d-%d", w, i)
				token, _ := e.svc.Issue(sub, []string{"api"}, time.Hour)
				if _, body := e.introspect(t, token); !strings.Contains(body, `"sub":"`+sub+`"`) {
					t.Errorf("introspect %s's token: %s; want active for %s", sub, body, sub)
				}
				e.svc.SetScopes(token, []string{"ws"})
				e.svc.SetFaults(e.svc.Faults())
				e.svc.Revoke(token)
				if _, body := e.introspect(t, token); body != inactiveBody {
					t.Errorf("introspect %s's revoked token: %s; want %s", sub, body, inactiveBody)
				}
			}
		})
	}
	wg.Wait()
	if got, want := e.svc.Introspections(), int64(2*workers*rounds); got != want {
		t.Errorf("Introspections() = %d; want %d", got, want)
	}
}
