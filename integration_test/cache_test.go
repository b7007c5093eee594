package integration_test

import (
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"
	faketokensvc "wsauth/fake_tokensvc"
)

// TestCacheEndToEnd: 50 parallel WebSocket handshakes with one token cost
// one introspection.
func TestCacheEndToEnd(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tok := e.issue("alice", time.Hour, "api", "ws")
	e.svc.SetFaults(faketokensvc.Faults{Latency: 50 * time.Millisecond}) // the handshakes overlap
	var wg sync.WaitGroup
	errs := make(chan string, 50)
	for range 50 {
		wg.Go(func() {
			c, resp, body, err := e.dialer.Dial(e.URL+"/ws", http.Header{"Authorization": {"Bearer " + tok}})
			switch {
			case err != nil:
				errs <- err.Error()
			case c == nil:
				errs <- resp.Status + " " + body
			default:
				if m, err := c.ReadJSON(5 * time.Second); err != nil || m["sub"] != "alice" {
					errs <- fmt.Sprintf("welcome = %v, %v; want sub alice", m, err)
				}
				c.Close()
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := e.svc.Introspections(); n != 1 {
		t.Errorf("50 parallel handshakes with one token: %d introspections; want 1", n)
	}
}
