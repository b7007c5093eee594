package tokens_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	faketokensvc "wsauth/fake_tokensvc"
	"wsauth/tokens"
)

func TestIntrospectorValidate(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	alice, aliceExp := e.svc.Issue("alice", []string{"api", "ws"}, time.Hour)
	short, _ := e.svc.Issue("bob", []string{"api"}, time.Minute)
	revoked, _ := e.svc.Issue("carol", []string{"ws"}, time.Hour)
	e.svc.Revoke(revoked)
	expired, _ := e.svc.Issue("dave", []string{"ws"}, 0)
	e.clock.Advance(2 * time.Minute) // short is now past its expiry

	p, err := e.in.Validate(context.Background(), alice)
	if err != nil {
		t.Fatalf("Validate(alice) error = %v; want nil", err)
	}
	want := tokens.Principal{Subject: "alice", Scopes: []string{"api", "ws"}, Expiry: aliceExp.Truncate(time.Second), ClientID: "wsauth"}
	if p.Subject != want.Subject || !slices.Equal(p.Scopes, want.Scopes) || !p.Expiry.Equal(want.Expiry) || p.ClientID != want.ClientID {
		t.Errorf("Validate(alice) = %+v; want %+v", p, want)
	}
	if !p.HasScope("ws") || p.HasScope("admin") {
		t.Errorf("HasScope: ws = %v, admin = %v; want true, false", p.HasScope("ws"), p.HasScope("admin"))
	}

	for _, tc := range []struct {
		name, token string
	}{
		{"unknown", strings.Repeat("x", 43)},
		{"expired by clock", short},
		{"issued expired", expired},
		{"revoked", revoked},
	} {
		if _, err := e.in.Validate(context.Background(), tc.token); !errors.Is(err, tokens.ErrInvalid) {
			t.Errorf("Validate(%s) error = %v; want ErrInvalid", tc.name, err)
		}
	}
}

func TestIntrospectorUnavailable(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		faults faketokensvc.Faults
		mutate func(*tokens.Introspector)
	}{
		{name: "wrong client secret", mutate: func(in *tokens.Introspector) { in.ClientSecret = "wrong" }},
		{name: "latency past the timeout", faults: faketokensvc.Faults{Latency: time.Minute},
			mutate: func(in *tokens.Introspector) { in.Timeout = 100 * time.Millisecond }},
		{name: "status 500", faults: faketokensvc.Faults{Status: 500}},
		{name: "status 503", faults: faketokensvc.Faults{Status: 503}},
		{name: "garbage body", faults: faketokensvc.Faults{Garbage: true}},
		{name: "hang up mid-reply", faults: faketokensvc.Faults{HangUp: true}},
		{name: "unreachable", mutate: func(in *tokens.Introspector) { in.URL = "http://127.0.0.1:1/introspect" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			tok, _ := e.svc.Issue("alice", []string{"ws"}, time.Hour)
			e.svc.SetFaults(tc.faults)
			if tc.mutate != nil {
				tc.mutate(e.in)
			}
			start := time.Now()
			_, err := e.in.Validate(context.Background(), tok)
			if !errors.Is(err, tokens.ErrUnavailable) || errors.Is(err, tokens.ErrInvalid) {
				t.Fatalf("Validate error = %v; want ErrUnavailable only", err)
			}
			if strings.Contains(err.Error(), tok) || strings.Contains(err.Error(), "s3cret") {
				t.Errorf("error %q contains the token or the client secret", err)
			}
			// Bounded by the client's timeout, not by the token system: a
			// minute-long latency must not hold the caller (generous
			// margin for a loaded CI machine under -race).
			if d := time.Since(start); d > 20*time.Second {
				t.Errorf("Validate took %v; want it bounded by the timeout, not the fake's minute of latency", d)
			}
		})
	}
}

