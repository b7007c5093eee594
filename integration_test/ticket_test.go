package integration_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"wsauth/server"
)

// TestTicketMint: POST /api/ws-ticket answers only a scripted request
// carrying a ws-scoped token by header or cookie: a cross-site form, a
// foreign page and a token in the URL all fail.
func TestTicketMint(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	alice := e.issue("alice", time.Hour, "api", "ws")
	bob := e.issue("bob", time.Hour, "api")
	jsonCT := http.Header{"Content-Type": {"application/json"}}
	with := func(h http.Header, kv ...string) http.Header {
		out := h.Clone()
		for i := 0; i < len(kv); i += 2 {
			out.Add(kv[i], kv[i+1])
		}
		return out
	}
	cases := []struct {
		name    string
		path    string
		h       http.Header
		status  int
		errCode string
	}{
		{"bearer and JSON", "/api/ws-ticket", with(jsonCT, "Authorization", "Bearer "+alice), 200, ""},
		{"cookie and X-Requested-With", "/api/ws-ticket", http.Header{"Cookie": {"token=" + alice}, "X-Requested-With": {"fetch"}}, 200, ""},
		{"cookie, JSON, own Origin", "/api/ws-ticket", with(jsonCT, "Cookie", "token="+alice, "Origin", e.URL), 200, ""},
		{"JSON with charset", "/api/ws-ticket", http.Header{"Cookie": {"token=" + alice}, "Content-Type": {"application/json; charset=utf-8"}}, 200, ""},
		{"cookie, no Content-Type (a form)", "/api/ws-ticket", http.Header{"Cookie": {"token=" + alice}}, 400, "invalid_request"},
		{"cookie, text/plain (a form)", "/api/ws-ticket", http.Header{"Cookie": {"token=" + alice}, "Content-Type": {"text/plain"}}, 400, "invalid_request"},
		{"cookie, urlencoded (a form)", "/api/ws-ticket", http.Header{"Cookie": {"token=" + alice}, "Content-Type": {"application/x-www-form-urlencoded"}}, 400, "invalid_request"},
		{"cookie, JSON, foreign Origin", "/api/ws-ticket", with(jsonCT, "Cookie", "token="+alice, "Origin", "http://evil.example"), 403, "forbidden_origin"},
		{"token in the query", "/api/ws-ticket?token=" + alice, jsonCT, 400, "invalid_request"},
		{"ticket in the query", "/api/ws-ticket?ticket=x", jsonCT, 400, "invalid_request"},
		{"no credential", "/api/ws-ticket", jsonCT, 401, "missing_token"},
		{"invalid token", "/api/ws-ticket", with(jsonCT, "Authorization", "Bearer nope"), 401, "invalid_token"},
		{"token without ws", "/api/ws-ticket", with(jsonCT, "Authorization", "Bearer "+bob), 403, "insufficient_scope"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			status, h, body := e.post(c.path, c.h, "{}")
			if status != c.status {
				t.Fatalf("POST %s: status = %d (%s); want %d", c.path, status, body, c.status)
			}
			if c.status != 200 {
				if got := errorCode(body); got != c.errCode {
					t.Errorf("POST %s: error = %q; want %q", c.path, got, c.errCode)
				}
				return
			}
			var m struct {
				Ticket    string `json:"ticket"`
				ExpiresIn int    `json:"expires_in"`
			}
			if err := json.Unmarshal([]byte(body), &m); err != nil || m.Ticket == "" || m.ExpiresIn != 30 {
				t.Fatalf("POST /api/ws-ticket = %s; want {ticket: …, expires_in: 30}", body)
			}
			rememberSecret(m.Ticket)
			if strings.Contains(m.Ticket, alice) {
				t.Error("the ticket contains the token in clear")
			}
			if cc := h.Get("Cache-Control"); cc != "no-store" {
				t.Errorf("Cache-Control = %q; want no-store", cc)
			}
		})
	}
	t.Run("GET", func(t *testing.T) {
		t.Parallel()
		status, _, _ := e.get("/api/ws-ticket", http.Header{"Authorization": {"Bearer " + alice}})
		if status != http.StatusMethodNotAllowed {
			t.Errorf("GET /api/ws-ticket: status = %d; want 405", status)
		}
	})
}

