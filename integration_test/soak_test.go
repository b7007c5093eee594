package integration_test

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"regexp"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	faketokensvc "wsauth/fake_tokensvc"
	"wsauth/server"
	"wsauth/tokens"
)

var soakFor = flag.Duration("soak", 0, "run TestSoak for this long (e.g. 5m); 0 skips it")

// Soak parameters.
const (
	soakConns      = 1000
	soakRecheck    = 500 * time.Millisecond
	soakCacheTTL   = 2 * time.Second
	soakTimeout    = 300 * time.Millisecond
	soakFaultCycle = 10 * time.Second
)

// soakConn is one client connection of the soak and what happened to it.
type soakConn struct {
	tok    *soakToken
	c      *wsConn       // nil once closed; guarded by the soak's mu
	closed chan struct{} // closed when the reader has seen the end

	code     int // the server's close code; 0 if none
	reason   string
	closedAt time.Time
	readErr  error
}

// soakToken is a token the soak issued, and its fate.
type soakToken struct {
	value     string
	sub       string
	exp       time.Time
	revokedAt time.Time // zero if never revoked; set before Revoke is called
}

// tokenLogCheck is a slog destination that checks each line for any token
// the soak issued, without keeping the logs.
type tokenLogCheck struct {
	mu     sync.Mutex
	tokens map[string]bool
	lines  int
	leaks  int
}

var tokenLike = regexp.MustCompile(`[A-Za-z0-9_-]{43}`)

func (l *tokenLogCheck) add(tok string) {
	l.mu.Lock()
	l.tokens[tok] = true
	l.mu.Unlock()
	rememberSecret(tok)
}

func (l *tokenLogCheck) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines++
	if l.lines <= 1000 {
		// A sample for TestMain's check, which keeps what it is given.
		leakMu.Lock()
		allLogs.Write(p)
		leakMu.Unlock()
	}
	for _, m := range tokenLike.FindAll(p, -1) {
		if l.tokens[string(m)] {
			l.leaks++
		}
	}
	return len(p), nil
}

// TestSoak (opt-in: -soak=5m) keeps soakConns WebSockets open for the
// given time while tokens are issued, revoked and expire and the token
// system flaps through outages, slowness, errors and hang-ups. Its subtests
// run in order, each a phase of the one soak: the churn itself, then what
// must hold after it: every revoked or expired token's sockets closed with
// 3000 and the right reason, no unknown, expired or revoked token accepted
// (beyond the documented cache TTL for a revoked one), nothing leaked and
// the heap back near its start, no token in the logs. It prints a summary.
func TestSoak(t *testing.T) {
	if *soakFor == 0 {
		t.Skip("soak is opt-in: go test ./integration_test -run Soak -soak=5m")
	}
	s := newSoak(t)
	// A phase that could not finish (t.Fatal) leaves nothing for the next
	// ones to judge: the soak stops there, as one function would.
	phase := func(name string, f func(t *testing.T)) bool {
		done := false
		t.Run(name, func(t *testing.T) { f(t); done = true })
		return done
	}
	if !phase("churn while the token system flaps", s.churn) ||
		!phase("revoked and expired tokens' sockets close with 3000", s.closes) {
		return
	}
	phase("no unknown, expired or revoked token accepted", s.noFalseAccepts)
	if !phase("nothing leaks", s.released) {
		return
	}
	phase("no token in the logs", s.noTokensLogged)
	s.summary(t)
}

// soak is the state of one TestSoak run: the server and fake under test,
// and what happened to every connection and token.
type soak struct {
	f      *flakySvc
	tr     *http.Transport
	logs   *tokenLogCheck
	srv    *server.Server
	ts     *httptest.Server
	dialer wsDialer

	m0, m1     runtime.MemStats // the heap at the start and the end
	g0, g1     int              // goroutines at the start and the end
	start, end time.Time

	mu        sync.Mutex
	conns     []*soakConn
	live      map[*soakConn]bool
	byToken   map[*soakToken][]*soakConn
	revoked   []*soakToken // revoked after use, for the late probes
	statuses  map[int]int
	probes    map[string]int
	falseAcc  []string
	peak      int
	nTokens   int
	faultLog  map[string]int
	subjectNo atomic.Int64

	// What the closes phase found.
	closedRevoked, closedExpired, revokedReasonExpired, wrongClose, stillOpen, lateExpiry int
	worstExpiry                                                                           time.Duration
}

