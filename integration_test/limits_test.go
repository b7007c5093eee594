package integration_test

import (
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"
	"wsauth/server"
)

// TestLimits: a message over MaxMessageBytes, fragments included, closes
// with 1009; a client that stops reading or goes silent is dropped; past
// MaxConns a handshake gets 503 before the upgrade.
func TestLimits(t *testing.T) {
	checkNoLeaks(t)

	type frame struct {
		op   byte
		fin  bool
		size int
	}
	for _, tc := range []struct {
		name   string
		limit  int // MaxMessageBytes; 0 for the default
		frames []frame
		want   int // close code; 0 for an echo of the whole message
	}{
		{"default limit, 64 KiB echoed", 0, []frame{{0x1, true, 64 << 10}}, 0},
		{"default limit, 64 KiB + 1", 0, []frame{{0x1, true, 64<<10 + 1}}, server.CloseMessageTooBig},
		{"1 KiB limit, 1025 bytes", 1024, []frame{{0x1, true, 1025}}, server.CloseMessageTooBig},
		{"1 KiB limit, fragments summing to 1200", 1024, []frame{{0x1, false, 400}, {0x0, false, 400}, {0x0, true, 400}}, server.CloseMessageTooBig},
		{"1 KiB limit, fragments summing to 1024", 1024, []frame{{0x1, false, 512}, {0x0, false, 0}, {0x0, true, 512}}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, withServer(func(c *server.Config) { c.MaxMessageBytes = tc.limit }))
			c, _ := openWS(t, e, e.issue("alice", time.Hour, "ws"))
			var whole strings.Builder
			for i, f := range tc.frames {
				p := strings.Repeat(string(rune('a'+i)), f.size)
				whole.WriteString(p)
				if err := c.WriteFrame(f.op, f.fin, []byte(p)); err != nil {
					t.Fatal(err)
				}
			}
			if tc.want != 0 {
				expectClose(t, c, 5*time.Second, tc.want, "message larger than the server accepts")
				return
			}
			m, err := c.ReadJSON(5 * time.Second)
			if err != nil || m["type"] != "echo" || m["data"] != whole.String() {
				t.Fatalf("answer to a %d-byte message = %.100v, %v; want it echoed whole", whole.Len(), m, err)
			}
		})
	}

	t.Run("fragments are reassembled, with a ping between them", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t)
		c, _ := openWS(t, e, e.issue("alice", time.Hour, "ws"))
		parts := []string{"hel", "lo, wor", "ld \xc3", "\xa9"} // é split across two fragments
		for i, p := range parts {
			op := byte(0x0)
			if i == 0 {
				op = 0x1
			}
			if err := c.WriteFrame(op, i == len(parts)-1, []byte(p)); err != nil {
				t.Fatal(err)
			}
			if i == 1 {
				if err := c.WriteFrame(0x9, true, []byte("between")); err != nil {
					t.Fatal(err)
				}
				op, p, err := c.ReadFrame(5 * time.Second)
				if err != nil || op != 0xA || string(p) != "between" {
					t.Fatalf("answer to a ping between fragments = op %d %q, %v; want a pong with its payload", op, p, err)
				}
			}
		}
		m, err := c.ReadJSON(5 * time.Second)
		if err != nil || m["type"] != "echo" || m["data"] != "hello, world é" {
			t.Fatalf("answer to a fragmented message = %v, %v; want it echoed whole", m, err)
		}
	})

	t.Run("a client that stops reading is dropped after WriteTimeout", func(t *testing.T) {
		t.Parallel()
		const writeTimeout = 300 * time.Millisecond
		e := newEnv(t, withServer(func(c *server.Config) { c.WriteTimeout = writeTimeout }))
		c, _ := openWS(t, e, e.issue("alice", time.Hour, "ws"))
		c.nc.(*net.TCPConn).SetReadBuffer(4 << 10) // fill up sooner
		// Every message asks for a 16 KiB echo that the client never reads.
		msg := []byte(strings.Repeat("x", 16<<10))
		spamDone := make(chan error, 1)
		start := time.Now()
		go func() {
			for {
				if err := c.WriteFrame(0x1, true, msg); err != nil {
					spamDone <- err
					return
				}
			}
		}()
		waitFor(t, 10*time.Second, "the server to drop the client that does not read", func() bool { return e.srv.OpenConns() == 0 })
		t.Logf("dropped %v after the client stopped reading", time.Since(start).Round(time.Millisecond))
		c.nc.Close()
		if err := <-spamDone; err == nil {
			t.Error("writes to a dropped connection kept succeeding")
		}
	})

	t.Run("a silent peer is dropped after PingInterval+WriteTimeout", func(t *testing.T) {
		t.Parallel()
		const ping, write = 200 * time.Millisecond, 200 * time.Millisecond
		e := newEnv(t, withServer(func(c *server.Config) { c.PingInterval, c.WriteTimeout = ping, write }))
		tok := e.issue("alice", time.Hour, "ws")
		start := time.Now() // before the server can set its first read deadline
		c, _ := openWS(t, e, tok)
		// Read without answering: pings arrive, then the server hangs up.
		pings := 0
		for {
			op, _, err := c.ReadFrame(ping + write + slack + 5*time.Second)
			if err != nil {
				if !errors.Is(err, io.EOF) {
					t.Fatalf("silent peer: %v; want the server to close the connection", err)
				}
				break
			}
			if op != 0x9 {
				t.Fatalf("silent peer got frame op %d; want only pings", op)
			}
			pings++
		}
		took := time.Since(start)
		if pings == 0 || took < ping+write || took > ping+write+slack {
			t.Errorf("silent peer dropped after %v and %d pings; want ≥1 ping and %v (+%v)", took, pings, ping+write, slack)
		}
		waitFor(t, 5*time.Second, "the server to forget the silent peer", func() bool { return e.srv.OpenConns() == 0 })
	})

	t.Run("a peer that answers pings stays", func(t *testing.T) {
		t.Parallel()
		const ping, write = 300 * time.Millisecond, 500 * time.Millisecond
		e := newEnv(t, withServer(func(c *server.Config) { c.PingInterval, c.WriteTimeout = ping, write }))
		c, _ := openWS(t, e, e.issue("alice", time.Hour, "ws"))
		// Answer pings, send nothing else, for three idle periods.
		pings := 0
		for deadline := time.Now().Add(3 * (ping + write)); ; {
			op, p, err := c.ReadFrame(time.Until(deadline))
			if isTimeout(err) {
				break
			}
			if err != nil || op != 0x9 {
				t.Fatalf("quiet peer answering pings: got op %d %q, %v; want only pings", op, p, err)
			}
			pings++
			if err := c.WriteFrame(0xA, true, p); err != nil {
				t.Fatal(err)
			}
		}
		if pings < 3 {
			t.Errorf("%d pings in %v with PingInterval %v; want at least 3", pings, 3*(ping+write), ping)
		}
		expectEcho(t, c, "still here")
	})

	t.Run("MaxConns answers 503 before the upgrade", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, withServer(func(c *server.Config) { c.MaxConns = 2 }))
		tok := e.issue("alice", time.Hour, "ws")
		first, _ := openWS(t, e, tok)
		openWS(t, e, tok)
		c, resp, body := e.dial("/ws", bearer(tok))
		if c != nil {
			t.Fatal("third connection with MaxConns 2: upgraded; want 503")
		}
		checkRefusal(t, "third WebSocket with MaxConns 2", resp.StatusCode, resp.Header, body, 503, "", "temporarily_unavailable", tok)
		if ra := resp.Header.Get("Retry-After"); ra == "" {
			t.Error("503 for MaxConns: no Retry-After")
		}
		first.Close()
		waitFor(t, 5*time.Second, "a slot to free", func() bool { return e.srv.OpenConns() == 1 })
		openWS(t, e, tok)
	})
}