func TestIntrospectorReplyBounds(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		reply   string
		wantErr error
	}{
		{"10 MB body", `{"active":true,"sub":"alice","x":"` + strings.Repeat("a", 10<<20) + `"}`, tokens.ErrUnavailable},
		{"not an object", `[1,2]`, tokens.ErrUnavailable},
		{"no active member", `{"sub":"alice"}`, tokens.ErrUnavailable},
		{"exp not a number", `{"active":true,"sub":"alice","exp":"soon"}`, tokens.ErrUnavailable},
		{"inactive", `{"active":false}`, tokens.ErrInvalid},
		{"active without sub", `{"active":true,"scope":"ws"}`, tokens.ErrInvalid},
		{"active, exp in the past", `{"active":true,"sub":"alice","exp":1000}`, tokens.ErrInvalid},
		{"active, float exp", `{"active":true,"sub":"alice","exp":4.1e9}`, nil},
		{"active, exp as a string", `{"active":true,"sub":"alice","exp":"4100000000"}`, tokens.ErrUnavailable},
		// A token without "exp" would give a socket that never expires by
		// time, though the docs promise a token is valid only with a
		// future "exp".
		{"active, no exp", `{"active":true,"sub":"alice"}`, tokens.ErrInvalid},
		{"active, exp null", `{"active":true,"sub":"alice","exp":null}`, tokens.ErrUnavailable},
		{"active twice, false last", `{"active":true,"sub":"alice","exp":4.1e9,"active":false}`, tokens.ErrUnavailable},
		{"refresh token (Ory Hydra)", `{"active":true,"sub":"alice","exp":4.1e9,"token_use":"refresh_token"}`, tokens.ErrInvalid},
		{"access token (Ory Hydra)", `{"active":true,"sub":"alice","exp":4.1e9,"token_use":"access_token"}`, nil},
		{"refresh token (Keycloak)", `{"active":true,"sub":"alice","exp":4.1e9,"typ":"Refresh"}`, tokens.ErrInvalid},
		{"offline token (Keycloak)", `{"active":true,"sub":"alice","exp":4.1e9,"typ":"Offline"}`, tokens.ErrInvalid},
		{"ID token (Keycloak)", `{"active":true,"sub":"alice","exp":4.1e9,"typ":"ID"}`, tokens.ErrInvalid},
		{"access token (Keycloak)", `{"active":true,"sub":"alice","exp":4.1e9,"typ":"Bearer"}`, nil},
		{"token_type is not the kind of token (RFC 7662)", `{"active":true,"sub":"alice","exp":4.1e9,"token_type":"refresh_token"}`, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				w.Write([]byte(tc.reply))
			}))
			defer ts.Close()
			in := &tokens.Introspector{URL: ts.URL, HTTPClient: ts.Client()}
			_, err := in.Validate(context.Background(), "a-token")
			if tc.wantErr == nil && err != nil || tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
				t.Errorf("Validate error = %v; want %v", err, tc.wantErr)
			}
		})
	}
}

func TestIntrospectorSendsRFC7662Request(t *testing.T) {
	t.Parallel()
	got := make(chan *http.Request, 1)
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.ParseForm()
		got <- r
		w.Write([]byte(`{"active":false}`))
	}))
	defer ts.Close()
	in := &tokens.Introspector{URL: ts.URL + "/introspect", ClientID: "my client", ClientSecret: "p&ss:word", HTTPClient: ts.Client()}
	in.Validate(context.Background(), "tok+en=/%")
	r := <-got
	if hint := r.PostForm.Get("token_type_hint"); hint != "access_token" {
		t.Errorf("form token_type_hint = %q; want access_token (RFC 7662 §2.1)", hint)
	}
	id, secret, ok := r.BasicAuth()
	if r.Method != "POST" || r.URL.Path != "/introspect" {
		t.Errorf("request = %s %s; want POST /introspect", r.Method, r.URL.Path)
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/x-www-form-urlencoded" {
		t.Errorf("Content-Type = %q; want application/x-www-form-urlencoded", ct)
	}
	if tok := r.PostForm.Get("token"); tok != "tok+en=/%" {
		t.Errorf("form token = %q; want %q", tok, "tok+en=/%")
	}
	// RFC 6749 §2.3.1: form-encoded, then Basic.
	if !ok || id != "my+client" || secret != "p%26ss%3Aword" {
		t.Errorf("BasicAuth = %q, %q, %v; want form-encoded id and secret", id, secret, ok)
	}
}

