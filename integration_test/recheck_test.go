package integration_test

import (
	"errors"
	"net/http"
	"sync"
	"testing"
	"time"
	faketokensvc "wsauth/fake_tokensvc"
	"wsauth/server"
)

// TestRecheck: every Recheck the server validates open connections'
// tokens again: a revoked one closes with 3000, one that lost the ws scope
// with 3003, and a token system that is down closes nothing.
func TestRecheck(t *testing.T) {
	checkNoLeaks(t)
	const recheck = 200 * time.Millisecond

	t.Run("revoked token closes its connections with 3000, others stay", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, withRecheck(recheck))
		revoked, kept := e.issue("alice", time.Hour, "ws"), e.issue("bob", time.Hour, "ws")
		var gone, stay []*wsConn
		for range 3 {
			c, _ := openWS(t, e, revoked)
			gone = append(gone, c)
			c, _ = openWS(t, e, kept)
			stay = append(stay, c)
		}
		e.svc.Revoke(revoked)
		revokedAt := time.Now()
		for i, c := range gone {
			at := expectClose(t, c, recheck+slack+5*time.Second, server.CloseUnauthorized, "token revoked")
			if d := at.Sub(revokedAt); d > recheck+slack {
				t.Errorf("connection %d of the revoked token closed %v after the revocation; want within %v", i, d, recheck+slack)
			}
		}
		n := e.svc.Introspections()
		waitFor(t, 10*recheck+5*time.Second, "three more rechecks", func() bool { return e.svc.Introspections() >= n+3 })
		for _, c := range stay {
			expectEcho(t, c, "still authorized")
		}
	})

	t.Run("token that lost the ws scope closes with 3003", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, withRecheck(recheck))
		tok := e.issue("alice", time.Hour, "api", "ws")
		c, _ := openWS(t, e, tok)
		if !e.svc.SetScopes(tok, []string{"api"}) {
			t.Fatal("SetScopes: token unknown to the fake")
		}
		changedAt := time.Now()
		at := expectClose(t, c, recheck+slack+5*time.Second, server.CloseForbidden, "insufficient scope")
		if d := at.Sub(changedAt); d > recheck+slack {
			t.Errorf("close 3003 came %v after the scope was removed; want within %v", d, recheck+slack)
		}
	})

	t.Run("token system down keeps connections until expiry and warns", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, withRecheck(recheck))
		c, welcome := openWS(t, e, e.issue("alice", 4*time.Second, "ws"))
		exp := expOf(t, welcome)
		e.svc.SetFaults(faketokensvc.Faults{Status: http.StatusInternalServerError})
		n := e.svc.Introspections()
		waitFor(t, 10*recheck+5*time.Second, "three failed rechecks", func() bool { return e.svc.Introspections() >= n+3 })
		expectEcho(t, c, "still here while the token system is down")
		waitFor(t, 5*time.Second, "the recheck warning", func() bool {
			return e.log.logged("level=WARN", `msg="recheck: token system unavailable`)
		})

		// A new connection fails closed meanwhile.
		c2, resp, body, err := e.dialer.Dial(e.URL+"/ws", http.Header{"Authorization": {"Bearer " + e.issue("bob", time.Hour, "ws")}})
		switch {
		case err != nil:
			t.Fatalf("dial while the token system is down: %v", err)
		case c2 != nil:
			c2.nc.Close()
			t.Fatal("dial while the token system is down: upgraded; want 503")
		}
		checkRefusal(t, "WebSocket while the token system is down", resp.StatusCode, resp.Header, body, 503, "", "temporarily_unavailable", "")
		if ra := resp.Header.Get("Retry-After"); ra == "" {
			t.Error("503 while the token system is down: no Retry-After")
		}

		// Until its own expiry, not longer.
		at := expectClose(t, c, time.Until(exp)+slack+5*time.Second, server.CloseUnauthorized, "token expired")
		if late := at.Sub(exp); late < -50*time.Millisecond || late > slack {
			t.Errorf("close 3000 came %v after the token's expiry; want within %v", late, slack)
		}
	})
}

// TestRecheckCostsOneIntrospectionPerToken: a sweep over many connections
// that share a few tokens asks the token system once per token.
func TestRecheckCostsOneIntrospectionPerToken(t *testing.T) {
	checkNoLeaks(t)
	const (
		conns    = 1000
		nTokens  = 10
		parallel = 32
		recheck  = 400 * time.Millisecond
	)
	e := newEnv(t, withRecheck(recheck))
	toks := make([]string, nTokens)
	for i := range toks {
		toks[i] = e.issue("user"+string(rune('a'+i)), time.Hour, "ws")
	}

	openStart := time.Now()
	open := make([]*wsConn, conns)
	t.Cleanup(func() {
		for _, c := range open {
			if c != nil {
				c.nc.Close()
			}
		}
	})
	errc := make(chan error, conns)
	jobs := make(chan int)
	var wg sync.WaitGroup
	for range parallel {
		wg.Go(func() {
			for i := range jobs {
				c, resp, body, err := e.dialer.Dial(e.URL+"/ws", http.Header{"Authorization": {"Bearer " + toks[i%nTokens]}})
				switch {
				case err != nil:
					errc <- err
					continue
				case c == nil:
					errc <- errors.New(resp.Status + " " + body)
					continue
				}
				open[i] = c
				if m, err := c.ReadJSON(10 * time.Second); err != nil || m["type"] != "welcome" {
					errc <- errors.New("no welcome")
				}
			}
		})
	}
	for i := range conns {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Fatalf("opening %d connections: %v", conns, err)
	}
	t.Logf("opened %d connections in %v", conns, time.Since(openStart).Round(time.Millisecond))
	if n := e.srv.OpenConns(); n != conns {
		t.Fatalf("OpenConns = %d; want %d", n, conns)
	}

	// Line up with the sweeps. Each asks about each token once, and so did
	// the connections' first validations (single-flighted, then cached):
	// the counter rests at a multiple of nTokens between sweeps.
	count := e.svc.Introspections
	var n0 int64
	start := count()
	waitFor(t, 5*recheck+5*time.Second, "a recheck sweep", func() bool {
		n0 = count()
		return n0 > start && n0%nTokens == 0
	})
	// Sweeps come every recheck: three more by 3.5 intervals from the one
	// just seen, and the fourth not before 4.
	window := 3*recheck + recheck/2
	<-time.After(window)
	got := count() - n0
	t.Logf("%d introspections for %d connections over %d tokens in %v (3 recheck intervals of %v)",
		got, conns, nTokens, window, recheck)
	if got > 3*nTokens || got < nTokens {
		t.Errorf("%d introspections in 3 recheck intervals; want at most %d: one per token per interval", got, 3*nTokens)
	}

	// Close politely, as many at once.
	jobs = make(chan int)
	for range parallel {
		wg.Go(func() {
			for i := range jobs {
				open[i].Close()
			}
		})
	}
	for i := range conns {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	waitFor(t, 10*time.Second, "every connection to end", func() bool { return e.srv.OpenConns() == 0 })
}
