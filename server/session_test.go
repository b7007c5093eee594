package server

import (
	"context"
	"fmt"
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
		c := &session{s: s, a: authorized{p: tokens.Principal{Subject: "alice", Scopes: []string{"ws"}, Expiry: later}, token: "old"}}
		c.mu.Lock()
		c.armExpiry()
		oldGen := c.expiryGen
		// What refresh does under c.mu.
		c.a = authorized{p: tokens.Principal{Subject: "alice", Scopes: []string{"ws"}, Expiry: later.Add(time.Hour)}, token: "new"}
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
	c := &session{s: s, a: authorized{token: "tok"}, ping: time.NewTimer(time.Hour)}
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
		c := &session{s: s, a: authorized{p: tokens.Principal{Subject: "alice", Scopes: []string{"ws"}, Expiry: tc.expiry}, token: "tok"}}
		c.recheck("tok", tokens.Principal{}, fmt.Errorf("%w: gone", tokens.ErrInvalid))
		if c.pending == nil || c.pending.code != CloseUnauthorized || c.pending.reason != tc.want {
			t.Errorf("%s: close = %+v; want 3000 %q", tc.name, c.pending, tc.want)
		}
	}
}