// TestTicketRedeem: a ticket opens /ws once; a replayed, altered, foreign
// or expired one is a 401 invalid_token.
func TestTicketRedeem(t *testing.T) {
	t.Parallel()
	clk := newTestClock()
	key := []byte(strings.Repeat("k", 32))
	e := newEnv(t, withServer(func(c *server.Config) { c.Now = clk.Now; c.TicketKey = key }))
	alice := e.issue("alice", time.Hour, "api", "ws")

	refused := func(t *testing.T, what, path string) {
		t.Helper()
		c, resp, body := e.dial(path, nil)
		if c != nil {
			t.Fatalf("%s: upgraded; want 401", what)
		}
		checkRefusal(t, what, resp.StatusCode, resp.Header, body, 401, challengeInvalid, "invalid_token", "")
	}

	t.Run("once", func(t *testing.T) {
		ticket := e.mintTicket(t, alice)
		c, resp, body := e.dial("/ws?ticket="+url.QueryEscape(ticket), nil)
		if c == nil {
			t.Fatalf("first use of a ticket: status %d %s; want 101", resp.StatusCode, body)
		}
		checkWelcomeAndEcho(t, c, "alice")
		refused(t, "second use of a ticket", "/ws?ticket="+url.QueryEscape(ticket))
	})
	t.Run("altered", func(t *testing.T) {
		ticket := []byte(e.mintTicket(t, alice))
		i := len(ticket) / 2
		ticket[i] = map[bool]byte{true: 'A', false: 'B'}[ticket[i] != 'A']
		refused(t, "altered ticket", "/ws?ticket="+string(ticket))
		refused(t, "truncated ticket", "/ws?ticket="+string(ticket[:20]))
		refused(t, "garbage ticket", "/ws?ticket=%00%ff")
	})
	t.Run("expired", func(t *testing.T) {
		ticket := e.mintTicket(t, alice)
		clk.Advance(server.TicketTTL)
		refused(t, "ticket after 30 s", "/ws?ticket="+ticket)
	})
	t.Run("other key", func(t *testing.T) {
		other := newEnv(t) // a random key
		ticket := other.mintTicket(t, other.issue("alice", time.Hour, "api", "ws"))
		refused(t, "ticket sealed by another key", "/ws?ticket="+ticket)
	})
	t.Run("shared key", func(t *testing.T) {
		// Another instance with the same key, the same token system and a
		// clock in step accepts the ticket, once.
		sib := e.peer(withServer(func(c *server.Config) { c.Now = clk.Now; c.TicketKey = key })).URL
		ticket := e.mintTicket(t, alice)
		c, resp, body, err := e.dialer.Dial(sib+"/ws?ticket="+ticket, nil)
		if err != nil || c == nil {
			t.Fatalf("ticket of instance A at instance B: %v %v %s; want 101", err, resp, body)
		}
		checkWelcomeAndEcho(t, c, "alice")
		_, resp, body, err = e.dialer.Dial(sib+"/ws?ticket="+ticket, nil)
		if err != nil || resp.StatusCode != 401 || errorCode(body) != "invalid_token" {
			t.Errorf("ticket replayed at instance B: %v %v %s; want 401 invalid_token", err, resp, body)
		}
	})
	t.Run("not on /api/me", func(t *testing.T) {
		ticket := e.mintTicket(t, alice)
		status, _, body := e.get("/api/me?ticket="+ticket, nil)
		if status != 400 || errorCode(body) != "invalid_request" {
			t.Errorf("GET /api/me?ticket=: %d %s; want 400 invalid_request", status, body)
		}
	})
	t.Run("concurrent", func(t *testing.T) {
		// Ten clients race with one ticket: exactly one gets in.
		ticket := e.mintTicket(t, alice)
		var wg sync.WaitGroup
		var mu sync.Mutex
		got := map[int]int{}
		for range 10 {
			wg.Go(func() {
				c, resp, _, err := e.dialer.Dial(e.URL+"/ws?ticket="+ticket, nil)
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err != nil:
					got[-1]++
				case c != nil:
					got[101]++
					c.Close()
				default:
					got[resp.StatusCode]++
				}
			})
		}
		wg.Wait()
		if got[101] != 1 || got[401] != 9 {
			t.Errorf("10 concurrent uses of one ticket: %v; want 1×101, 9×401", got)
		}
	})
}

