package integration_test

import (
	"context"
	"net/http"
	"net/url"
	"testing"
	"time"

	"wsauth/server"
)

// Several instances: nothing in the design needs state shared between
// instances beyond the token system. These tests run two servers in one process, each
// with its own cache and registry, in front of one fake token service, as
// two instances behind a load balancer are.

// dialWelcome opens a WebSocket with a bearer token and reads the welcome.
func (e *env) dialWelcome(t *testing.T, name, token string) *wsConn {
	t.Helper()
	c, resp, body := e.dial("/ws", http.Header{"Authorization": {"Bearer " + token}})
	if c == nil {
		t.Fatalf("%s: dial /ws: status %d %s; want 101", name, resp.StatusCode, body)
	}
	m, err := c.ReadJSON(5 * time.Second)
	if err != nil || m["type"] != "welcome" {
		t.Fatalf("%s: first message = %v, %v; want the welcome", name, m, err)
	}
	return c
}

// TestInstancesShareOnlyTheTokenSystem: a token issued once works on both
// instances, over HTTP and WebSocket, with nothing shared but the token
// system.
func TestInstancesShareOnlyTheTokenSystem(t *testing.T) {
	t.Parallel()
	a := newEnv(t)
	b := a.peer()
	tok := a.issue("alice", time.Hour, "api", "ws")
	for name, inst := range map[string]*env{"A": a, "B": b} {
		status, _, body := inst.get("/api/me", http.Header{"Authorization": {"Bearer " + tok}})
		if status != 200 {
			t.Errorf("GET /api/me on %s: status = %d %s; want 200", name, status, body)
		}
		c := inst.dialWelcome(t, name, tok)
		expectEcho(t, c, name)
		c.Close()
	}
}

// TestRevocationClosesOnEveryInstance: each instance rechecks its own
// connections against the token system, so one revocation there closes the
// token's sockets everywhere, and only those.
func TestRevocationClosesOnEveryInstance(t *testing.T) {
	t.Parallel()
	fast := withServer(func(c *server.Config) { c.Recheck = 50 * time.Millisecond })
	a := newEnv(t, fast)
	b := a.peer(fast)
	doomed := a.issue("mallory", time.Hour, "ws")
	kept := a.issue("alice", time.Hour, "ws")
	onA, onB := a.dialWelcome(t, "doomed on A", doomed), b.dialWelcome(t, "doomed on B", doomed)
	keptA, keptB := a.dialWelcome(t, "kept on A", kept), b.dialWelcome(t, "kept on B", kept)

	a.svc.Revoke(doomed)
	onA.ExpectClose(t, 5*time.Second, 3000, "token revoked")
	onB.ExpectClose(t, 5*time.Second, 3000, "token revoked")
	expectEcho(t, keptA, "kept on A")
	expectEcho(t, keptB, "kept on B")
	keptA.Close()
	keptB.Close()
}

// TestShutdownOfOneInstance: shutting down A closes A's clients with 1001
// and refuses new ones with 503, which a load balancer takes as "try the
// next"; B keeps serving its clients, and A's clients reconnect to B with
// the credential they already hold.
func TestShutdownOfOneInstance(t *testing.T) {
	t.Parallel()
	a := newEnv(t)
	b := a.peer()
	tokA := a.issue("alice", time.Hour, "api", "ws")
	tokB := a.issue("bob", time.Hour, "ws")
	onA := a.dialWelcome(t, "alice on A", tokA)
	onB := b.dialWelcome(t, "bob on B", tokB)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	done := make(chan int, 1)
	go func() { n, _ := a.srv.Shutdown(ctx); done <- n }()
	onA.ExpectClose(t, 5*time.Second, 1001, "shutting down")
	if n := <-done; n != 1 {
		t.Errorf("A.Shutdown closed %d connections; want 1", n)
	}
	expectEcho(t, onB, "bob on B after A shut down")

	c, resp, body := a.dial("/ws", http.Header{"Authorization": {"Bearer " + tokA}})
	if c != nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("dial A after its shutdown: %v %s; want 503", resp.Status, body)
	}
	again := b.dialWelcome(t, "alice reconnected to B", tokA)
	expectEcho(t, again, "alice reconnected to B")
	if n := b.srv.OpenConns(); n != 2 {
		t.Errorf("B has %d open connections; want 2 (bob and alice)", n)
	}
	again.Close()
	onB.Close()
}

// TestTicketAcrossInstances: with one ticket key on both instances, a
// ticket minted on A opens a WebSocket on B. Single use is kept per
// instance, as docs/DEPLOY.md says: B refuses the replay, and A, which
// never saw the ticket used, accepts it once; that is the cost of keeping
// no replay set shared between instances.
func TestTicketAcrossInstances(t *testing.T) {
	t.Parallel()
	key := withServer(func(c *server.Config) { c.TicketKey = []byte("0123456789abcdef0123456789abcdef") })
	a := newEnv(t, key)
	b := a.peer(key)
	other := a.peer() // its own random key
	tok := a.issue("alice", time.Hour, "api", "ws")

	ticket := a.mintTicket(t, tok)
	path := "/ws?ticket=" + url.QueryEscape(ticket)
	if c, resp, body := other.dial(path, nil); c != nil || resp.StatusCode != 401 || errorCode(body) != "invalid_token" {
		t.Fatalf("ticket of A at an instance with another key: %v %s; want 401 invalid_token", resp.Status, body)
	}
	c, resp, body := b.dial(path, nil)
	if c == nil {
		t.Fatalf("ticket of A at B: %v %s; want 101", resp.Status, body)
	}
	if m, err := c.ReadJSON(5 * time.Second); err != nil || m["type"] != "welcome" || m["sub"] != "alice" {
		t.Fatalf("ticket of A at B: first message = %v, %v; want alice's welcome", m, err)
	}
	expectEcho(t, c, "ticket of A at B")
	if c, resp, body := b.dial(path, nil); c != nil || resp.StatusCode != 401 || errorCode(body) != "invalid_token" {
		t.Errorf("ticket replayed at B: %v %s; want 401 invalid_token", resp.Status, body)
	}
	again, resp, body := a.dial(path, nil)
	if again == nil {
		t.Errorf("ticket used at B, then at A: %v %s; want 101 (replay sets are per instance)", resp.Status, body)
	} else {
		again.Close()
	}
	if c, resp, body := a.dial(path, nil); c != nil || resp.StatusCode != 401 {
		t.Errorf("ticket replayed at A: %v %s; want 401", resp.Status, body)
	}
	c.Close()
}