func TestCheckFormatMakesNoCall(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for _, tc := range []struct{ name, token string }{
		{"empty", ""},
		{"too long", strings.Repeat("a", tokens.MaxTokenLen+1)},
		{"space", "abc def"},
		{"NUL", "abc\x00def"},
		{"non-ASCII", "abcé"},
		{"DEL", "abc\x7f"},
	} {
		if _, err := e.in.Validate(context.Background(), tc.token); !errors.Is(err, tokens.ErrInvalid) {
			t.Errorf("Validate(%s) error = %v; want ErrInvalid", tc.name, err)
		}
	}
	if err := tokens.CheckFormat(strings.Repeat("a", tokens.MaxTokenLen)); err != nil {
		t.Errorf("CheckFormat(%d bytes) = %v; want nil", tokens.MaxTokenLen, err)
	}
	if n := e.svc.Introspections(); n != 0 {
		t.Errorf("introspections = %d; want 0: malformed tokens must not reach the token system", n)
	}
}

func TestIntrospectorAuthMethods(t *testing.T) {
	t.Parallel()
	got := make(chan *http.Request, 1)
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.ParseForm()
		got <- r
		w.Write([]byte(`{"active":false}`))
	}))
	defer ts.Close()
	for _, tc := range []struct {
		method             string
		wantBasic          bool
		wantID, wantSecret string // in the form
	}{
		{"", true, "", ""},
		{tokens.ClientSecretBasic, true, "", ""},
		{tokens.ClientSecretPost, false, "my client", "p&ss:word"},
		{tokens.AuthNone, false, "my client", ""},
	} {
		in := &tokens.Introspector{URL: ts.URL, ClientID: "my client", ClientSecret: "p&ss:word", AuthMethod: tc.method, HTTPClient: ts.Client()}
		in.Validate(context.Background(), "tok")
		r := <-got
		_, _, basic := r.BasicAuth()
		if basic != tc.wantBasic || r.PostForm.Get("client_id") != tc.wantID || r.PostForm.Get("client_secret") != tc.wantSecret {
			t.Errorf("AuthMethod %q: Basic auth %v, form client_id %q, client_secret %q; want %v, %q, %q",
				tc.method, basic, r.PostForm.Get("client_id"), r.PostForm.Get("client_secret"), tc.wantBasic, tc.wantID, tc.wantSecret)
		}
		if r.PostForm.Get("token") != "tok" || r.PostForm.Get("token_type_hint") != "access_token" {
			t.Errorf("AuthMethod %q: form %v; want token and token_type_hint=access_token", tc.method, r.PostForm)
		}
	}
}

func TestIntrospectorTokenKinds(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	issue := func(req faketokensvc.TokenRequest) string {
		req.Sub, req.Scopes, req.TTL = "alice", []string{"ws"}, time.Hour
		return e.issue(t, req)
	}
	for _, tc := range []struct {
		name  string
		token string
		want  error
	}{
		{"opaque access token", issue(faketokensvc.TokenRequest{}), nil},
		{"JWT access token", issue(faketokensvc.TokenRequest{JWT: true, Alg: "EdDSA"}), nil},
		{"opaque refresh token", issue(faketokensvc.TokenRequest{Kind: faketokensvc.RefreshToken}), tokens.ErrInvalid},
		{"JWT refresh token", issue(faketokensvc.TokenRequest{Kind: faketokensvc.RefreshToken, JWT: true}), tokens.ErrInvalid},
		{"ID token", issue(faketokensvc.TokenRequest{Kind: faketokensvc.IDToken}), tokens.ErrInvalid},
	} {
		if _, err := e.in.Validate(ctx, tc.token); tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
			t.Errorf("introspect %s: %v; want %v", tc.name, err, tc.want)
		}
	}
	// Revoking a JWT at the token system is seen by introspection.
	jwt := issue(faketokensvc.TokenRequest{JWT: true})
	e.svc.Revoke(jwt)
	if _, err := e.in.Validate(ctx, jwt); !errors.Is(err, tokens.ErrInvalid) {
		t.Errorf("introspect revoked JWT: %v; want ErrInvalid", err)
	}
}