// newSoak starts the fake token service and the server, and takes the
// heap and goroutine counts the end is compared with.
func newSoak(t *testing.T) *soak {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err == nil && lim.Cur < lim.Max {
		lim.Cur = lim.Max
		syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
	}

	s := &soak{
		live: map[*soakConn]bool{}, byToken: map[*soakToken][]*soakConn{},
		statuses: map[int]int{}, probes: map[string]int{}, faultLog: map[string]int{},
	}
	s.f = newFlakySvc(t)
	s.tr = http.DefaultTransport.(*http.Transport).Clone()
	s.tr.MaxIdleConnsPerHost = 64
	in := &tokens.Introspector{URL: "http://" + s.f.addr + "/introspect", ClientID: "wsauth", ClientSecret: "test-secret",
		HTTPClient: &http.Client{Transport: s.tr}, Timeout: soakTimeout}
	s.logs = &tokenLogCheck{tokens: make(map[string]bool)}
	s.srv = server.New(server.Config{
		Validator:    tokens.NewCache(in, tokens.CacheConfig{TTL: soakCacheTTL, MaxEntries: 20_000}),
		Logger:       slog.New(slog.NewTextHandler(s.logs, nil)),
		Recheck:      soakRecheck,
		FailureBurst: -1, // every client is 127.0.0.1; the probes would throttle the rest
	})
	s.ts = httptest.NewServer(s.srv)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		s.srv.Shutdown(ctx)
		s.ts.Close()
		s.tr.CloseIdleConnections()
	})

	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&s.m0)
	s.g0 = runtime.NumGoroutine()
	s.start = time.Now()
	s.end = s.start.Add(*soakFor)
	return s
}

// issue mints a token of a subject among 500, valid for ttl.
func (s *soak) issue(ttl time.Duration) *soakToken {
	sub := fmt.Sprintf("u%d", s.subjectNo.Add(1)%500)
	v, exp := s.f.svc.Issue(sub, []string{"ws"}, ttl)
	s.logs.add(v)
	s.mu.Lock()
	s.nTokens++
	s.mu.Unlock()
	return &soakToken{value: v, sub: sub, exp: exp}
}

// open dials one connection with tok; it returns false on a refusal.
func (s *soak) open(tok *soakToken) bool {
	c, resp, _, err := s.dialer.Dial(s.ts.URL+"/ws", bearer(tok.value))
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		s.statuses[-1]++
		return false
	}
	s.statuses[resp.StatusCode]++
	if c == nil {
		return false
	}
	sc := &soakConn{tok: tok, c: c, closed: make(chan struct{})}
	s.conns = append(s.conns, sc)
	s.live[sc] = true
	s.byToken[tok] = append(s.byToken[tok], sc)
	s.peak = max(s.peak, len(s.live))
	go func() {
		defer close(sc.closed)
		for {
			_, err := c.Read(time.Until(s.end) + time.Minute)
			var ce *wsCloseError
			if errors.As(err, &ce) {
				sc.code, sc.reason = ce.Code, ce.Reason
			}
			if err != nil {
				sc.closedAt, sc.readErr = time.Now(), err
				c.nc.Close()
				s.mu.Lock()
				delete(s.live, sc)
				sc.c = nil // its buffers are not the server's heap
				s.mu.Unlock()
				return
			}
		}
	}()
	return true
}

// newConn opens a connection with a new token: most live long, some
// expire during the soak, a tenth share a live connection's token.
func (s *soak) newConn(rng *rand.Rand) {
	var tok *soakToken
	if rng.IntN(10) == 0 {
		s.mu.Lock()
		for sc := range s.live {
			if sc.tok.revokedAt.IsZero() && time.Until(sc.tok.exp) > 10*time.Second {
				tok = sc.tok
			}
			break
		}
		s.mu.Unlock()
	}
	if tok == nil {
		ttl := time.Hour
		if rng.IntN(4) == 0 {
			ttl = time.Duration(3+rng.IntN(30)) * time.Second
		}
		tok = s.issue(ttl)
	}
	s.open(tok)
}

// probe dials with a token that must be refused and records a 101.
func (s *soak) probe(kind, tok string) {
	c, resp, _, err := s.dialer.Dial(s.ts.URL+"/ws", bearer(tok))
	s.mu.Lock()
	defer s.mu.Unlock()
	s.probes[kind]++
	if err == nil && (c != nil || resp.StatusCode == 200) {
		s.falseAcc = append(s.falseAcc, kind)
	}
	if c != nil {
		c.nc.Close()
	}
}

