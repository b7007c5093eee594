package server

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"wsauth/tokens"
)

// TestAnswersAboutAReplacedTokenDoNothing: a refresh moves a connection
// onto a new token while the old token's expiry timer or recheck is
// already on its way; neither may close the connection. (The session has
// no connection yet, so a close shows up as pending.)
func TestAnswersAboutAReplacedTokenDoNothing(t *testing.T) {
	t.Parallel()
	s := New(Config{Validator: tokens.ValidatorFunc(func(context.Context, string) (tokens.Principal, error) {
		return tokens.Principal{}, tokens.ErrUnavailable
	})})
	later := time.Now().Add(time.Hour)
	for _, tc := range []struct {
		name      string
		stale     func(c *session, oldGen uint64)
		wantClose int // 0: none
	}{
		{"old expiry timer", func(c *session, oldGen uint64) { c.expire(oldGen) }, 0},
		{"recheck of the old token: revoked", func(c *session, _ uint64) { c.recheck("old", tokens.Principal{}, tokens.ErrInvalid) }, 0},
		{"recheck of the old token: scope lost", func(c *session, _ uint64) {
			c.recheck("old", tokens.Principal{Subject: "alice"}, nil)
		}, 0},
		{"current expiry timer", func(c *session, _ uint64) { c.expire(c.expiryGen) }, CloseUnauthorized},
		{"recheck of the new token: revoked", func(c *session, _ uint64) { c.recheck("new", tokens.Principal{}, tokens.ErrInvalid) }, CloseUnauthorized},
		{"recheck of the new token: scope lost", func(c *session, _ uint64) {
			c.recheck("new", tokens.Principal{Subject: "alice"}, nil)
		}, CloseForbidden},
		{"recheck of the new token: unavailable", func(c *session, _ uint64) {
			c.recheck("new", tokens.Principal{}, fmt.Errorf("%w: down", tokens.ErrUnavailable))
		}, 0},
	} {
		c := &session{s: s, a: authorized{p: tokens.Principal{Subject: "alice", Scopes: []string{"ws"}, Expiry: later}, token: "old", scope: "ws"}}
		c.mu.Lock()
		c.armExpiry()
		oldGen := c.expiryGen
		// What refresh does under c.mu.
		c.a = authorized{p: tokens.Principal{Subject: "alice", Scopes: []string{"ws"}, Expiry: later.Add(time.Hour)}, token: "new", scope: "ws"}
		c.armExpiry()
		c.mu.Unlock()

		tc.stale(c, oldGen)
		c.mu.Lock()
		got := 0
		if c.pending != nil {
			got = c.pending.code
		}
		c.expiry.Stop()
		c.mu.Unlock()
		if got != tc.wantClose {
			t.Errorf("%s after a refresh: close %d; want %d (0: none)", tc.name, got, tc.wantClose)
		}
	}
}

// TestRecheckAfterEndArmsNoTimer: a recheck whose answer arrives after the
// connection ended must not arm an expiry timer, which would hold the
// session, its connection's buffers included, until the token expires
// (found by TestSoak's heap check).
func TestRecheckAfterEndArmsNoTimer(t *testing.T) {
	t.Parallel()
	s := New(Config{Validator: tokens.ValidatorFunc(nil)})
	c := &session{s: s, a: authorized{token: "tok"}}
	c.stopTimers()
	c.recheck("tok", tokens.Principal{Subject: "alice", Scopes: []string{"ws"}, Expiry: time.Now().Add(time.Hour)}, nil)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.expiry != nil {
		c.expiry.Stop()
		t.Errorf("recheck after the session ended armed an expiry timer; want none")
	}
}

// TestRecheckSaysExpiredPastExpiry: a recheck that finds the token invalid
// after its known expiry closes with "token expired", not "token revoked",
// whichever of the recheck and the expiry timer arrives first.
func TestRecheckSaysExpiredPastExpiry(t *testing.T) {
	t.Parallel()
	now := time.Unix(1_800_000_000, 0)
	s := New(Config{
		Validator: tokens.ValidatorFunc(func(context.Context, string) (tokens.Principal, error) { return tokens.Principal{}, nil }),
		Now:       func() time.Time { return now },
	})
	for _, tc := range []struct {
		name   string
		expiry time.Time
		want   string
	}{
		{"before expiry", now.Add(time.Minute), "token revoked"},
		{"at expiry", now, "token expired"},
		{"past expiry", now.Add(-time.Second), "token expired"},
	} {
		c := &session{s: s, a: authorized{p: tokens.Principal{Subject: "alice", Scopes: []string{"ws"}, Expiry: tc.expiry}, token: "tok", scope: "ws"}}
		c.recheck("tok", tokens.Principal{}, fmt.Errorf("%w: gone", tokens.ErrInvalid))
		if c.pending == nil || c.pending.code != CloseUnauthorized || c.pending.reason != tc.want {
			t.Errorf("%s: close = %+v; want 3000 %q", tc.name, c.pending, tc.want)
		}
	}
}

// TestRecheckSweepKeepsToItsBudget: when the token system answers slowly, a
// sweep starts no call past its budget, so that one sweep cannot run for
// tokens/concurrency × the introspection timeout; the tokens it had no time
// for keep their answer, and the sweep says how many.
func TestRecheckSweepKeepsToItsBudget(t *testing.T) {
	t.Parallel()
	var calls atomic.Int64
	slow := tokens.ValidatorFunc(func(context.Context, string) (tokens.Principal, error) {
		calls.Add(1)
		<-time.After(200 * time.Millisecond) // a deliberately slow token system
		return tokens.Principal{Subject: "alice", Scopes: []string{"ws"}}, nil
	})
	var logs strings.Builder
	var logMu sync.Mutex
	s := New(Config{
		Validator: slow,
		Recheck:   time.Hour, // no background sweep: the test runs one itself
		Logger:    slog.New(slog.NewTextHandler(writerFunc(func(p []byte) (int, error) { logMu.Lock(); defer logMu.Unlock(); return logs.Write(p) }), nil)),
	})
	const nTokens = 3 * recheckConcurrency
	for i := range nTokens {
		a := authorized{p: tokens.Principal{Subject: "alice", Scopes: []string{"ws"}}, token: fmt.Sprintf("token-%d", i), scope: "ws"}
		sess, err := s.conns.reserve(a)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.conns.release(sess) }) // stops the registry's sweep goroutine
	}
	start := time.Now()
	s.conns.recheckAll(50 * time.Millisecond)
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("sweep took %v; want about one slow call (200ms), not %d rounds of them", d, nTokens/recheckConcurrency)
	}
	if n := calls.Load(); n != recheckConcurrency {
		t.Errorf("sweep with a 50ms budget made %d calls; want %d: the ones started before the budget ran out", n, recheckConcurrency)
	}
	logMu.Lock()
	defer logMu.Unlock()
	if want := fmt.Sprintf("tokens=%d", nTokens-recheckConcurrency); !strings.Contains(logs.String(), "ran out of its interval") || !strings.Contains(logs.String(), want) {
		t.Errorf("log = %q; want a warning naming %s skipped", logs.String(), want)
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