func TestIntrospectorIssuerAndAudience(t *testing.T) {
	t.Parallel()
	const exp = `"exp":4100000000`
	for _, tc := range []struct {
		name  string
		edit  func(*tokens.Introspector)
		reply string
		valid bool
	}{
		{"nothing configured, no aud", nil, `{"active":true,"sub":"a",` + exp + `}`, true},
		{"issuer matches", func(in *tokens.Introspector) { in.Issuer = "https://iss" }, `{"active":true,"sub":"a","iss":"https://iss",` + exp + `}`, true},
		{"issuer differs", func(in *tokens.Introspector) { in.Issuer = "https://iss" }, `{"active":true,"sub":"a","iss":"https://other",` + exp + `}`, false},
		{"issuer configured, reply has none", func(in *tokens.Introspector) { in.Issuer = "https://iss" }, `{"active":true,"sub":"a",` + exp + `}`, true},
		{"audience in aud", func(in *tokens.Introspector) { in.Audience = "api" }, `{"active":true,"sub":"a","aud":"api",` + exp + `}`, true},
		{"audience in an aud array", func(in *tokens.Introspector) { in.Audience = "api" }, `{"active":true,"sub":"a","aud":["x","api"],` + exp + `}`, true},
		{"audience not in aud", func(in *tokens.Introspector) { in.Audience = "api" }, `{"active":true,"sub":"a","aud":"other",` + exp + `}`, false},
		{"audience configured, no aud", func(in *tokens.Introspector) { in.Audience = "api" }, `{"active":true,"sub":"a",` + exp + `}`, false},
		{"client allowed, no aud", func(in *tokens.Introspector) { in.Audience, in.AllowedClientIDs = "api", []string{"app"} },
			`{"active":true,"sub":"a","client_id":"app",` + exp + `}`, true},
		{"client allowed, aud of another API", func(in *tokens.Introspector) { in.Audience, in.AllowedClientIDs = "api", []string{"app"} },
			`{"active":true,"sub":"a","client_id":"app","aud":"other",` + exp + `}`, false},
		{"client not allowed", func(in *tokens.Introspector) { in.AllowedClientIDs = []string{"app"} },
			`{"active":true,"sub":"a","client_id":"other",` + exp + `}`, false},
	} {
		ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte(tc.reply)) }))
		in := &tokens.Introspector{URL: ts.URL, HTTPClient: ts.Client()}
		if tc.edit != nil {
			tc.edit(in)
		}
		_, err := in.Validate(context.Background(), "tok")
		ts.Close()
		if tc.valid != (err == nil) || err != nil && !errors.Is(err, tokens.ErrInvalid) {
			t.Errorf("%s: Validate = %v; want valid = %v, else ErrInvalid", tc.name, err, tc.valid)
		}
	}
}

func TestIntrospectorProbe(t *testing.T) {
	t.Parallel()
	closed := httptest.NewServer(nil)
	closed.Close()
	reply := func(status int, body string) string {
		ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(status)
			w.Write([]byte(body))
		}))
		t.Cleanup(ts.Close)
		return ts.URL + "/introspect"
	}
	for _, tc := range []struct {
		name        string
		edit        func(*env, *tokens.Introspector)
		faults      faketokensvc.Faults
		unreachable bool     // warn only
		want        []string // substrings of the error; nil for healthy
	}{
		{name: "healthy"},
		{name: "wrong path", edit: func(e *env, in *tokens.Introspector) { in.URL = e.url + "/oauth2/introspect" },
			want: []string{"/oauth2/introspect answered 404 Not Found", "no introspection endpoint at that URL"}},
		{name: "wrong secret", edit: func(e *env, in *tokens.Introspector) { in.ClientSecret = "wrong" },
			want: []string{"/introspect answered 401 Unauthorized", "refused the client credentials", "client_secret_basic"}},
		{name: "forbidden", edit: func(e *env, in *tokens.Introspector) { in.URL = reply(403, "{}") },
			want: []string{"answered 403 Forbidden", "refused the client credentials"}},
		{name: "not JSON", faults: faketokensvc.Faults{Garbage: true},
			want: []string{"/introspect answered 200 with a body that is not a usable JSON object", "RFC 7662"}},
		{name: "no active member", edit: func(e *env, in *tokens.Introspector) { in.URL = reply(200, `{"status":"ok"}`) },
			want: []string{`without a boolean "active"`}},
		{name: "a random token active", edit: func(e *env, in *tokens.Introspector) { in.URL = reply(200, `{"active":true,"sub":"x"}`) },
			want: []string{"says a random token is active"}},
		{name: "status 500", faults: faketokensvc.Faults{Status: 500}, want: []string{"answered 500 Internal Server Error"}},
		{name: "status 503", faults: faketokensvc.Faults{Status: 503}, unreachable: true, want: []string{"answered 503 Service Unavailable"}},
		{name: "connection refused", edit: func(e *env, in *tokens.Introspector) { in.URL = closed.URL + "/introspect" },
			unreachable: true, want: []string{closed.URL + "/introspect: connection refused"}},
		{name: "password in the URL", edit: func(e *env, in *tokens.Introspector) {
			in.URL = strings.Replace(closed.URL, "//", "//user:hunter2@", 1)
		},
			unreachable: true, want: []string{"user:xxxxx@"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			e.svc.SetFaults(tc.faults)
			if tc.edit != nil {
				tc.edit(e, e.in)
			}
			err := e.in.Probe(context.Background())
			if tc.want == nil {
				if err != nil {
					t.Errorf("Probe = %v; want nil", err)
				}
				return
			}
			if err == nil || errors.Is(err, tokens.ErrUnreachable) != tc.unreachable {
				t.Errorf("Probe = %v; want an error, ErrUnreachable = %v", err, tc.unreachable)
				return
			}
			for _, want := range tc.want {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("Probe = %q; want it to say %q", err, want)
				}
			}
			if strings.Contains(err.Error(), "s3cret") || strings.Contains(err.Error(), "hunter2") {
				t.Errorf("Probe = %q; it contains a secret", err)
			}
		})
	}
}

