package integration_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"wsauth/server"
	"wsauth/tokens"
)

// heapAfterGC is the live heap, after the collector has had two runs to
// empty the sync.Pools.
func heapAfterGC() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// cacheBytesPerEntry bounds the heap one cache entry costs: the map slot
// (32-byte key and a pointer, with the map's overhead, ~64 bytes), the list
// element (48), the entry (32-byte key, Principal, error, time: 160) and
// an allocation class's rounding. 512 leaves room for all of it.
const cacheBytesPerEntry = 512

// TestCacheBoundedUnderDistinctBadTokens validates a million distinct bad
// tokens through the cache, with an in-memory validator that counts its
// calls (HTTP would take minutes): every one reaches the validator (none
// is answered from another's entry), the cache holds MaxEntries at most,
// and the heap grows by at most MaxEntries × cacheBytesPerEntry, then stops
// growing however many more come. Under -race it runs 400,000 tokens.
func TestCacheBoundedUnderDistinctBadTokens(t *testing.T) {
	const maxEntries = 100_000
	total := 1_000_000
	if raceEnabled {
		total = 400_000
	}
	var calls atomic.Int64
	bad := fmt.Errorf("%w: unknown", tokens.ErrInvalid)
	c := tokens.NewCache(tokens.ValidatorFunc(func(context.Context, string) (tokens.Principal, error) {
		calls.Add(1)
		return tokens.Principal{}, bad
	}), tokens.CacheConfig{MaxEntries: maxEntries, InvalidTTL: time.Hour})

	base := heapAfterGC()
	ctx := context.Background()
	tok := []byte("bad-token-000000000000")
	validate := func(from, to int) {
		for i := from; i < to; i++ {
			// Distinct visible-ASCII tokens without a Sprintf per call.
			n := i
			for j := len(tok) - 1; j >= len(tok)-12; j-- {
				tok[j] = byte('a' + n%26)
				n /= 26
			}
			if _, err := c.Validate(ctx, string(tok)); !errors.Is(err, tokens.ErrInvalid) {
				t.Fatalf("token %d: %v; want ErrInvalid", i, err)
			}
		}
	}
	validate(0, maxEntries)
	full := heapAfterGC()
	// Evicting and inserting leaves the map's table somewhat larger than
	// when it was first filled; after that it stays put.
	validate(maxEntries, 3*maxEntries)
	steady := heapAfterGC()
	validate(3*maxEntries, total)
	end := heapAfterGC()

	if n := calls.Load(); n != int64(total) {
		t.Errorf("validator calls = %d; want %d, one per distinct token", n, total)
	}
	if n := c.Len(); n != maxEntries {
		t.Errorf("cache entries = %d; want MaxEntries %d", n, maxEntries)
	}
	bound := uint64(maxEntries * cacheBytesPerEntry)
	t.Logf("heap: %.1f MiB before; %.1f MiB with %d entries (%.0f bytes each); %.1f MiB after %d tokens; %.1f MiB after %d; bound %.1f MiB",
		mib(base), mib(full), maxEntries, float64(full-base)/maxEntries, mib(steady), 3*maxEntries, mib(end), total, mib(base+bound))
	if end > base+bound {
		t.Errorf("heap after %d distinct bad tokens grew by %.1f MiB; want at most MaxEntries × %d bytes = %.1f MiB",
			total, mib(end-base), cacheBytesPerEntry, mib(bound))
	}
	if end > steady+steady/20+(1<<20) {
		t.Errorf("heap went on growing from %.1f MiB after %d tokens to %.1f MiB after %d; want it flat",
			mib(steady), 3*maxEntries, mib(end), total)
	}
}