// flap makes the token system flap until stop is closed: healthy most of
// each cycle, then each fault in turn.
func (s *soak) flap(stop <-chan struct{}) {
	f := s.f
	faults := []struct {
		name    string
		on, off func()
	}{
		{"down", f.down, f.up},
		{"503", func() { f.svc.SetFaults(faketokensvc.Faults{Status: 503}) }, nil},
		{"slow", func() { f.svc.SetFaults(faketokensvc.Faults{Latency: 2 * soakTimeout}) }, nil},
		{"garbage", func() { f.svc.SetFaults(faketokensvc.Faults{Garbage: true}) }, nil},
		{"hang-up", func() { f.svc.SetFaults(faketokensvc.Faults{HangUp: true}) }, nil},
	}
	tick := time.NewTicker(soakFaultCycle)
	defer tick.Stop()
	for i := 0; ; i++ {
		select {
		case <-stop:
			return
		case <-tick.C:
		}
		fl := faults[i%len(faults)]
		fl.on()
		s.mu.Lock()
		s.faultLog[fl.name]++
		s.mu.Unlock()
		select {
		case <-stop:
		case <-time.After(2 * time.Second):
		}
		if fl.off != nil {
			fl.off()
		} else {
			f.svc.SetFaults(faketokensvc.Faults{})
		}
	}
}

// churn fills the pool in parallel, then until the end revokes tokens,
// keeps the pool full and probes with tokens that must be refused, while
// the token system flaps.
func (s *soak) churn(t *testing.T) {
	stopFlap := make(chan struct{})
	flapDone := make(chan struct{})
	go func() {
		defer close(flapDone)
		s.flap(stopFlap)
	}()

	var wg sync.WaitGroup
	for w := range 16 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 1))
			for range soakConns / 16 {
				s.newConn(rng)
			}
		})
	}
	wg.Wait()

	rng := rand.New(rand.NewPCG(42, 42))
	tick := time.NewTicker(20 * time.Millisecond)
	for now := range tick.C {
		if now.After(s.end) {
			break
		}
		s.mu.Lock()
		n := len(s.live)
		var victim *soakToken
		for sc := range s.live {
			if sc.tok.revokedAt.IsZero() && rng.IntN(3) == 0 {
				victim = sc.tok
				break
			}
		}
		if victim != nil {
			victim.revokedAt = time.Now()
			s.revoked = append(s.revoked, victim)
		}
		var late *soakToken
		if len(s.revoked) > 0 {
			if r := s.revoked[rng.IntN(len(s.revoked))]; time.Since(r.revokedAt) > soakCacheTTL+time.Second {
				late = r
			}
		}
		s.mu.Unlock()
		if victim != nil {
			s.f.svc.Revoke(victim.value)
		}
		for range min(soakConns-n, 20) {
			s.newConn(rng)
		}
		s.probe("unknown", randomToken())
		expired := s.issue(-time.Second)
		s.probe("expired", expired.value)
		pre := s.issue(time.Hour)
		s.f.svc.Revoke(pre.value)
		s.probe("revoked before use", pre.value)
		if late != nil {
			s.probe("revoked past the cache TTL", late.value)
		}
	}
	tick.Stop()
	close(stopFlap)
	<-flapDone
	s.f.svc.SetFaults(faketokensvc.Faults{})
}

// closes waits, with the token system healthy again, for every revoked
// token's sockets to close at the next rechecks and every expired token's
// at its expiry, then judges every connection's close.
func (s *soak) closes(t *testing.T) {
	settle := time.Now().Add(5 * soakRecheck)
	waitFor(t, 30*time.Second, "revoked and expired tokens' sockets to close", func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		for sc := range s.live {
			if !sc.tok.revokedAt.IsZero() || time.Now().After(sc.tok.exp) {
				return false
			}
		}
		return time.Now().After(settle)
	})

	s.mu.Lock()
	snapshot := s.conns
	s.mu.Unlock()
	for _, sc := range snapshot {
		select {
		case <-sc.closed:
		default:
			s.stillOpen++
			continue
		}
		tok := sc.tok
		// The fake says "exp" in whole seconds: the server's deadline is
		// the second the token's expiry falls in.
		expired := !tok.exp.Truncate(time.Second).After(sc.closedAt)
		switch {
		case sc.code == server.CloseUnauthorized && sc.reason == "token revoked" && !tok.revokedAt.IsZero():
			s.closedRevoked++
		case sc.code == server.CloseUnauthorized && sc.reason == "token revoked" && expired:
			// A recheck answered between the second "exp" names and the
			// expiry timer firing: the token system calls an expired token
			// inactive, as it does a revoked one (RFC 7662 §2.2).
			s.revokedReasonExpired++
		case sc.code == server.CloseUnauthorized && sc.reason == "token expired" && expired:
			s.closedExpired++
			d := sc.closedAt.Sub(tok.exp)
			s.worstExpiry = max(s.worstExpiry, d)
			if d > 2*time.Second {
				s.lateExpiry++
			}
		default:
			s.wrongClose++
			if s.wrongClose <= 5 {
				t.Errorf("connection of %s (exp %v, revoked %v) closed with %d %q (%v); want 3000 revoked or expired",
					tok.sub, tok.exp.Format(time.TimeOnly), !tok.revokedAt.IsZero(), sc.code, sc.reason, sc.readErr)
			}
		}
	}
	if s.wrongClose > 0 {
		t.Errorf("%d connections closed with the wrong code or reason; want 0", s.wrongClose)
	}
	if s.lateExpiry > 0 {
		t.Errorf("%d connections closed more than 2s after their token expired; want 0", s.lateExpiry)
	}
}

