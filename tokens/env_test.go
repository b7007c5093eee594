package tokens_test

import (
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	faketokensvc "wsauth/fake_tokensvc"
	"wsauth/tokens"
)

// clock is a settable clock shared by the fake and the code under test.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *clock { return &clock{now: time.Unix(1_800_000_000, 0)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// env is a fake token service on a real socket, whose issuer is its URL,
// and an Introspector for it. Its JWK set can be taken down, and it
// records the path of every request it serves.
type env struct {
	svc   *faketokensvc.Service
	url   string
	in    *tokens.Introspector
	clock *clock
	http  *http.Client

	jwksDown atomic.Bool // GET /.well-known/jwks.json answers 503 while set
	mu       sync.Mutex
	paths    []string
}

func newEnv(t testing.TB) *env {
	t.Helper()
	clk := newClock()
	ts := httptest.NewUnstartedServer(nil)
	url := "http://" + ts.Listener.Addr().String()
	svc := faketokensvc.New(faketokensvc.Options{ClientID: "wsauth", ClientSecret: "s3cret", Now: clk.Now, Issuer: url})
	e := &env{svc: svc, url: url, clock: clk}
	ts.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e.mu.Lock()
		e.paths = append(e.paths, r.URL.Path)
		e.mu.Unlock()
		if r.URL.Path == jwksPath && e.jwksDown.Load() {
			http.Error(w, "down for the test", http.StatusServiceUnavailable)
			return
		}
		svc.Handler().ServeHTTP(w, r)
	})
	ts.Start()
	t.Cleanup(ts.Close)
	e.http = ts.Client()
	e.in = &tokens.Introspector{
		URL:          ts.URL + "/introspect",
		ClientID:     "wsauth",
		ClientSecret: "s3cret",
		HTTPClient:   ts.Client(),
		Timeout:      5 * time.Second, // tests of the timeout set their own
		Now:          clk.Now,
	}
	return e
}

// jwksPath is where the fake publishes its JWK set.
const jwksPath = "/.well-known/jwks.json"

// requests returns the paths of the requests served so far.
func (e *env) requests() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.paths)
}

// verifier returns a JWTVerifier for the fake's tokens, on the env's clock,
// edited by edit.
func (e *env) verifier(t testing.TB, edit ...func(*tokens.JWTConfig)) *tokens.JWTVerifier {
	t.Helper()
	cfg := tokens.JWTConfig{
		JWKSURL:    e.url + jwksPath,
		Issuer:     e.url,
		Audience:   "wsauth-api",
		HTTPClient: e.http,
		Timeout:    5 * time.Second,
		Now:        e.clock.Now,
	}
	for _, f := range edit {
		f(&cfg)
	}
	v, err := tokens.NewJWTVerifier(cfg)
	if err != nil {
		t.Fatalf("NewJWTVerifier: %v", err)
	}
	return v
}