// TestRegistryBounded: past MaxConns a handshake is answered 503 with
// Retry-After before the upgrade, and places come back as connections close.
func TestRegistryBounded(t *testing.T) {
	e := newEnv(t, withServer(func(c *server.Config) { c.MaxConns = 3 }))
	var open []*wsConn
	for i := range 3 {
		c, resp, _ := e.dial("/ws", bearer(e.issue(fmt.Sprint("user", i), time.Hour, "ws")))
		if c == nil {
			t.Fatalf("connection %d: %v; want 101", i+1, resp.Status)
		}
		open = append(open, c)
	}
	tok := e.issue("late", time.Hour, "ws")
	c, resp, body := e.dial("/ws", bearer(tok))
	if c != nil || resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("connection past MaxConns: %v %q; want 503 with Retry-After", resp.Status, body)
	}
	for _, c := range open {
		c.Close()
	}
	waitFor(t, 5*time.Second, "connections to be released", func() bool { return e.srv.OpenConns() == 0 })
	c, resp, _ = e.dial("/ws", bearer(tok))
	if c == nil {
		t.Fatalf("connection after the others closed: %v; want 101", resp.Status)
	}
	c.Close()
}

// TestHTTPServerLimitsFire shows each http.Server limit that cmd/wsauth
// sets firing, on a server built the same way with shorter values:
// ReadHeaderTimeout drops a client that never finishes its headers,
// MaxHeaderBytes answers 431, IdleTimeout closes an idle keep-alive
// connection, and the server in front of them answers normally meanwhile.
func TestHTTPServerLimitsFire(t *testing.T) {
	e := newEnv(t)
	tok := e.issue("alice", time.Hour, "api")
	const (
		readHeaderTimeout = 300 * time.Millisecond
		idleTimeout       = 300 * time.Millisecond
		maxHeaderBytes    = 4 << 10
	)
	ts := httptest.NewUnstartedServer(e.srv)
	ts.Config.ReadHeaderTimeout = readHeaderTimeout
	ts.Config.IdleTimeout = idleTimeout
	ts.Config.MaxHeaderBytes = maxHeaderBytes
	ts.Start()
	defer ts.Close()
	addr := strings.TrimPrefix(ts.URL, "http://")

	dial := func() (net.Conn, *bufio.Reader) {
		nc, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		nc.SetDeadline(time.Now().Add(10 * time.Second))
		return nc, bufio.NewReader(nc)
	}
	// closedWithin reads until the server closes nc and reports how long it took.
	closedWithin := func(nc net.Conn, br *bufio.Reader) (time.Duration, string) {
		start := time.Now()
		b, _ := io.ReadAll(br)
		return time.Since(start), string(b)
	}

	t.Run("ReadHeaderTimeout", func(t *testing.T) {
		nc, br := dial()
		defer nc.Close()
		io.WriteString(nc, "GET /api/me HTTP/1.1\r\nHost: x\r\n")
		if d, got := closedWithin(nc, br); d > readHeaderTimeout+time.Second || strings.HasPrefix(got, "HTTP/1.1 2") {
			t.Errorf("unfinished headers: closed after %v with %.40q; want closed after about %v, no 2xx", d, got, readHeaderTimeout)
		}
	})
	t.Run("MaxHeaderBytes", func(t *testing.T) {
		resp, _ := rawExchange(t, addr, "GET /api/me HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "+
			strings.Repeat("t", maxHeaderBytes+8192)+"\r\n\r\n")
		if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
			t.Errorf("headers past MaxHeaderBytes: %d; want 431", resp.StatusCode)
		}
	})
	t.Run("IdleTimeout", func(t *testing.T) {
		nc, br := dial()
		defer nc.Close()
		io.WriteString(nc, "GET /api/me HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "+tok+"\r\n\r\n")
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("GET /api/me: %d; want 200", resp.StatusCode)
		}
		if d, got := closedWithin(nc, br); d > idleTimeout+time.Second || got != "" {
			t.Errorf("idle keep-alive connection: closed after %v with %q; want closed after about %v", d, got, idleTimeout)
		}
	})
}

func mib(n uint64) float64 { return float64(n) / (1 << 20) }