// noFalseAccepts: no probe with an unknown, expired or revoked token got
// a WebSocket or a 200.
func (s *soak) noFalseAccepts(t *testing.T) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.falseAcc) > 0 {
		t.Errorf("false accepts: %d (%v); want 0", len(s.falseAcc), s.falseAcc[:min(len(s.falseAcc), 10)])
	}
}

// released closes the connections still open, waits for the server, the
// token-system connections and the goroutines to return to their start,
// and bounds the heap's growth.
func (s *soak) released(t *testing.T) {
	s.mu.Lock()
	snapshot := s.conns
	rest := make([]*wsConn, 0, len(s.live))
	for sc := range s.live {
		rest = append(rest, sc.c)
	}
	s.mu.Unlock()
	var wg sync.WaitGroup
	for _, c := range rest {
		wg.Go(c.Close)
	}
	wg.Wait()
	for _, sc := range snapshot {
		<-sc.closed
	}
	waitFor(t, 10*time.Second, "the server to release every WebSocket", func() bool { return s.srv.OpenConns() == 0 })
	waitFor(t, 10*time.Second, "connections to the token system to close", func() bool {
		// Validations detached from their request may still return
		// connections to the pool.
		s.tr.CloseIdleConnections()
		return s.f.open.Load() == 0
	})
	waitFor(t, 10*time.Second, "goroutines to return to their start", func() bool {
		s.g1 = runtime.NumGoroutine()
		return s.g1 <= s.g0+5
	})

	// What the soak itself keeps (conns, tokens, the fake's grants) is
	// still reachable here; the heap bound allows for it.
	runtime.GC()
	runtime.GC() // sync.Pools keep a victim generation through one GC
	runtime.ReadMemStats(&s.m1)
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.conns) < soakConns {
		t.Errorf("opened %d connections; want at least %d", len(s.conns), soakConns)
	}
	// Everything the soak holds on to: its records (a few hundred bytes a
	// connection and token), the fake's grants (~200 bytes a token) and the
	// cache (MaxEntries × ~250 bytes): allow 1 KiB a token plus 8 MiB.
	if bound := int64(s.nTokens)<<10 + 8<<20; s.heapGrowth() > bound {
		t.Errorf("heap grew by %.1f MiB; want at most %.1f MiB", float64(s.heapGrowth())/(1<<20), float64(bound)/(1<<20))
	}
}

func (s *soak) heapGrowth() int64 { return int64(s.m1.HeapAlloc) - int64(s.m0.HeapAlloc) }

// noTokensLogged: no log line of the server held a token the soak issued.
func (s *soak) noTokensLogged(t *testing.T) {
	s.logs.mu.Lock()
	defer s.logs.mu.Unlock()
	if s.logs.leaks > 0 {
		t.Errorf("%d log lines hold a token; want 0", s.logs.leaks)
	}
}

// summary logs what the soak did and saw.
func (s *soak) summary(t *testing.T) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.logs.mu.Lock()
	defer s.logs.mu.Unlock()
	t.Logf(`soak summary (%v):
  connections opened %d, peak open %d, still open at the end %d (closed by the test)
  tokens issued %d, revoked after use %d, introspections %d
  handshakes by status %v
  refusal probes %v; false accepts %d
  closed 3000 "token revoked" %d, 3000 "token expired" %d (latest %v after expiry),
    expired but closed 3000 "token revoked" by a recheck %d, wrong or missing close %d
  token-system faults %v
  goroutines %d at start, %d at end
  heap %.1f MiB at start, %.1f MiB at end (growth %.1f MiB; the fake keeps every grant), sys %.1f MiB
  log lines %d, tokens in logs %d`,
		*soakFor, len(s.conns), s.peak, s.stillOpen, s.nTokens, len(s.revoked), s.f.svc.Introspections(),
		s.statuses, s.probes, len(s.falseAcc), s.closedRevoked, s.closedExpired, s.worstExpiry, s.revokedReasonExpired, s.wrongClose, s.faultLog,
		s.g0, s.g1, mib(s.m0.HeapAlloc), mib(s.m1.HeapAlloc), float64(s.heapGrowth())/(1<<20), mib(s.m1.Sys), s.logs.lines, s.logs.leaks)
}
