package main

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	faketokensvc "wsauth/fake_tokensvc"
)

// fakeIssuer runs the fake token service as a provider whose issuer is its
// own URL, as discovery requires, with the client secret "dev-secret".
// edit, if given, changes its options (an issuer that differs from its
// URL, say).
func fakeIssuer(t *testing.T, edit ...func(*faketokensvc.Options)) (*faketokensvc.Service, string) {
	t.Helper()
	ts := httptest.NewUnstartedServer(nil)
	url := "http://" + ts.Listener.Addr().String()
	opts := faketokensvc.Options{ClientID: "wsauth", ClientSecret: "dev-secret", Issuer: url}
	for _, f := range edit {
		f(&opts)
	}
	svc := faketokensvc.New(opts)
	// The fake makes its signing keys on first use, two of them RSA, which
	// under -race and parallel tests can outlast the 2 s that wsauth gives
	// its startup fetch of the JWK set: make them now, before any timer runs.
	svc.KeyID(faketokensvc.Algorithms[0])
	ts.Config.Handler = svc.Handler()
	ts.Start()
	t.Cleanup(ts.Close)
	return svc, url
}

// closedURL returns an http URL on a loopback port nothing listens on.
func closedURL(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + ln.Addr().String()
	ln.Close()
	return url
}