// TestTicketReplaySetFull: when the replay set is full, minting answers 503
// rather than forget an id that could still be replayed; a ticket minted
// before still works, and room comes back as tickets expire.
func TestTicketReplaySetFull(t *testing.T) {
	t.Parallel()
	clk := newTestClock()
	e := newEnv(t, withServer(func(c *server.Config) { c.Now = clk.Now; c.MaxTickets = 2 }))
	alice := e.issue("alice", time.Hour, "api", "ws")
	first := e.mintTicket(t, alice)
	e.mintTicket(t, alice)

	h := http.Header{"Authorization": {"Bearer " + alice}, "Content-Type": {"application/json"}}
	status, hdr, body := e.post("/api/ws-ticket", h, "{}")
	if status != 503 || errorCode(body) != "temporarily_unavailable" || hdr.Get("Retry-After") != "30" {
		t.Fatalf("third ticket with room for two: %d Retry-After %q %s; want 503 temporarily_unavailable, Retry-After 30",
			status, hdr.Get("Retry-After"), body)
	}
	c, resp, body := e.dial("/ws?ticket="+first, nil)
	if c == nil {
		t.Fatalf("ticket minted before the set filled: status %d %s; want 101", resp.StatusCode, body)
	}
	checkWelcomeAndEcho(t, c, "alice")
	if status, _, _ := e.post("/api/ws-ticket", h, "{}"); status != 503 {
		t.Errorf("after redeeming one of two: status = %d; want 503 (its id stays until it expires)", status)
	}
	clk.Advance(server.TicketTTL)
	if status, _, body := e.post("/api/ws-ticket", h, "{}"); status != 200 {
		t.Errorf("once the tickets expired: status = %d (%s); want 200", status, body)
	}
}

// TestTicketsPerSubject: a subject that holds TicketsPerSubject unexpired
// tickets is answered 429 with Retry-After, however many it used, so that
// it cannot fill the replay set that every user's tickets need; others
// still mint, and its tickets expire to make room.
func TestTicketsPerSubject(t *testing.T) {
	t.Parallel()
	clk := newTestClock()
	e := newEnv(t, withServer(func(c *server.Config) { c.Now = clk.Now; c.TicketsPerSubject = 3 }))
	alice := e.issue("alice", time.Hour, "api", "ws")
	first := e.mintTicket(t, alice)
	e.mintTicket(t, alice)
	e.mintTicket(t, alice)
	c, resp, body := e.dial("/ws?ticket="+first, nil)
	if c == nil {
		t.Fatalf("alice's first ticket: status %d %s; want 101", resp.StatusCode, body)
	}
	checkWelcomeAndEcho(t, c, "alice")

	h := func(tok string) http.Header {
		return http.Header{"Authorization": {"Bearer " + tok}, "Content-Type": {"application/json"}}
	}
	status, hdr, body := e.post("/api/ws-ticket", h(alice), "{}")
	if status != 429 || errorCode(body) != "too_many_tickets" || hdr.Get("Retry-After") != "30" {
		t.Fatalf("alice's fourth ticket with a quota of 3: %d Retry-After %q %s; want 429 too_many_tickets, Retry-After 30",
			status, hdr.Get("Retry-After"), body)
	}
	if status, _, body := e.post("/api/ws-ticket", h(e.issue("bob", time.Hour, "ws")), "{}"); status != 200 {
		t.Errorf("bob's ticket while alice is at her quota: %d %s; want 200", status, body)
	}
	clk.Advance(server.TicketTTL)
	if status, _, body := e.post("/api/ws-ticket", h(alice), "{}"); status != 200 {
		t.Errorf("alice's ticket once hers expired: %d %s; want 200", status, body)
	}
}
