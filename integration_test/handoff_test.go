package integration_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"wsauth/server"
)

// TestSessionRunsOnItsOwnGoroutine: once upgraded, a WebSocket is served by
// a goroutine of its own, and the goroutine net/http ran the handshake on
// has returned, with its stack, its buffers and the request: an idle
// connection holds none of them. The session's goroutine ends with the
// connection, however it ends (checkNoLeaks), and its log line is the
// request's, written when it closes.
func TestSessionRunsOnItsOwnGoroutine(t *testing.T) {
	checkNoLeaks(t)
	before := map[int64]bool{}
	for _, g := range goroutineStacks() {
		before[g.id] = true
	}
	// count returns how many goroutines started during the test have
	// frame in their stack.
	count := func(frame string) int {
		n := 0
		for _, g := range goroutineStacks() {
			if !before[g.id] && strings.Contains(g.stack, frame) {
				n++
			}
		}
		return n
	}

	for _, tc := range []struct {
		name string
		end  func(t *testing.T, e *env, c *wsConn)
		code int // in the log line; 0 for none
	}{
		{"the client closes", func(t *testing.T, e *env, c *wsConn) {
			c.WriteClose(1000, "")
			c.ExpectClose(t, 5*time.Second, 1000, "")
		}, 1000},
		{"the client hangs up", func(t *testing.T, e *env, c *wsConn) { c.nc.Close() }, 0},
		{"the server shuts down", func(t *testing.T, e *env, c *wsConn) {
			go func() {
				c.ExpectClose(t, 5*time.Second, server.CloseGoingAway, "server shutting down")
				c.WriteClose(server.CloseGoingAway, "")
			}()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if n, err := e.srv.Shutdown(ctx); n != 1 || err != nil {
				t.Errorf("Shutdown = %d, %v; want 1, nil", n, err)
			}
		}, server.CloseGoingAway},
		{"the shutdown deadline drops it", func(t *testing.T, e *env, c *wsConn) {
			ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
			defer cancel()
			if _, err := e.srv.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("Shutdown of a client that never answers: %v; want the deadline", err)
			}
		}, server.CloseGoingAway},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, withServer(func(c *server.Config) { c.CloseTimeout = time.Minute }))
			c, _ := openWS(t, e, e.issue("alice", time.Hour, "ws"))
			waitFor(t, 5*time.Second, "the handshake's goroutine to leave the handler", func() bool {
				return count("wsauth/server.(*Server).ServeHTTP") == 0
			})
			if n := count("wsauth/server.(*session).serve"); n != 1 {
				t.Errorf("open WebSocket: %d goroutines run a session; want 1", n)
			}
			if n := count("wsauth/server.(*Server).websocket"); n != 0 {
				t.Errorf("open WebSocket: %d goroutines are still in its handler; want 0", n)
			}

			tc.end(t, e, c)
			waitFor(t, 5*time.Second, "the session's goroutine to end", func() bool {
				return count("wsauth/server.(*session).serve") == 0
			})
			if open := e.srv.OpenConns(); open != 0 {
				t.Errorf("OpenConns = %d after the connection ended; want 0", open)
			}
			parts := []string{"method=GET path=/ws status=101 duration=", "client=127.0.0.1 sub=alice credential=bearer"}
			if tc.code != 0 {
				parts = append(parts, "close_code="+strconv.Itoa(tc.code))
			}
			waitFor(t, 5*time.Second, "the request's log line", func() bool { return e.log.logged(parts...) })
		})
	}
}

// TestShutdownWhileUpgrading: Shutdown runs while handshakes are in flight,
// some between their reservation and their session's start, where the
// connection passes from net/http's goroutine to its own. Every client is
// answered 503 before the upgrade, or upgraded and closed with 1001; none
// stays open, and no goroutine outlives the server (checkNoLeaks; run it
// under -race).
func TestShutdownWhileUpgrading(t *testing.T) {
	checkNoLeaks(t)
	e := newEnv(t, withServer(func(c *server.Config) { c.MaxConnsPerSubject = -1 }))
	tok := e.issue("alice", time.Hour, "ws")
	const n = 40
	outcomes := make(chan string, n)
	var wg sync.WaitGroup
	upgraded := make(chan struct{}, n)
	for range n {
		wg.Go(func() {
			c, resp, _, err := e.dialer.Dial(e.URL+"/ws", http.Header{"Authorization": {"Bearer " + tok}})
			switch {
			case err != nil:
				outcomes <- "dial: " + err.Error()
				return
			case c == nil:
				if resp.StatusCode == http.StatusServiceUnavailable {
					outcomes <- "503"
				} else {
					outcomes <- "status " + resp.Status
				}
				return
			}
			defer c.nc.Close()
			upgraded <- struct{}{}
			for {
				_, err := c.Read(10 * time.Second) // the welcome, if it came first
				var ce *wsCloseError
				switch {
				case errors.As(err, &ce) && ce.Code == server.CloseGoingAway:
					c.WriteClose(server.CloseGoingAway, "")
					outcomes <- "1001"
					return
				case errors.As(err, &ce):
					outcomes <- "close " + ce.Error()
					return
				case err != nil && !errors.Is(err, io.EOF):
					outcomes <- "read: " + err.Error()
					return
				case err != nil:
					outcomes <- "EOF without a close frame"
					return
				}
			}
		})
	}
	<-upgraded // the others are on their way
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := e.srv.Shutdown(ctx); err != nil {
		t.Errorf("Shutdown: %v; want nil", err)
	}
	wg.Wait()
	close(outcomes)
	counts := map[string]int{}
	for o := range outcomes {
		counts[o]++
		if o != "503" && o != "1001" {
			t.Errorf("a client during Shutdown: %s; want 503 before the upgrade or 1001 after it", o)
		}
	}
	t.Logf("outcomes: %v", counts)
	if open := e.srv.OpenConns(); open != 0 {
		t.Errorf("OpenConns after Shutdown = %d; want 0", open)
	}
}
