package integration_test

import (
	"encoding/json"
	"io"
	"maps"
	"net/http"
	"strings"
	"testing"
	"time"

	"wsauth/server"
)

// What the browser client (server/static/wsauth.js) needs of the server: a
// refresh by one-time ticket, expires_in from the server's clock, and GET
// /api/ws-check, which says why a handshake would fail.

func refreshTicketMsg(ticket string) string {
	b, _ := json.Marshal(map[string]string{"type": "refresh", "ticket": ticket})
	return string(b)
}

// postURL sends POST url with headers h and body, to any server.
func postURL(t testing.TB, url string, h http.Header, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("POST", url, strings.NewReader(body))
	maps.Copy(req.Header, h)
	resp, err := httpClient.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

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

// TestRefreshByTicket: {"type":"refresh","ticket":…} moves the connection
// onto the token sealed in the ticket, and spends the ticket as /ws does;
// a ticket that cannot be used is an error answer, and the connection
// keeps its token.
func TestRefreshByTicket(t *testing.T) {
	checkNoLeaks(t)
	e := newEnv(t)
	c, welcome := openWS(t, e, e.issue("alice", 3*time.Second, "ws"))
	oldExp := expOf(t, welcome)

	tok, exp := e.issueExp("alice", time.Hour, "api", "ws")
	ticket := e.mintTicket(t, tok)
	expectRefreshed(t, c, refreshTicketMsg(ticket), exp)

	sibling := e.sibling(t, func(*server.Config) {}) // its own random ticket key
	status, body := postURL(t, sibling+"/api/ws-ticket", http.Header{"Authorization": {"Bearer " + tok}, "Content-Type": {"application/json"}}, "{}")
	var foreign struct{ Ticket string }
	if json.Unmarshal([]byte(body), &foreign); status != 200 || foreign.Ticket == "" {
		t.Fatalf("POST /api/ws-ticket on another instance: %d %s; want 200", status, body)
	}
	rememberSecret(foreign.Ticket)

	errMsg := func(code string) map[string]any { return map[string]any{"type": "error", "error": code} }
	for _, tc := range []struct{ name, msg, want string }{
		{"the spent ticket again", refreshTicketMsg(ticket), "invalid_token"},
		{"a garbage ticket", refreshTicketMsg("not-a-ticket"), "invalid_token"},
		{"a ticket sealed by another key", refreshTicketMsg(foreign.Ticket), "invalid_token"},
		{"a token and a ticket", `{"type":"refresh","token":"` + tok + `","ticket":"` + e.mintTicket(t, tok) + `"}`, "invalid_request"},
	} {
		expectMsg(t, c, tc.msg, errMsg(tc.want))
		expectEcho(t, c, "still open after "+tc.name)
	}

	// The connection lives on the ticket's token: it outlives the first one.
	waitFor(t, time.Until(oldExp)+slack+5*time.Second, "the first token's expiry", func() bool {
		return time.Now().After(oldExp.Add(300 * time.Millisecond))
	})
	expectEcho(t, c, "past the first token's expiry")

	// Spent by the refresh, as on /ws: the ticket opens nothing any more.
	if conn, resp, body := e.dial("/ws?ticket="+ticket, nil); conn != nil || resp.StatusCode != 401 {
		t.Errorf("GET /ws with the ticket a refresh spent: status %d %s; want 401", resp.StatusCode, body)
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
