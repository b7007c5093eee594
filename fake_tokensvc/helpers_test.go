package faketokensvc_test

import (
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	faketokensvc "wsauth/fake_tokensvc"
)

// TestMain fails the run if any test leaves a server, connection or handler
// goroutine behind.
func TestMain(m *testing.M) {
	code := m.Run()
	if code == 0 {
		if leaked := leakedGoroutines(); leaked != "" {
			fmt.Fprintf(os.Stderr, "leaked goroutines:\n%s\n", leaked)
			code = 1
		}
	}
	os.Exit(code)
}

// leakedGoroutines polls for up to 5s, as connections wind down, and returns
// the stacks of goroutines still in net/http or this package.
func leakedGoroutines() string {
	deadline := time.Now().Add(5 * time.Second)
	tick := time.NewTicker(10 * time.Millisecond) // polling for shutdown, with a deadline
	defer tick.Stop()
	for {
		buf := make([]byte, 1<<20)
		stacks := strings.Split(string(buf[:runtime.Stack(buf, true)]), "\n\n")[1:] // [0] is this goroutine
		var leaked []string
		for _, g := range stacks {
			if strings.Contains(g, "net/http.") || strings.Contains(g, "fake_tokensvc") {
				leaked = append(leaked, g)
			}
		}
		if len(leaked) == 0 || time.Now().After(deadline) {
			return strings.Join(leaked, "\n\n")
		}
		<-tick.C
	}
}

// clock is an injectable clock that moves only when told to.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// epoch is where every test clock starts: 2030-01-01T00:00:00Z.
var epoch = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)

type env struct {
	svc   *faketokensvc.Service
	srv   *httptest.Server
	clock *clock
}

// newEnv starts a Service with a test clock at epoch, edited by opts, on an
// httptest server whose error log goes to t.Logf; the server is closed when t
// ends.
func newEnv(t testing.TB, opts ...func(*faketokensvc.Options)) *env {
	t.Helper()
	clk := &clock{t: epoch}
	o := faketokensvc.Options{Now: clk.Now}
	for _, f := range opts {
		f(&o)
	}
	svc := faketokensvc.New(o)
	srv := httptest.NewUnstartedServer(svc.Handler())
	srv.Config.ErrorLog = log.New(tLogWriter{t}, "server: ", 0)
	srv.Start()
	t.Cleanup(srv.Close)
	return &env{svc: svc, srv: srv, clock: clk}
}

type tLogWriter struct{ t testing.TB }

func (w tLogWriter) Write(p []byte) (int, error) {
	w.t.Logf("%s", p)
	return len(p), nil
}

// do sends a request with the given body and Content-Type (none if empty)
// and returns the response with its body read and closed.
func (e *env) do(t testing.TB, method, path, contentType, body string, edit ...func(*http.Request)) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, e.srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for _, f := range edit {
		f(req)
	}
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading body: %v", method, path, err)
	}
	return resp, strings.TrimSpace(string(b))
}

// introspect asks /introspect about token with the default client credentials.
func (e *env) introspect(t testing.TB, token string) (status int, body string) {
	t.Helper()
	resp, body := e.do(t, "POST", "/introspect", formType, form(token), basicAuth("wsauth", "dev-secret"))
	return resp.StatusCode, body
}

const formType = "application/x-www-form-urlencoded"

func form(token string) string { return url.Values{"token": {token}}.Encode() }

func basicAuth(user, pass string) func(*http.Request) {
	return func(r *http.Request) { r.SetBasicAuth(user, pass) }
}

// activeBody is the exact introspection answer for a token issued at epoch
// to alice for "api ws" with a one-hour lifetime.
var activeBody = fmt.Sprintf(`{"active":true,"sub":"alice","scope":"api ws","exp":%d,"iat":%d,"client_id":"wsauth","token_type":"Bearer"}`,
	epoch.Add(time.Hour).Unix(), epoch.Unix())

const inactiveBody = `{"active":false}`
