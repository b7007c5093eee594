package integration_test

import (
	"testing"
	"time"

	"wsauth/server"
)

// What the browser client (server/static/wsauth.js) needs of the server: a
// refresh by one-time ticket, expires_in from the server's clock, and GET
// /api/ws-check, which says why a handshake would fail.

// expectRefreshed sends msg, a refresh, and checks that the answer is
// refreshed with the exp of a token expiring at exp, and its expires_in:
// the seconds left until that exp, rounded down, as the server counts them.
func expectRefreshed(t testing.TB, c *wsConn, msg string, exp time.Time) {
	t.Helper()
	if err := c.WriteText(msg); err != nil {
		t.Fatalf("sending a refresh: %v", err)
	}
	m, err := c.ReadJSON(5 * time.Second)
	if err != nil {
		t.Fatalf("reading the answer to a refresh: %v", err)
	}
	left := time.Until(time.Unix(exp.Unix(), 0)) // exp goes over the wire in whole seconds
	in, _ := m["expires_in"].(float64)
	if m["type"] != "refreshed" || m["exp"] != float64(exp.Unix()) || len(m) != 3 ||
		in > left.Seconds() || in < (left-slack).Seconds()-1 {
		t.Fatalf("answer to a refresh = %v; want {type: refreshed, exp: %d, expires_in: about %.0f}", m, exp.Unix(), left.Seconds())
	}
}

// TestExpiresIn: the welcome and refreshed messages say in expires_in how
// many seconds the token has left by the server's clock, which is what the
// connection's expiry follows, whatever the client's clock says.
func TestExpiresIn(t *testing.T) {
	checkNoLeaks(t)
	clk := newTestClock()
	e := newEnv(t, withServer(func(c *server.Config) { c.Now = clk.Now }))
	tok, exp := e.issueExp("alice", time.Hour, "ws")
	tok2, exp2 := e.issueExp("alice", 2*time.Hour, "ws")
	clk.Advance(10 * time.Minute) // the server's clock is 10 minutes ahead of the token system's
	c, welcome := openWS(t, e, tok)
	// exp goes over the wire, from the token system too, in whole seconds.
	exp, exp2 = time.Unix(exp.Unix(), 0), time.Unix(exp2.Unix(), 0)
	want := float64(int64(exp.Sub(clk.Now()) / time.Second))
	if got := welcome["expires_in"]; got != want || welcome["exp"] != float64(exp.Unix()) {
		t.Errorf("welcome = %v; want exp %d and expires_in %v (exp minus the server's now)", welcome, exp.Unix(), want)
	}

	if err := c.WriteText(refreshMsg(tok2)); err != nil {
		t.Fatal(err)
	}
	m, err := c.ReadJSON(5 * time.Second)
	want = float64(int64(exp2.Sub(clk.Now()) / time.Second))
	if err != nil || m["type"] != "refreshed" || m["expires_in"] != want || m["exp"] != float64(exp2.Unix()) {
		t.Errorf("answer to a refresh = %v, %v; want refreshed with exp %d and expires_in %v", m, err, exp2.Unix(), want)
	}
}
