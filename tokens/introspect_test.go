package tokens_test

import (
	"context"
	"errors"
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

// env is a fake token service on a real socket and an Introspector for it.
type env struct {
	svc   *faketokensvc.Service
	url   string
	in    *tokens.Introspector
	clock *clock
}

func newEnv(t testing.TB) *env {
	t.Helper()
	clk := newClock()
	svc := faketokensvc.New(faketokensvc.Options{ClientID: "wsauth", ClientSecret: "s3cret", Now: clk.Now})
	ts := httptest.NewServer(svc.Handler())
	t.Cleanup(ts.Close)
	return &env{
		svc:   svc,
		url:   ts.URL,
		clock: clk,
		in: &tokens.Introspector{
			URL:          ts.URL + "/introspect",
			ClientID:     "wsauth",
			ClientSecret: "s3cret",
			HTTPClient:   ts.Client(),
			Timeout:      5 * time.Second, // tests of the timeout set their own
			Now:          clk.Now,
		},
	}
}

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
		{"active, no exp", `{"active":true,"sub":"alice"}`, nil},
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
		w.Write([]byte(`{"active":true,"sub":"alice"}`))
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