// TestTokenSystemStartupFailures runs the command as a process with each
// token-system misconfiguration: it exits with status 1 before listening,
// and says on one line of stderr which flag, which URL and what was wrong.
func TestTokenSystemStartupFailures(t *testing.T) {
	t.Parallel()
	_, issuer := fakeIssuer(t)
	_, liar := fakeIssuer(t, func(o *faketokensvc.Options) { o.Issuer = "https://idp.example" })
	notJSON := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		io.WriteString(w, "<html>Welcome to the sign-in page</html>")
	}))
	t.Cleanup(notJSON.Close)
	secret := "WSAUTH_CLIENT_SECRET=dev-secret"

	for _, tc := range []struct {
		name string
		args []string
		env  []string
		want []string // each in the one line on stderr
	}{
		{"discovery names another issuer", []string{"-issuer", liar, "-audience", "wsauth-api"}, nil,
			[]string{"wsauth: -issuer: discovery: " + liar + "/.well-known/openid-configuration: ", `the document names the issuer "https://idp.example", not "` + liar + `"`}},
		{"no discovery document", []string{"-issuer", issuer + "/realms/nope", "-audience", "wsauth-api"}, nil,
			[]string{"wsauth: -issuer: discovery of issuer " + issuer + "/realms/nope: ", issuer + "/realms/nope/.well-known/openid-configuration answered 404 Not Found",
				issuer + "/.well-known/oauth-authorization-server/realms/nope answered 404 Not Found"}},
		{"missing -audience", []string{"-issuer", issuer}, []string{secret},
			[]string{"wsauth: -audience is required: JWTs are verified against the JWK set " + issuer + "/.well-known/jwks.json"}},
		{"JWK set 404", []string{"-issuer", issuer, "-jwks-url", issuer + "/jwks", "-audience", "wsauth-api"}, nil,
			[]string{"wsauth: -jwks-url: the JWK set cannot be used: GET " + issuer + "/jwks answered 404 Not Found"}},
		{"-jwks-url without -issuer", []string{"-jwks-url", issuer + "/.well-known/jwks.json", "-audience", "wsauth-api"}, nil,
			[]string{"wsauth: -jwks-url " + issuer + "/.well-known/jwks.json needs -issuer"}},
		{"probe 404: a wrong path", []string{"-introspect-url", issuer + "/oauth2/introspect"}, []string{secret},
			[]string{"wsauth: -introspect-url: introspection endpoint " + issuer + "/oauth2/introspect answered 404 Not Found: there is no introspection endpoint at that URL"}},
		{"probe 401: a wrong secret", []string{"-introspect-url", issuer + "/introspect"}, []string{"WSAUTH_CLIENT_SECRET=wrong"},
			[]string{"wsauth: -introspect-url: introspection endpoint " + issuer + "/introspect answered 401 Unauthorized: it refused the client credentials"}},
		{"probe 401: no client authentication", []string{"-introspect-url", issuer + "/introspect", "-introspect-auth", "none"}, nil,
			[]string{"wsauth: -introspect-url: introspection endpoint " + issuer + "/introspect answered 401 Unauthorized", "another client authentication method than none"}},
		{"probe: not JSON", []string{"-introspect-url", notJSON.URL + "/login"}, []string{secret},
			[]string{"wsauth: -introspect-url: introspection endpoint " + notJSON.URL + "/login answered 200 with a body that is not a usable JSON object"}},
		{"probe of a discovered endpoint", []string{"-issuer", issuer, "-audience", "wsauth-api"}, []string{"WSAUTH_CLIENT_SECRET=wrong"},
			[]string{"wsauth: -issuer (introspection_endpoint of " + issuer + "/.well-known/openid-configuration): introspection endpoint " + issuer + "/introspect answered 401"}},
		{"no client secret", []string{"-introspect-url", issuer + "/introspect"}, nil,
			[]string{"wsauth: -introspect-url " + issuer + "/introspect needs the client secret in $WSAUTH_CLIENT_SECRET"}},
		{"-clock-skew over a minute", []string{"-issuer", issuer, "-audience", "wsauth-api", "-clock-skew", "90s"}, nil,
			[]string{"wsauth: -clock-skew is 1m30s; want 0 (off) to 1m0s"}},
		{"negative -clock-skew", []string{"-issuer", issuer, "-audience", "wsauth-api", "-clock-skew", "-1s"}, nil,
			[]string{"wsauth: -clock-skew is -1s; want 0 (off) to 1m0s"}},
		{"bad -introspect-auth", []string{"-introspect-url", issuer + "/introspect", "-introspect-auth", "basic"}, []string{secret},
			[]string{`wsauth: -introspect-auth is "basic"; want client_secret_basic, client_secret_post or none`}},
		{"HS256 in -jwt-algs", []string{"-issuer", issuer, "-audience", "wsauth-api", "-jwt-algs", "RS256,HS256"}, nil,
			[]string{`wsauth: -jwt-algs: "HS256" is not supported; want some of RS256,PS256,ES256,EdDSA`}},
		{"a scope with a space", []string{"-introspect-url", issuer + "/introspect", "-ws-scope", "chat write"}, []string{secret},
			[]string{`wsauth: -ws-scope is "chat write"; want a scope as the token system spells it`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			status, stdout, stderr := runMain(t, append([]string{"-addr", "127.0.0.1:0"}, tc.args...), tc.env...)
			if status != 1 {
				t.Errorf("wsauth %q: exit status %d; want 1", tc.args, status)
			}
			if strings.Count(stderr, "\n") != 1 || !strings.HasSuffix(stderr, "\n") {
				t.Errorf("wsauth %q: stderr is %q; want one line", tc.args, stderr)
			}
			for _, want := range tc.want {
				if !strings.Contains(stderr, want) {
					t.Errorf("wsauth %q: stderr %q; want it to say %q", tc.args, stderr, want)
				}
			}
			if strings.Contains(stderr, "dev-secret") || strings.Contains(stdout, "dev-secret") {
				t.Errorf("wsauth %q: the client secret appears in the output", tc.args)
			}
			if strings.Contains(stdout, "wsauth listening") {
				t.Errorf("wsauth %q: listened before refusing:\n%s", tc.args, stdout)
			}
		})
	}
}

