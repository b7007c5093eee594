package integration_test

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	faketokensvc "wsauth/fake_tokensvc"
	"wsauth/server"
	"wsauth/tokens"
)

// env is a fake token service and a wsauth server in front of it, both on
// real sockets, torn down when the test ends.
type env struct {
	t      testing.TB
	svc    tokenService // *faketokensvc.Service, or the remote fake in conformance mode (remote_test.go)
	svcURL string       // the fake's URL, and its issuer
	// In an env made withJWKS: the fake, the number of rechecks asked of
	// the validator, and a switch that makes the fake answer 503 to GET
	// /.well-known/jwks.json.
	jwt      *faketokensvc.Service
	rechecks *atomic.Int64
	jwksDown *atomic.Bool

	srv    *server.Server
	ts     *httptest.Server
	URL    string // http://127.0.0.1:port or https://…
	dialer wsDialer
	client *http.Client
	log    *testLog

	closeTokenService func() // makes the token system unreachable
}

// envOption configures newEnv.
type envOption func(*envConfig)

// envConfig is what the envOptions set.
type envConfig struct {
	server  server.Config
	cache   tokens.CacheConfig
	tls     bool
	noCache bool
	timeout time.Duration
	wrap    func(http.Handler) http.Handler

	jwks       jwksMode
	jwtConfig  func(*tokens.JWTConfig)
	tokenClock func() time.Time // the fake's and the JWT verifier's clock; nil: time.Now
}

// withServer edits the server.Config.
func withServer(f func(*server.Config)) envOption { return func(c *envConfig) { f(&c.server) } }

// withTLS serves https and wss.
func withTLS() envOption { return func(c *envConfig) { c.tls = true } }

// withHandler serves wrap(server) instead of the server: test pages and
// endpoints beside the server's routes, on its origin.
func withHandler(wrap func(http.Handler) http.Handler) envOption {
	return func(c *envConfig) { c.wrap = wrap }
}

// withIntrospectTimeout sets the introspection client's timeout.
func withIntrospectTimeout(d time.Duration) envOption {
	return func(c *envConfig) { c.timeout = d }
}

// withRecheck sets Config.Recheck.
func withRecheck(d time.Duration) envOption {
	return withServer(func(c *server.Config) { c.Recheck = d })
}

// jwksMode says how an env validates tokens. With a JWK set, the fake
// plays a provider that signs JWTs and publishes its keys, and the server
// verifies them as cmd/wsauth does with -issuer: a tokens.Kinds behind the
// cache, its rechecks by Kinds.Recheck.
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

// newEnv starts the fake token service and a server in front of it, as
// the options say, or, in conformance mode, talks to the target
// (remote_test.go).
func newEnv(t testing.TB, opts ...envOption) *env {
	t.Helper()
	var cfg envConfig
	for _, o := range opts {
		o(&cfg)
	}
	if remote() {
		return newRemoteEnv(t, cfg)
	}
	e := &env{t: t, log: &testLog{t: t}, rechecks: new(atomic.Int64), jwksDown: new(atomic.Bool)}
	// The fake's issuer is its own URL, as discovery requires.
	svcTS := httptest.NewUnstartedServer(nil)
	e.svcURL = "http://" + svcTS.Listener.Addr().String()
	svc := faketokensvc.New(faketokensvc.Options{ClientID: "wsauth", ClientSecret: "test-secret", Issuer: e.svcURL, Now: cfg.tokenClock})
	e.svc = svc
	svcTS.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == jwksPath && e.jwksDown.Load() {
			http.Error(w, "down for the test", http.StatusServiceUnavailable)
			return
		}
		svc.Handler().ServeHTTP(w, r)
	})
	svcTS.Start()
	e.closeTokenService = sync.OnceFunc(svcTS.Close)

	in := &tokens.Introspector{URL: svcTS.URL + "/introspect", ClientID: "wsauth", ClientSecret: "test-secret",
		HTTPClient: svcTS.Client(), Timeout: cfg.timeout}
	if cfg.server.FailureBurst == 0 {
		// Every test client is 127.0.0.1: tests that count failures would
		// trip each other's throttle. Tests of the throttle set it.
		cfg.server.FailureBurst = -1
	}
	var v tokens.Validator = in
	if cfg.jwks != noJWKS {
		e.jwt = svc
		v = e.kinds(&cfg, in, svcTS.Client())
	}
	cfg.server.Validator = tokens.NewCache(v, cfg.cache)
	cfg.server.Logger = slog.New(slog.NewTextHandler(e.log, &slog.HandlerOptions{Level: slog.LevelDebug}))
	e.srv = server.New(cfg.server)
	var h http.Handler = e.srv
	if cfg.wrap != nil {
		h = cfg.wrap(e.srv)
	}
	e.serve(h, cfg.tls, e.closeTokenService)
	return e
}

