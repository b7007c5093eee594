package server

import (
	"testing"
	"time"

	"wsauth/tokens"
)

// A recheck whose answer arrives after the connection ended must not arm
// an expiry timer: the timer would hold the session, its connection's
// buffers included, until the token expires (found by TestSoak's heap
// check).
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
