package integration_test

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"wsauth/server"
)

// TestShutdown: Shutdown closes every WebSocket with 1001 and reports how
// many, and a client that does not answer cannot hold it past its deadline.
func TestShutdown(t *testing.T) {
	checkNoLeaks(t)

	t.Run("100 connections read 1001 and Shutdown reports them", func(t *testing.T) {
		t.Parallel()
		const n = 100
		e := newEnv(t, withServer(func(c *server.Config) { c.CloseTimeout = 10 * time.Second }))
		tok := e.issue("alice", time.Hour, "ws")
		type result struct {
			code   int
			reason string
			err    error
		}
		results := make(chan result, n)
		for range n {
			c, _ := openWS(t, e, tok)
			go func() {
				_, err := c.Read(10 * time.Second)
				var ce *wsCloseError
				if !errors.As(err, &ce) {
					results <- result{err: err}
					return
				}
				_, _, err = c.ReadFrame(10 * time.Second)
				if errors.Is(err, io.EOF) {
					err = nil
				}
				results <- result{ce.Code, ce.Reason, err}
			}()
		}
		const deadline = 5 * time.Second
		ctx, cancel := context.WithTimeout(context.Background(), deadline)
		defer cancel()
		start := time.Now()
		closed, err := e.srv.Shutdown(ctx)
		took := time.Since(start)
		if closed != n || err != nil || took > deadline {
			t.Errorf("Shutdown = %d, %v after %v; want %d, nil within %v", closed, err, took, n, deadline)
		}
		t.Logf("Shutdown closed %d connections in %v", closed, took.Round(time.Millisecond))
		for range n {
			r := <-results
			if r.code != server.CloseGoingAway || r.reason != "server shutting down" || r.err != nil {
				t.Errorf("client saw close %d %q, then %v; want 1001 \"server shutting down\", then EOF", r.code, r.reason, r.err)
			}
		}
		if open := e.srv.OpenConns(); open != 0 {
			t.Errorf("OpenConns after Shutdown = %d; want 0", open)
		}
		c, resp, body := e.dial("/ws", bearer(tok))
		if c != nil {
			t.Fatal("WebSocket after Shutdown: upgraded; want 503")
		}
		checkRefusal(t, "WebSocket after Shutdown", resp.StatusCode, resp.Header, body, 503, "", "temporarily_unavailable", tok)
	})

	t.Run("a client that never answers is dropped at the deadline", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, withServer(func(c *server.Config) { c.CloseTimeout = time.Minute }))
		c, _ := openWS(t, e, e.issue("alice", time.Hour, "ws"))
		shutdownMissesDeadline(t, e, 300*time.Millisecond)
		if open := e.srv.OpenConns(); open != 0 {
			t.Errorf("OpenConns after Shutdown = %d; want 0", open)
		}
		op, p, err := c.ReadFrame(5 * time.Second)
		if err != nil || op != 0x8 || len(p) < 2 || binary.BigEndian.Uint16(p) != server.CloseGoingAway {
			t.Errorf("unresponsive client: frame op %d %q, %v; want close 1001", op, p, err)
		}
	})

	t.Run("a client that stopped reading does not hold Shutdown past its deadline", func(t *testing.T) {
		t.Parallel()
		// The server's writes to this client wait up to a minute.
		e := newEnv(t, withServer(func(c *server.Config) { c.WriteTimeout = time.Minute }))
		c, _ := openWS(t, e, e.issue("alice", time.Hour, "ws"))
		c.nc.(*net.TCPConn).SetReadBuffer(4 << 10)
		stalled := stallServer(t, c)
		shutdownMissesDeadline(t, e, 300*time.Millisecond)
		c.nc.Close()
		<-stalled
	})
}

// stallServer makes the server block writing to c: it sends messages whose
// echoes it never reads until the socket buffers are full and its own
// writes stop going through. The returned channel is closed when its
// writing goroutine has ended, which closing c.nc ensures.
func stallServer(t *testing.T, c *wsConn) <-chan struct{} {
	t.Helper()
	var sent atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		msg := []byte(strings.Repeat("x", 16<<10))
		for c.WriteFrame(0x1, true, msg) == nil {
			sent.Add(1)
		}
	}()
	// Stalled: no write went through for half a second.
	last, since := int64(-1), time.Now()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for deadline := time.Now().Add(20 * time.Second); time.Since(since) < 500*time.Millisecond; <-tick.C {
		if n := sent.Load(); n != last {
			last, since = n, time.Now()
		}
		if time.Now().After(deadline) {
			t.Fatal("the server kept reading a client that never reads for 20s")
		}
	}
	return done
}

// shutdownMissesDeadline shuts e's server down with a deadline that its one
// connection cannot meet, and checks that Shutdown reports it and returns
// at the deadline anyway, not when the connection gives up.
func shutdownMissesDeadline(t *testing.T, e *env, deadline time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	start := time.Now()
	closed, err := e.srv.Shutdown(ctx)
	took := time.Since(start)
	if closed != 1 || !errors.Is(err, context.DeadlineExceeded) || took > deadline+slack {
		t.Errorf("Shutdown = %d, %v after %v; want 1, deadline exceeded, within %v", closed, err, took, deadline+slack)
	}
}
