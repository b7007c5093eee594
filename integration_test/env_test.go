// Package integration_test runs the wsauth server and the fake token service
// on real sockets and checks them from outside, as clients see them.
package integration_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
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

func TestMain(m *testing.M) {
	code := m.Run()
	if code == 0 {
		if leaked := leakedGoroutines(5 * time.Second); leaked != "" {
			fmt.Fprintf(os.Stderr, "goroutines left after the tests:\n%s\n", leaked)
			code = 1
		}
		if err := tokensInLogs(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			code = 1
		}
	}
	reportSkippedSuites()
	os.Exit(code)
}

// skippedSuites names the suites that skipped for want of a tool (Chromium,
// nginx), with how to enable each.
var (
	skippedMu     sync.Mutex
	skippedSuites = map[string]string{}
)

// skipSuite skips t for want of a tool and remembers why, for
// reportSkippedSuites.
func skipSuite(t *testing.T, suite, msg string) {
	t.Helper()
	skippedMu.Lock()
	skippedSuites[suite] = msg
	skippedMu.Unlock()
	t.Skip(msg)
}

// reportSkippedSuites says, one line per suite, which suites did not run
// and how to run them. `go test ./...` shows nothing of a passing package
// but its "ok" line, so a skip would pass unseen: the line goes to the
// terminal (/dev/tty) when there is one, else to stderr, where -v and a
// failing run show it.
func reportSkippedSuites() {
	skippedMu.Lock()
	defer skippedMu.Unlock()
	if len(skippedSuites) == 0 {
		return
	}
	var w io.Writer = os.Stderr
	if tty, err := os.OpenFile("/dev/tty", os.O_WRONLY, 0); err == nil {
		defer tty.Close()
		w = tty
	}
	for _, suite := range slices.Sorted(maps.Keys(skippedSuites)) {
		fmt.Fprintf(w, "wsauth/integration_test: %s suite SKIPPED: %s\n", suite, skippedSuites[suite])
	}
}

// leakedGoroutines waits up to d for the goroutines of servers and
// connections to end, and returns the stacks of those that did not.
func leakedGoroutines(d time.Duration) string {
	deadline := time.Now().Add(d)
	for {
		var leaked []string
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		for g := range strings.SplitSeq(string(buf), "\n\n") {
			if strings.Contains(g, "wsauth/") && !strings.Contains(g, "leakedGoroutines") && !strings.Contains(g, "TestMain") ||
				strings.Contains(g, "net/http.(*conn).serve") || strings.Contains(g, "net/http.(*persistConn)") {
				leaked = append(leaked, g)
			}
		}
		if len(leaked) == 0 {
			return ""
		}
		if time.Now().After(deadline) {
			return strings.Join(leaked, "\n\n")
		}
		<-time.After(50 * time.Millisecond) // polling with a deadline
	}
}

// Every token issued and every log line written by the suite, for the
// check that no token ever reaches a log.
var (
	leakMu     sync.Mutex
	issued     []string
	allLogs    strings.Builder
	httpClient = &http.Client{Timeout: 10 * time.Second}
)

func tokensInLogs() error {
	if remote() {
		return nil // the target's logs are not ours to read
	}
	leakMu.Lock()
	defer leakMu.Unlock()
	logs := allLogs.String()
	if len(issued) > 0 && logs == "" {
		// Tokens were used but nothing was logged: the check would be empty.
		return fmt.Errorf("token-leak check saw %d tokens and no logs", len(issued))
	}
	for _, tok := range issued {
		if strings.Contains(logs, tok) {
			return fmt.Errorf("a token appears in the server logs")
		}
	}
	return nil
}

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

// env is a fake token service and a wsauth server in front of it, both on
// real sockets, torn down when the test ends.
type env struct {
	t      testing.TB
	svc    tokenService // *faketokensvc.Service, or the remote fake in conformance mode (remote_test.go)
	svcURL string       // the fake's URL, and its issuer
	// In an env made withJWKS (jwt_env_test.go): the fake, the number of
	// rechecks asked of the validator, and a switch that makes the fake
	// answer 503 to GET /.well-known/jwks.json.
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

type envOption func(*envConfig)

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

func withServer(f func(*server.Config)) envOption { return func(c *envConfig) { f(&c.server) } }
func withTLS() envOption                          { return func(c *envConfig) { c.tls = true } }

// withHandler serves wrap(server) instead of the server: test pages and
// endpoints beside the server's routes, on its origin.
func withHandler(wrap func(http.Handler) http.Handler) envOption {
	return func(c *envConfig) { c.wrap = wrap }
}
func withIntrospectTimeout(d time.Duration) envOption {
	return func(c *envConfig) { c.timeout = d }
}

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

// issue asks the fake for a token and remembers it for the log check.
func (e *env) issue(sub string, ttl time.Duration, scopes ...string) string {
	if e.jwt != nil {
		// An opaque token for this API: with a JWK set, introspection
		// checks the audience too.
		return e.issueToken(faketokensvc.TokenRequest{Sub: sub, Scopes: scopes, TTL: ttl, Audience: audience})
	}
	tok, _ := e.svc.Issue(sub, scopes, ttl)
	leakMu.Lock()
	issued = append(issued, tok)
	leakMu.Unlock()
	return tok
}

// get sends GET path with headers h and returns status, headers and body.
func (e *env) get(path string, h http.Header) (int, http.Header, string) {
	e.t.Helper()
	req, _ := http.NewRequest("GET", e.URL+path, nil)
	for k, vs := range h {
		req.Header[k] = slices.Clone(vs)
	}
	resp, err := e.client.Do(req)
	if err != nil {
		e.t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatalf("GET %s: reading body: %v", path, err)
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
