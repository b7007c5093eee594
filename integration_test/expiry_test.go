package integration_test

import (
	"testing"
	"time"
	"wsauth/server"
)

// TestTokenExpiryCloses3000: a WebSocket lives on one token; when the
// token's exp passes, the server closes it with 3000 "token expired".
func TestTokenExpiryCloses3000(t *testing.T) {
	checkNoLeaks(t)
	e := newEnv(t)
	// The token system gives exp in whole seconds: this one ends 1 to 2 s
	// after now.
	c, welcome := openWS(t, e, e.issue("alice", 2*time.Second, "ws"))
	exp := expOf(t, welcome)
	expectEcho(t, c, "before expiry")
	at := expectClose(t, c, time.Until(exp)+slack+5*time.Second, server.CloseUnauthorized, "token expired")
	if late := at.Sub(exp); late < -50*time.Millisecond || late > slack {
		t.Errorf("close 3000 came %v after the token's expiry; want within %v", late, slack)
	}
}