// TestSharedClientBoundsConnections: Introspectors without an HTTPClient
// open at most MaxConnsPerHost connections to one token system, however
// many calls are in flight: the others wait for a connection and are
// answered over the same ones. A server's outbound connections count
// against the open-files limit its WebSockets need.
func TestSharedClientBoundsConnections(t *testing.T) {
	t.Parallel()
	const calls = 3 * tokens.MaxConnsPerHost
	release := make(chan struct{})
	var blocked sync.WaitGroup
	blocked.Add(tokens.MaxConnsPerHost)
	var once sync.Once
	var mu sync.Mutex
	inCall := 0
	ts := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		if inCall++; inCall <= tokens.MaxConnsPerHost {
			blocked.Done()
		}
		mu.Unlock()
		<-release
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"active":true,"sub":"alice","exp":%d}`, time.Now().Add(time.Hour).Unix())
	}))
	cl := &countingListener{Listener: ts.Listener}
	ts.Listener = cl
	ts.Start()
	defer ts.Close()
	defer once.Do(func() { close(release) })

	in := &tokens.Introspector{URL: ts.URL, ClientID: "wsauth", ClientSecret: "s3cret", Timeout: 30 * time.Second}
	errs := make(chan error, calls)
	for i := range calls {
		go func() {
			_, err := in.Validate(context.Background(), "token-"+strings.Repeat("x", i%7))
			errs <- err
		}()
	}
	blocked.Wait() // MaxConnsPerHost calls hold their connections
	// A call past the bound would dial a connection of its own: give the
	// others time to try (a bound on waiting, not a synchronization).
	deadline := time.Now().Add(300 * time.Millisecond)
	for time.Now().Before(deadline) && cl.accepted() <= tokens.MaxConnsPerHost {
		<-time.After(10 * time.Millisecond)
	}
	if n := cl.accepted(); n > tokens.MaxConnsPerHost {
		t.Errorf("%d calls in flight opened %d connections; want at most MaxConnsPerHost (%d)", calls, n, tokens.MaxConnsPerHost)
	}
	once.Do(func() { close(release) })
	for range calls {
		if err := <-errs; err != nil {
			t.Errorf("Validate: %v; want nil once connections free up", err)
		}
	}
	if n := cl.accepted(); n > tokens.MaxConnsPerHost {
		t.Errorf("%d calls opened %d connections; want at most %d", calls, n, tokens.MaxConnsPerHost)
	}
}

// countingListener counts the connections it accepts.
type countingListener struct {
	net.Listener
	mu sync.Mutex
	n  int
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.mu.Lock()
		l.n++
		l.mu.Unlock()
	}
	return c, err
}

func (l *countingListener) accepted() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.n
}