// serve puts h, which fronts e.srv, on an httptest server and tears both
// down when the test ends: the server's WebSockets first (httptest does not
// wait for hijacked connections), then the listener, then after (the token
// system), then the log.
func (e *env) serve(h http.Handler, useTLS bool, after func()) {
	if useTLS {
		e.ts = httptest.NewTLSServer(h)
		e.dialer.TLS = &tls.Config{RootCAs: e.ts.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs}
	} else {
		e.ts = httptest.NewServer(h)
	}
	e.URL = e.ts.URL
	e.client = e.ts.Client()
	e.client.Timeout = 10 * time.Second
	e.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		e.srv.Shutdown(ctx)
		e.ts.Close()
		after()
		e.log.mu.Lock()
		e.log.done = true
		e.log.mu.Unlock()
	})
}

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

// newDemoEnv is newEnv in demo mode: POST /dev/login exists.
func newDemoEnv(t testing.TB, opts ...envOption) *env {
	t.Helper()
	di := &demoIssuer{}
	e := newEnv(t, append(opts, withServer(func(c *server.Config) { c.DemoIssuer = di }))...)
	di.svc = e.svc
	return e
}

// demoIssuer is the server's demo-mode issuer, as cmd/wsauth wires it: the
// fake token service, recording what it issues for the no-token-in-logs
// check.
type demoIssuer struct{ svc tokenService } // the in-process fake: demo mode needs withServer

func (d *demoIssuer) Issue(sub string, scopes []string, ttl time.Duration) (string, time.Time) {
	tok, exp := d.svc.Issue(sub, scopes, ttl)
	rememberSecret(tok)
	return tok, exp
}

// peer starts a second server in front of e's token service, with its own
// validation cache, registry, log and random ticket key, torn down when the
// test ends.
func (e *env) peer(opts ...envOption) *env {
	e.t.Helper()
	var cfg envConfig
	for _, o := range opts {
		o(&cfg)
	}
	p := &env{t: e.t, svc: e.svc, svcURL: e.svcURL, log: &testLog{t: e.t}}
	tr := &http.Transport{}
	in := &tokens.Introspector{URL: e.svcURL + "/introspect", ClientID: "wsauth", ClientSecret: "test-secret",
		HTTPClient: &http.Client{Transport: tr}}
	cfg.server.Validator = tokens.NewCache(in, cfg.cache)
	cfg.server.Logger = slog.New(slog.NewTextHandler(p.log, &slog.HandlerOptions{Level: slog.LevelDebug})).With("instance", "B")
	p.srv = server.New(cfg.server)
	p.serve(p.srv, false, tr.CloseIdleConnections)
	return p
}

// issue asks the fake for a token and remembers it for the log check.
func (e *env) issue(sub string, ttl time.Duration, scopes ...string) string {
	tok, _ := e.issueExp(sub, ttl, scopes...)
	return tok
}

// issueExp is e.issue that also returns the token's expiry.
func (e *env) issueExp(sub string, ttl time.Duration, scopes ...string) (string, time.Time) {
	if e.jwt != nil {
		// An opaque token for this API: with a JWK set, introspection
		// checks the audience too.
		return e.issueTokenExp(faketokensvc.TokenRequest{Sub: sub, Scopes: scopes, TTL: ttl, Audience: audience})
	}
	tok, exp := e.svc.Issue(sub, scopes, ttl)
	rememberSecret(tok)
	return tok, exp
}

// issueToken mints the token req describes, and remembers it for the
// check that no token reaches a log.
func (e *env) issueToken(req faketokensvc.TokenRequest) string {
	e.t.Helper()
	tok, _ := e.issueTokenExp(req)
	return tok
}

