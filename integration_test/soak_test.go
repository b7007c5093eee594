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
	leakMu.Lock()
	issued = append(issued, tok)
	leakMu.Unlock()
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
// system flaps through outages, slowness, errors and hang-ups. It checks
// that no unknown, expired or revoked token is ever accepted (beyond the
// documented cache TTL for a revoked one), that every revoked or expired
// token's sockets close with 3000 and the right reason, that nothing leaks,
// and that the heap returns near its start. It prints a summary.
func TestSoak(t *testing.T) {
	if *soakFor == 0 {
		t.Skip("soak is opt-in: go test ./integration_test -run Soak -soak=5m")
	}
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err == nil && lim.Cur < lim.Max {
		lim.Cur = lim.Max
		syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
	}

	f := newFlakySvc(t)
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 64
	in := &tokens.Introspector{URL: "http://" + f.addr + "/introspect", ClientID: "wsauth", ClientSecret: "test-secret",
		HTTPClient: &http.Client{Transport: tr}, Timeout: soakTimeout}
	logs := &tokenLogCheck{tokens: make(map[string]bool)}
	srv := server.New(server.Config{
		Validator:    tokens.NewCache(in, tokens.CacheConfig{TTL: soakCacheTTL, MaxEntries: 20_000}),
		Logger:       slog.New(slog.NewTextHandler(logs, nil)),
		Recheck:      soakRecheck,
		FailureBurst: -1, // every client is 127.0.0.1; the probes would throttle the rest
	})
	ts := httptest.NewServer(srv)
	var dialer wsDialer
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		ts.Close()
		tr.CloseIdleConnections()
	})

	runtime.GC()
	runtime.GC()
	var m0 runtime.MemStats
	runtime.ReadMemStats(&m0)
	g0 := runtime.NumGoroutine()
	start := time.Now()
	end := start.Add(*soakFor)

	var (
		mu        sync.Mutex
		conns     []*soakConn
		live      = map[*soakConn]bool{}
		byToken   = map[*soakToken][]*soakConn{}
		revoked   []*soakToken // revoked after use, for the late probes
		statuses  = map[int]int{}
		probes    = map[string]int{}
		falseAcc  []string
		peak      int
		nTokens   int
		faultLog  = map[string]int{}
		subjectNo atomic.Int64
	)
	issue := func(ttl time.Duration) *soakToken {
		sub := fmt.Sprintf("u%d", subjectNo.Add(1)%500)
		v, exp := f.svc.Issue(sub, []string{"ws"}, ttl)
		logs.add(v)
		mu.Lock()
		nTokens++
		mu.Unlock()
		return &soakToken{value: v, sub: sub, exp: exp}
	}
	// open dials one connection with tok; it returns false on a refusal.
	open := func(tok *soakToken) bool {
		c, resp, _, err := dialer.Dial(ts.URL+"/ws", bearer(tok.value))
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			statuses[-1]++
			return false
		}
		statuses[resp.StatusCode]++
		if c == nil {
			return false
		}
		sc := &soakConn{tok: tok, c: c, closed: make(chan struct{})}
		conns = append(conns, sc)
		live[sc] = true
		byToken[tok] = append(byToken[tok], sc)
		peak = max(peak, len(live))
		go func() {
			defer close(sc.closed)
			for {
				_, err := c.Read(time.Until(end) + time.Minute)
				var ce *wsCloseError
				if errors.As(err, &ce) {
					sc.code, sc.reason = ce.Code, ce.Reason
				}
				if err != nil {
					sc.closedAt, sc.readErr = time.Now(), err
					c.nc.Close()
					mu.Lock()
					delete(live, sc)
					sc.c = nil // its buffers are not the server's heap
					mu.Unlock()
					return
				}
			}
		}()
		return true
	}
	// newConn opens a connection with a new token: most live long, some
	// expire during the soak, a tenth share a live connection's token.
	newConn := func(rng *rand.Rand) {
		var tok *soakToken
		if rng.IntN(10) == 0 {
			mu.Lock()
			for sc := range live {
				if sc.tok.revokedAt.IsZero() && time.Until(sc.tok.exp) > 10*time.Second {
					tok = sc.tok
				}
				break
			}
			mu.Unlock()
		}
		if tok == nil {
			ttl := time.Hour
			if rng.IntN(4) == 0 {
				ttl = time.Duration(3+rng.IntN(30)) * time.Second
			}
			tok = issue(ttl)
		}
		open(tok)
	}
	// probe dials with a token that must be refused and records a 101.
	probe := func(kind, tok string) {
		c, resp, _, err := dialer.Dial(ts.URL+"/ws", bearer(tok))
		mu.Lock()
		defer mu.Unlock()
		probes[kind]++
		if err == nil && (c != nil || resp.StatusCode == 200) {
			falseAcc = append(falseAcc, kind)
		}
		if c != nil {
			c.nc.Close()
		}
	}

	// The token system flaps: healthy most of each cycle, then each fault.
	stopFlap := make(chan struct{})
	flapDone := make(chan struct{})
	go func() {
		defer close(flapDone)
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
			case <-stopFlap:
				return
			case <-tick.C:
			}
			fl := faults[i%len(faults)]
			fl.on()
			mu.Lock()
			faultLog[fl.name]++
			mu.Unlock()
			select {
			case <-stopFlap:
			case <-time.After(2 * time.Second):
			}
			if fl.off != nil {
				fl.off()
			} else {
				f.svc.SetFaults(faketokensvc.Faults{})
			}
		}
	}()

	// Fill up, in parallel.
	var wg sync.WaitGroup
	for w := range 16 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 1))
			for range soakConns / 16 {
				newConn(rng)
			}
		})
	}
	wg.Wait()

	// Churn until the end: revoke, keep the pool full, probe.
	rng := rand.New(rand.NewPCG(42, 42))
	tick := time.NewTicker(20 * time.Millisecond)
	for now := range tick.C {
		if now.After(end) {
			break
		}
		mu.Lock()
		n := len(live)
		var victim *soakToken
		for sc := range live {
			if sc.tok.revokedAt.IsZero() && rng.IntN(3) == 0 {
				victim = sc.tok
				break
			}
		}
		if victim != nil {
			victim.revokedAt = time.Now()
			revoked = append(revoked, victim)
		}
		var late *soakToken
		if len(revoked) > 0 {
			if r := revoked[rng.IntN(len(revoked))]; time.Since(r.revokedAt) > soakCacheTTL+time.Second {
				late = r
			}
		}
		mu.Unlock()
		if victim != nil {
			f.svc.Revoke(victim.value)
		}
		for range min(soakConns-n, 20) {
			newConn(rng)
		}
		probe("unknown", randomToken())
		expired := issue(-time.Second)
		probe("expired", expired.value)
		pre := issue(time.Hour)
		f.svc.Revoke(pre.value)
		probe("revoked before use", pre.value)
		if late != nil {
			probe("revoked past the cache TTL", late.value)
		}
	}
	tick.Stop()
	close(stopFlap)
	<-flapDone
	f.svc.SetFaults(faketokensvc.Faults{})

	// Healthy again: every revoked token's sockets close at the next
	// rechecks, every expired token's have closed at their expiry.
	settle := time.Now().Add(5 * soakRecheck)
	waitFor(t, 30*time.Second, "revoked and expired tokens' sockets to close", func() bool {
		mu.Lock()
		defer mu.Unlock()
		for sc := range live {
			if !sc.tok.revokedAt.IsZero() || time.Now().After(sc.tok.exp) {
				return false
			}
		}
		return time.Now().After(settle)
	})

	// Judge every connection.
	mu.Lock()
	snapshot := conns
	mu.Unlock()
	var closedRevoked, closedExpired, revokedReasonExpired, wrongClose, stillOpen, lateExpiry int
	var worstExpiry time.Duration
	for _, sc := range snapshot {
		select {
		case <-sc.closed:
		default:
			stillOpen++
			continue
		}
		tok := sc.tok
		// The fake says "exp" in whole seconds: the server's deadline is
		// the second the token's expiry falls in.
		expired := !tok.exp.Truncate(time.Second).After(sc.closedAt)
		switch {
		case sc.code == server.CloseUnauthorized && sc.reason == "token revoked" && !tok.revokedAt.IsZero():
			closedRevoked++
		case sc.code == server.CloseUnauthorized && sc.reason == "token revoked" && expired:
			// A recheck answered between the second "exp" names and the
			// expiry timer firing: the token system calls an expired token
			// inactive, as it does a revoked one (RFC 7662 §2.2).
			revokedReasonExpired++
		case sc.code == server.CloseUnauthorized && sc.reason == "token expired" && expired:
			closedExpired++
			d := sc.closedAt.Sub(tok.exp)
			worstExpiry = max(worstExpiry, d)
			if d > 2*time.Second {
				lateExpiry++
			}
		default:
			wrongClose++
			if wrongClose <= 5 {
				t.Errorf("connection of %s (exp %v, revoked %v) closed with %d %q (%v); want 3000 revoked or expired",
					tok.sub, tok.exp.Format(time.TimeOnly), !tok.revokedAt.IsZero(), sc.code, sc.reason, sc.readErr)
			}
		}
	}

	// Close the rest and count what is left.
	mu.Lock()
	rest := make([]*wsConn, 0, len(live))
	for sc := range live {
		rest = append(rest, sc.c)
	}
	mu.Unlock()
	for _, c := range rest {
		wg.Go(c.Close)
	}
	wg.Wait()
	for _, sc := range snapshot {
		<-sc.closed
	}
	waitFor(t, 10*time.Second, "the server to release every WebSocket", func() bool { return srv.OpenConns() == 0 })
	waitFor(t, 10*time.Second, "connections to the token system to close", func() bool {
		// Validations detached from their request may still return
		// connections to the pool.
		tr.CloseIdleConnections()
		return f.open.Load() == 0
	})
	var g1 int
	waitFor(t, 10*time.Second, "goroutines to return to their start", func() bool {
		g1 = runtime.NumGoroutine()
		return g1 <= g0+5
	})

	// What the soak itself keeps (conns, tokens, the fake's grants) is
	// still reachable here; the heap bound allows for it.
	runtime.GC()
	runtime.GC() // sync.Pools keep a victim generation through one GC
	var m1 runtime.MemStats
	runtime.ReadMemStats(&m1)
	mu.Lock()
	defer mu.Unlock()
	logs.mu.Lock()
	defer logs.mu.Unlock()
	heapGrowth := int64(m1.HeapAlloc) - int64(m0.HeapAlloc)
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
		*soakFor, len(conns), peak, stillOpen, nTokens, len(revoked), f.svc.Introspections(),
		statuses, probes, len(falseAcc), closedRevoked, closedExpired, worstExpiry, revokedReasonExpired, wrongClose, faultLog,
		g0, g1, mib(m0.HeapAlloc), mib(m1.HeapAlloc), float64(heapGrowth)/(1<<20), mib(m1.Sys), logs.lines, logs.leaks)

	if len(falseAcc) > 0 {
		t.Errorf("false accepts: %d (%v); want 0", len(falseAcc), falseAcc[:min(len(falseAcc), 10)])
	}
	if wrongClose > 0 {
		t.Errorf("%d connections closed with the wrong code or reason; want 0", wrongClose)
	}
	if lateExpiry > 0 {
		t.Errorf("%d connections closed more than 2s after their token expired; want 0", lateExpiry)
	}
	if logs.leaks > 0 {
		t.Errorf("%d log lines hold a token; want 0", logs.leaks)
	}
	if len(conns) < soakConns {
		t.Errorf("opened %d connections; want at least %d", len(conns), soakConns)
	}
	// Everything the soak holds on to: its records (a few hundred bytes a
	// connection and token), the fake's grants (~200 bytes a token) and the
	// cache (MaxEntries × ~250 bytes): allow 1 KiB a token plus 8 MiB.
	if bound := int64(nTokens)<<10 + 8<<20; heapGrowth > bound {
		t.Errorf("heap grew by %.1f MiB; want at most %.1f MiB", float64(heapGrowth)/(1<<20), float64(bound)/(1<<20))
	}
}

func mib(n uint64) float64 { return float64(n) / (1 << 20) }