// get sends GET base+path with a bearer token and returns the status.
func get(t *testing.T, base, path, token string) int {
	t.Helper()
	req, _ := http.NewRequest("GET", base+path, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// mustIssue mints a token from svc.
func mustIssue(t *testing.T, svc *faketokensvc.Service, req faketokensvc.TokenRequest) string {
	t.Helper()
	tok, _, err := svc.IssueToken(req)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func secretEnv(secret string) func(string) string {
	return func(k string) string {
		if k == "WSAUTH_CLIENT_SECRET" {
			return secret
		}
		return ""
	}
}

// logLine matches a log line of level and message, a prefix of msg.
func logLine(level, msg string) *regexp.Regexp {
	return regexp.MustCompile(`level=` + level + ` msg="` + regexp.QuoteMeta(msg))
}

// TestTokenSystemModes starts the command against the fake as each kind
// of token system: which tokens it takes, how many introspections they
// cost, and what the startup log says about revocation.
func TestTokenSystemModes(t *testing.T) {
	t.Parallel()
	jwt := func(aud string) faketokensvc.TokenRequest {
		return faketokensvc.TokenRequest{Sub: "alice", Scopes: []string{"api", "ws"}, TTL: time.Hour, JWT: true, Alg: "ES256", Audience: aud}
	}
	opaque := faketokensvc.TokenRequest{Sub: "alice", Scopes: []string{"api", "ws"}, TTL: time.Hour, Audience: "wsauth-api"}
	opaqueNoAud := faketokensvc.TokenRequest{Sub: "alice", Scopes: []string{"api", "ws"}, TTL: time.Hour}
	refresh := faketokensvc.TokenRequest{Sub: "alice", Scopes: []string{"api", "ws"}, TTL: time.Hour, Kind: faketokensvc.RefreshToken}

	type want struct {
		req           faketokensvc.TokenRequest
		status        int
		introspection bool // the request costs one
	}
	for _, tc := range []struct {
		name   string
		args   func(issuer string) []string
		secret string
		log    []*regexp.Regexp
		tokens []want
	}{
		{"JWKS and introspection by discovery",
			func(iss string) []string { return []string{"-issuer", iss, "-audience", "wsauth-api"} }, "dev-secret",
			[]*regexp.Regexp{logLine("INFO", "token kinds: JWTs are verified locally against the JWK set")},
			[]want{{jwt(""), 200, false}, {jwt("other-api"), 401, false}, {opaque, 200, true}, {opaqueNoAud, 401, true}, {refresh, 401, true}}},
		{"JWKS only: no client secret",
			func(iss string) []string { return []string{"-issuer", iss, "-audience", "wsauth-api"} }, "",
			[]*regexp.Regexp{
				logLine("WARN", "the issuer's introspection endpoint is not used: no client secret in $WSAUTH_CLIENT_SECRET"),
				logLine("WARN", "token kinds: JWTs only, verified locally against the JWK set; tokens that are not JWTs are refused. With no introspection endpoint, revocation waits for expiry"),
			},
			[]want{{jwt(""), 200, false}, {jwt("other-api"), 401, false}, {opaque, 401, false}}},
		{"JWKS only: -jwks-url",
			func(iss string) []string {
				return []string{"-issuer", iss, "-jwks-url", iss + "/.well-known/jwks.json", "-audience", "wsauth-api", "-jwt-algs", "ES256"}
			}, "dev-secret",
			[]*regexp.Regexp{logLine("WARN", "token kinds: JWTs only")},
			[]want{{jwt(""), 200, false}, {opaque, 401, false}}},
		{"-jwt-algs leaves an algorithm out",
			func(iss string) []string {
				return []string{"-issuer", iss, "-jwks-url", iss + "/.well-known/jwks.json", "-audience", "wsauth-api", "-jwt-algs", "RS256"}
			}, "",
			nil,
			[]want{{jwt(""), 401, false}}},
		{"introspection only",
			func(iss string) []string { return []string{"-introspect-url", iss + "/introspect"} }, "dev-secret",
			[]*regexp.Regexp{logLine("INFO", "token kinds: every token is introspected")},
			[]want{{jwt(""), 200, true}, {opaqueNoAud, 200, true}, {refresh, 401, true}}},
		{"introspection with -audience",
			func(iss string) []string {
				return []string{"-introspect-url", iss + "/introspect", "-audience", "wsauth-api"}
			}, "dev-secret",
			nil,
			[]want{{opaque, 200, true}, {opaqueNoAud, 401, true}, {jwt("other-api"), 401, true}}},
		{"introspection by client_secret_post",
			func(iss string) []string {
				return []string{"-introspect-url", iss + "/introspect", "-introspect-auth", "client_secret_post"}
			}, "dev-secret",
			nil,
			[]want{{opaqueNoAud, 200, true}}},
		{"configured scopes",
			func(iss string) []string {
				return []string{"-introspect-url", iss + "/introspect", "-api-scope", "chat:read", "-ws-scope", "chat:write"}
			}, "dev-secret",
			nil,
			[]want{{opaqueNoAud, 403, true}, {faketokensvc.TokenRequest{Sub: "alice", Scopes: []string{"chat:read"}, TTL: time.Hour}, 200, true}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			svc, issuer := fakeIssuer(t)
			base, out := startRun(t, append([]string{"-addr", "127.0.0.1:0"}, tc.args(issuer)...), secretEnv(tc.secret))
			for _, re := range tc.log {
				if !re.MatchString(out.String()) {
					t.Errorf("the log does not match %s:\n%s", re, out)
				}
			}
			for _, w := range tc.tokens {
				tok := mustIssue(t, svc, w.req)
				before := svc.Introspections()
				if got := get(t, base, "/api/me", tok); got != w.status {
					t.Errorf("GET /api/me with %+v: status %d; want %d", w.req, got, w.status)
				}
				if got := svc.Introspections() - before; got != map[bool]int64{false: 0, true: 1}[w.introspection] {
					t.Errorf("GET /api/me with %+v: %d introspections; want %v", w.req, got, w.introspection)
				}
			}
		})
	}
}

// TestTokenSystemUnreachableOnlyWarns: a token system that refuses
// connections at start may come up later, so wsauth starts, warns, and
// answers 503 meanwhile; with -introspect-auth none it needs no secret,
// and warns about that too.
func TestTokenSystemUnreachableOnlyWarns(t *testing.T) {
	t.Parallel()
	down := closedURL(t)
	for _, tc := range []struct {
		name string
		args []string
		env  func(string) string
		log  []*regexp.Regexp
	}{
		{"introspection", []string{"-introspect-url", down + "/introspect"}, secretEnv("dev-secret"),
			[]*regexp.Regexp{logLine("WARN", "the introspection endpoint cannot be reached yet"), regexp.MustCompile(`connection refused`)}},
		{"introspection without client authentication", []string{"-introspect-url", down + "/introspect", "-introspect-auth", "none"}, noEnv,
			[]*regexp.Regexp{logLine("WARN", "-introspect-auth none: introspection requests carry no client credentials"),
				logLine("WARN", "the introspection endpoint cannot be reached yet")}},
		{"JWK set", []string{"-issuer", "https://idp.example", "-jwks-url", down + "/jwks.json", "-audience", "api"}, noEnv,
			[]*regexp.Regexp{logLine("WARN", "the JWK set cannot be fetched yet: connection refused")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			base, out := startRun(t, append([]string{"-addr", "127.0.0.1:0"}, tc.args...), tc.env)
			for _, re := range tc.log {
				if !re.MatchString(out.String()) {
					t.Errorf("the log does not match %s:\n%s", re, out)
				}
			}
			tok := "opaque-token"
			if strings.Contains(tc.name, "JWK") {
				tok = "eyJhbGciOiJSUzI1NiIsImtpZCI6ImsxIn0.eyJzdWIiOiJhIn0.c2ln"
			}
			if got := get(t, base, "/api/me", tok); got != 503 {
				t.Errorf("GET /api/me while the token system is down: status %d; want 503", got)
			}
		})
	}
}

// TestDemoFollowsScopes: the demo's tokens, and the commands it prints,
// carry the scopes -api-scope and -ws-scope name.
func TestDemoFollowsScopes(t *testing.T) {
	t.Parallel()
	base, out := startRun(t, []string{"-addr", "127.0.0.1:0", "-api-scope", "chat:read", "-ws-scope", "chat:write"}, noEnv)
	banner := out.String()
	alice := regexp.MustCompile(`alice \(scopes chat:read chat:write\): (\S+)`).FindStringSubmatch(banner)
	bob := regexp.MustCompile(`bob   \(scope  chat:read\):    (\S+)`).FindStringSubmatch(banner)
	if alice == nil || bob == nil || !strings.Contains(banner, "with bob's token (no chat:write scope)") {
		t.Fatalf("the banner does not name the configured scopes:\n%s", banner)
	}
	if got := get(t, base, "/api/me", alice[1]); got != 200 {
		t.Errorf("GET /api/me with alice's token: %d; want 200", got)
	}
	for _, tc := range []struct {
		who, token string
		want       int
	}{{"alice", alice[1], 200}, {"bob", bob[1], 403}} {
		req, _ := http.NewRequest("POST", base+"/api/ws-ticket", strings.NewReader("{}"))
		req.Header.Set("Authorization", "Bearer "+tc.token)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("POST /api/ws-ticket with %s's token: %d; want %d", tc.who, resp.StatusCode, tc.want)
		}
	}
}