// issueTokenExp is issueToken that also returns the token's expiry.
func (e *env) issueTokenExp(req faketokensvc.TokenRequest) (string, time.Time) {
	e.t.Helper()
	tok, exp, err := e.jwt.IssueToken(req)
	if err != nil {
		e.t.Fatalf("IssueToken(%+v): %v", req, err)
	}
	rememberSecret(tok)
	return tok, exp
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

// randomToken is a token of the fake's shape that no one issued.
func randomToken() string {
	b := make([]byte, 32)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// mintTicket asks for a ticket with token as a bearer and returns it.
func (e *env) mintTicket(t testing.TB, token string) string {
	t.Helper()
	status, ticket, body := mintTicketFor(e, token)
	if status != 200 {
		t.Fatalf("POST /api/ws-ticket: status = %d (%s); want 200", status, body)
	}
	return ticket
}

// mintTicketFor asks POST /api/ws-ticket for a ticket with token, and
// returns the status, the ticket and the body.
func mintTicketFor(e *env, token string) (int, string, string) {
	e.t.Helper()
	h := bearer(token)
	h.Set("Content-Type", "application/json")
	status, _, body := e.post("/api/ws-ticket", h, "{}")
	var m struct {
		Ticket string `json:"ticket"`
	}
	json.Unmarshal([]byte(body), &m)
	if m.Ticket != "" {
		rememberSecret(m.Ticket)
	}
	return status, m.Ticket, body
}

// get sends GET path with headers h and returns status, headers and body.
func (e *env) get(path string, h http.Header) (int, http.Header, string) {
	e.t.Helper()
	return e.do("GET", path, h, nil)
}

// post sends POST path with headers h and body, and returns status,
// headers and body.
func (e *env) post(path string, h http.Header, body string) (int, http.Header, string) {
	e.t.Helper()
	return e.do("POST", path, h, strings.NewReader(body))
}

// do sends method path with a copy of headers h and body, and returns
// status, headers and body.
func (e *env) do(method, path string, h http.Header, body io.Reader) (int, http.Header, string) {
	e.t.Helper()
	req, _ := http.NewRequest(method, e.URL+path, body)
	for k, vs := range h {
		req.Header[k] = slices.Clone(vs)
	}
	resp, err := e.client.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatalf("%s %s: reading body: %v", method, path, err)
	}
	return resp.StatusCode, resp.Header, string(b)
}

// dial opens a WebSocket to path with headers h.
func (e *env) dial(path string, h http.Header) (*wsConn, *http.Response, string) {
	e.t.Helper()
	c, resp, body, err := e.dialer.Dial(e.URL+path, h)
	if err != nil {
		e.t.Fatalf("dial %s: %v", path, err)
	}
	if c != nil {
		e.t.Cleanup(func() { c.nc.Close() })
	}
	return c, resp, body
}

// httpClient is for requests that no env makes: to another server, or
// the fake's admin API.
var httpClient = &http.Client{Timeout: 10 * time.Second}

// testLog writes server logs to t.Logf and to allLogs, and drops lines that
// arrive after the test ended.
type testLog struct {
	mu    sync.Mutex
	t     testing.TB
	done  bool
	lines []string
}

func (l *testLog) Write(p []byte) (int, error) {
	leakMu.Lock()
	allLogs.Write(p)
	leakMu.Unlock()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, string(p))
	if !l.done {
		l.t.Logf("server: %s", strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

// logged reports whether one line of this server's log holds every one of
// parts.
func (l *testLog) logged(parts ...string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, line := range l.lines {
		all := true
		for _, p := range parts {
			all = all && strings.Contains(line, p)
		}
		if all {
			return true
		}
	}
	return false
}

// count returns how many lines the server has logged, and since those
// logged after the first n.
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

// testClock is a clock that tests move.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func newTestClock() *testClock { return &testClock{t: time.Now()} }

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// offsetClock is the real clock plus an offset that tests advance: unlike
// testClock it moves by itself, as timers and token lifetimes need.
type offsetClock struct{ offset atomic.Int64 }

func (c *offsetClock) Now() time.Time { return time.Now().Add(time.Duration(c.offset.Load())) }

func (c *offsetClock) Advance(d time.Duration) { c.offset.Add(int64(d)) }

// slack is how late a timed event may arrive on a loaded machine (two
// cores, -race, other tests running).
const slack = time.Second

// waitFor polls cond until it holds or d passes.
func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		<-tick.C
	}
}
