package integration_test

// Benchmarks of what authorization costs. Each one that has a
// target runs wsauth beside a bare golang.org/x/net/websocket server defined
// here, with the same route and message shapes and no auth, as two
// sub-benchmarks of one run, so that benchstat can compare them:
//
//	go test -bench . -run '^$' -count 6 ./integration_test | tee bench.txt
//	benchstat -col /server bench.txt
//
// On a shared machine the load moves between two sub-benchmarks; the
// Paired benchmarks (end of file) alternate the two servers operation by
// operation and report the ratio itself, the figure to quote:
//
//	go test -bench Paired -run '^$' -benchtime 2s -count 6 ./integration_test | benchstat -
//
// The client is the same lean RFC 6455 client for both servers, and it does
// not allocate once connected, so allocs/op of the echo benchmarks are the
// server's.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/websocket"

	faketokensvc "wsauth/fake_tokensvc"
	"wsauth/server"
	"wsauth/tokens"
)

// benchServer is one server under benchmark: wsauth in front of the fake
// token service, or the bare x/net/websocket server.
type benchServer struct {
	name   string
	url    string      // http://127.0.0.1:port
	header http.Header // the credential wsauth needs; empty for bare

	openConns func() int // WebSocket connections the server holds

	svc *faketokensvc.Service // wsauth only
	srv *server.Server        // wsauth only
	log *benchLog             // wsauth only
}

// newBenchWsauth starts the fake token service and wsauth as cmd/wsauth
// does (an Introspector behind a Cache, a text logger), with one token
// issued for the "bench" subject.
func newBenchWsauth(b *testing.B, configure func(*server.Config)) *benchServer {
	b.Helper()
	svc := faketokensvc.New(faketokensvc.Options{ClientID: "wsauth", ClientSecret: "bench-secret"})
	svcTS := httptest.NewServer(svc.Handler())
	in := &tokens.Introspector{URL: svcTS.URL + "/introspect", ClientID: "wsauth", ClientSecret: "bench-secret",
		HTTPClient: svcTS.Client()}
	cfg := server.Config{Validator: tokens.NewCache(in, tokens.CacheConfig{})}
	if configure != nil {
		configure(&cfg)
	}
	bs := serveBenchWsauth(b, svc, svcTS, cfg)
	bs.header.Set("Authorization", "Bearer "+bs.issue("bench"))
	return bs
}

// serveBenchWsauth starts wsauth with cfg, logging to a benchLog, in front
// of the token service svc served by svcTS. When the benchmark ends it
// shuts both down and fails it if a log line held a token.
func serveBenchWsauth(b *testing.B, svc *faketokensvc.Service, svcTS *httptest.Server, cfg server.Config) *benchServer {
	b.Helper()
	bl := &benchLog{}
	cfg.Logger = slog.New(slog.NewTextHandler(bl, nil))
	srv := server.New(cfg)
	ts := httptest.NewServer(srv)
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		ts.Close()
		svcTS.Close()
		if bl.leaked.Load() {
			b.Error("a server log line holds a token-shaped string")
		}
	})
	return &benchServer{name: "wsauth", url: ts.URL, svc: svc, srv: srv, log: bl, header: http.Header{}, openConns: srv.OpenConns}
}

// issue mints a token for sub with scopes api and ws, valid for an hour.
func (bs *benchServer) issue(sub string) string {
	tok, _ := bs.svc.Issue(sub, []string{"api", "ws"}, time.Hour)
	leakMu.Lock()
	if len(issued) < 1000 { // enough for TestMain's log check; benchLog checks every line
		issued = append(issued, tok)
	}
	leakMu.Unlock()
	return tok
}

// Messages of the bare server: the shapes of wsauth's welcome and echo.
type (
	bareWelcome struct {
		Type  string   `json:"type"`
		Sub   string   `json:"sub"`
		Scope []string `json:"scope"`
		Exp   int64    `json:"exp,omitempty"`
	}
	bareEcho struct {
		Type string `json:"type"`
		Sub  string `json:"sub"`
		Data string `json:"data"`
	}
	bareMe struct {
		Sub   string   `json:"sub"`
		Scope []string `json:"scope"`
		Exp   int64    `json:"exp,omitempty"`
	}
)

// newBenchBare starts the baseline: GET /ws is a plain websocket.Server
// (no Handshake hook, so no origin check) that sends a welcome and echoes
// each message; GET /api/me answers the same JSON as wsauth. No auth, no
// logging, no timers.
func newBenchBare(b *testing.B) *benchServer {
	b.Helper()
	scopes := []string{"api", "ws"}
	exp := time.Now().Add(time.Hour).Unix()
	var open atomic.Int64
	mux := http.NewServeMux()
	mux.Handle("GET /ws", websocket.Server{Handler: func(ws *websocket.Conn) {
		open.Add(1)
		defer open.Add(-1)
		if websocket.JSON.Send(ws, bareWelcome{Type: "welcome", Sub: "bench", Scope: scopes, Exp: exp}) != nil {
			return
		}
		var msg string
		for websocket.Message.Receive(ws, &msg) == nil {
			if websocket.JSON.Send(ws, bareEcho{Type: "echo", Sub: "bench", Data: msg}) != nil {
				return
			}
		}
	}})
	mux.HandleFunc("GET /api/me", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(http.StatusOK)
		json.NewEncoder(w).Encode(bareMe{Sub: "bench", Scope: scopes, Exp: exp})
	})
	ts := httptest.NewServer(mux)
	b.Cleanup(ts.Close)
	return &benchServer{name: "bare", url: ts.URL, header: http.Header{}, openConns: func() int { return int(open.Load()) }}
}

// benchServers runs f as sub-benchmarks server=bare and server=wsauth.
func benchServers(b *testing.B, configure func(*server.Config), f func(b *testing.B, bs *benchServer)) {
	b.Run("server=bare", func(b *testing.B) { f(b, newBenchBare(b)) })
	b.Run("server=wsauth", func(b *testing.B) { f(b, newBenchWsauth(b, configure)) })
}

// benchLog receives wsauth's log lines during benchmarks. Every line is
// checked for a token-shaped string (a run of 43 or more base64url
// characters: the fake's tokens are 43); the first 64 KiB also go to
// allLogs for TestMain's check, which would be quadratic over every line.
type benchLog struct {
	leaked atomic.Bool
}

func (l *benchLog) Write(p []byte) (int, error) {
	run := 0
	for _, c := range p {
		if c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_' {
			if run++; run >= 43 {
				l.leaked.Store(true)
				break
			}
		} else {
			run = 0
		}
	}
	leakMu.Lock()
	if allLogs.Len() < 64<<10 {
		allLogs.Write(p)
	}
	leakMu.Unlock()
	return len(p), nil
}

// benchKey is a fixed Sec-WebSocket-Key and benchAccept its answer
// (RFC 6455 §1.3's example): a server may not tell them from random ones.
const (
	benchKey    = "dGhlIHNhbXBsZSBub25jZQ=="
	benchAccept = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
)

// benchConn is a lean RFC 6455 client: one handshake, then masked text
// frames written from a prepared buffer and server frames read into a
// reused one.
type benchConn struct {
	nc  net.Conn
	br  *bufio.Reader
	out []byte // one masked text frame, ready to write
	in  []byte // the last server message
}

// benchDial opens a WebSocket to base+"/ws" with header and reads the
// welcome message.
func benchDial(base string, header http.Header) (*benchConn, error) {
	u, err := url.Parse(base)
	if err != nil {
		return nil, err
	}
	nc, err := net.Dial("tcp", u.Host)
	if err != nil {
		return nil, fmt.Errorf("dial: %w", err)
	}
	var req strings.Builder
	req.WriteString("GET /ws HTTP/1.1\r\nHost: " + u.Host +
		"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: " + benchKey + "\r\n")
	for k, vs := range header {
		for _, v := range vs {
			req.WriteString(k + ": " + v + "\r\n")
		}
	}
	req.WriteString("\r\n")
	c := &benchConn{nc: nc, br: bufio.NewReaderSize(nc, 1024), in: make([]byte, 0, 512)}
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(nc, req.String()); err != nil {
		nc.Close()
		return nil, fmt.Errorf("write handshake: %w", err)
	}
	status, accepted := "", false
	for {
		line, err := c.br.ReadSlice('\n')
		if err != nil {
			nc.Close()
			return nil, fmt.Errorf("read handshake: %w", err)
		}
		if status == "" {
			status = strings.TrimSpace(string(line))
			continue
		}
		if len(line) <= 2 {
			break
		}
		if k, v, ok := bytes.Cut(line, []byte(":")); ok && strings.EqualFold(string(k), "Sec-WebSocket-Accept") {
			accepted = string(bytes.TrimSpace(v)) == benchAccept
		}
	}
	if !strings.HasPrefix(status, "HTTP/1.1 101 ") || !accepted {
		nc.Close()
		return nil, fmt.Errorf("handshake answered %q", status)
	}
	if err := c.read(); err != nil {
		nc.Close()
		return nil, fmt.Errorf("read welcome: %w", err)
	}
	if !bytes.Contains(c.in, []byte(`"type":"welcome"`)) {
		nc.Close()
		return nil, fmt.Errorf("first message %q; want a welcome", c.in)
	}
	nc.SetDeadline(time.Time{})
	return c, nil
}

// prepare makes msg the text frame that send writes.
func (c *benchConn) prepare(msg string) {
	mask := [4]byte{0x1f, 0x2e, 0x3d, 0x4c}
	c.out = append(c.out[:0], 0x81, 0x80|byte(len(msg))) // len(msg) <= 125
	c.out = append(c.out, mask[:]...)
	for i := range len(msg) {
		c.out = append(c.out, msg[i]^mask[i&3])
	}
}

func (c *benchConn) send() error {
	_, err := c.nc.Write(c.out)
	return err
}

// read reads one unfragmented server text frame into c.in.
func (c *benchConn) read() error {
	var h [2]byte
	if _, err := io.ReadFull(c.br, h[:]); err != nil {
		return err
	}
	if h[0] != 0x81 {
		return fmt.Errorf("frame byte 0 = %#x; want a final text frame", h[0])
	}
	n := int(h[1] & 0x7f)
	if n == 126 {
		if _, err := io.ReadFull(c.br, h[:]); err != nil {
			return err
		}
		n = int(binary.BigEndian.Uint16(h[:]))
	} else if n == 127 {
		return errors.New("frame too long for the benchmark client")
	}
	if cap(c.in) < n {
		c.in = make([]byte, n)
	}
	c.in = c.in[:n]
	_, err := io.ReadFull(c.br, c.in)
	return err
}

const benchMsg = "hello, wsauth"

var benchEcho = []byte(`"data":"` + benchMsg + `"`)

// roundTrip sends the prepared message and reads its echo.
func (c *benchConn) roundTrip() error {
	if err := c.send(); err != nil {
		return err
	}
	if err := c.read(); err != nil {
		return err
	}
	if !bytes.Contains(c.in, benchEcho) {
		return fmt.Errorf("answer %q; want the echo", c.in)
	}
	return nil
}

// BenchmarkHandshake measures a WebSocket opening handshake with the token
// in the cache: TCP connect, upgrade, welcome message, TCP close. Target:
// wsauth at most 5 % slower than bare (docs/PERFORMANCE.md).
func BenchmarkHandshake(b *testing.B) {
	benchServers(b, nil, func(b *testing.B, bs *benchServer) {
		c, err := benchDial(bs.url, bs.header) // warms the cache
		if err != nil {
			b.Fatal(err)
		}
		c.nc.Close()
		b.ReportAllocs()
		b.ResetTimer()
		for range b.N {
			c, err := benchDial(bs.url, bs.header)
			if err != nil {
				b.Fatal(err)
			}
			c.nc.Close()
		}
	})
}

// BenchmarkHandshakeColdCache measures a handshake whose token the cache has
// never seen: one introspection each, to the fake on loopback.
func BenchmarkHandshakeColdCache(b *testing.B) {
	bs := newBenchWsauth(b, nil)
	headers := make([]http.Header, b.N)
	for i := range headers {
		headers[i] = http.Header{"Authorization": {"Bearer " + bs.issue("bench-"+strconv.Itoa(i))}}
	}
	before := bs.svc.Introspections()
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		c, err := benchDial(bs.url, headers[i])
		if err != nil {
			b.Fatal(err)
		}
		c.nc.Close()
	}
	b.StopTimer()
	b.ReportMetric(float64(bs.svc.Introspections()-before)/float64(b.N), "introspections/op")
}

// BenchmarkAPIMe measures GET /api/me with a bearer token in the cache, on
// a kept-alive connection.
func BenchmarkAPIMe(b *testing.B) {
	benchServers(b, nil, func(b *testing.B, bs *benchServer) {
		client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
		defer client.CloseIdleConnections()
		req, _ := http.NewRequest("GET", bs.url+"/api/me", nil)
		req.Header = bs.header
		get := func() error {
			resp, err := client.Do(req)
			if err != nil {
				return err
			}
			_, err = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("GET /api/me: status %d", resp.StatusCode)
			}
			return err
		}
		if err := get(); err != nil { // warms the cache
			b.Fatal(err)
		}
		b.ReportAllocs()
		b.ResetTimer()
		for range b.N {
			if err := get(); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkEcho measures one echo round trip on one connection, and
// messages per second with 1 and 100 connections in use at once. Target:
// wsauth within 5 % of bare.
func BenchmarkEcho(b *testing.B) {
	for _, conns := range []int{1, 100} {
		b.Run("conns="+strconv.Itoa(conns), func(b *testing.B) {
			benchServers(b, nil, func(b *testing.B, bs *benchServer) {
				pool := make(chan *benchConn, conns)
				for range conns {
					c, err := benchDial(bs.url, bs.header)
					if err != nil {
						b.Fatal(err)
					}
					c.prepare(benchMsg)
					if err := c.roundTrip(); err != nil {
						b.Fatal(err)
					}
					pool <- c
					defer c.nc.Close()
				}
				b.ReportAllocs()
				b.ResetTimer()
				if conns == 1 {
					c := <-pool
					for range b.N {
						if err := c.roundTrip(); err != nil {
							b.Fatal(err)
						}
					}
				} else {
					// 50 goroutines per GOMAXPROCS: 100 on this 2-core machine.
					b.SetParallelism(max(1, conns/runtime.GOMAXPROCS(0)))
					b.RunParallel(func(pb *testing.PB) {
						var c *benchConn
						select {
						case c = <-pool:
						default:
							b.Error("more goroutines than connections")
							return
						}
						for pb.Next() {
							if err := c.roundTrip(); err != nil {
								b.Error(err)
								return
							}
						}
					})
				}
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
			})
		})
	}
}

// BenchmarkIdleConnMemory measures the server's heap and goroutine stacks
// per idle connection: a helper process (TestHoldConnsHelper) opens them,
// so that only the server's side is in this process's numbers. Target: at
// most 1 KiB above bare.
//
// With $WSAUTH_HEAP_PROFILE set to a path, it records every allocation and
// writes, while the connections are held, a heap profile to that path
// with ".bare" or ".wsauth" appended, and one before they opened with
// ".base" after that: go tool pprof -top -base <path>.wsauth.base
// <path>.wsauth shows what the connections hold (docs/PERFORMANCE.md).
func BenchmarkIdleConnMemory(b *testing.B) {
	const n = 2000
	profile := os.Getenv("WSAUTH_HEAP_PROFILE")
	if profile != "" {
		defer func(rate int) { runtime.MemProfileRate = rate }(runtime.MemProfileRate)
		runtime.MemProfileRate = 1
	}
	// One subject holds every connection: no per-subject cap.
	benchServers(b, func(c *server.Config) { c.MaxConnsPerSubject = -1 }, func(b *testing.B, bs *benchServer) {
		var perConn float64
		for range b.N {
			held := func() {}
			if profile != "" {
				writeHeapProfile(b, profile+"."+bs.name+".base")
				held = func() { writeHeapProfile(b, profile+"."+bs.name) }
			}
			perConn += holdConns(b, bs, n, nil, held)
		}
		b.ReportMetric(0, "ns/op")
		b.ReportMetric(perConn/float64(b.N), "B/conn")
	})
}

// writeHeapProfile writes the heap profile as of a fresh GC to path.
func writeHeapProfile(b *testing.B, path string) {
	b.Helper()
	runtime.GC()
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkStalledFrameMemory measures the server's memory per connection
// that announces a frame of -max-message-bytes (64 KiB) and sends one byte
// of it, what a client costs that wants to hold the most memory for the
// least bytes, and one that sends all of it but the last byte, the most a
// message being read can hold, against idle connections (docs/DEPLOY.md,
// "Memory per connection").
func BenchmarkStalledFrameMemory(b *testing.B) {
	const n = 1000
	// The mask is zero, so that the payload goes as written.
	header := append([]byte{0x81, 0x80 | 127}, binary.BigEndian.AppendUint64(nil, 64<<10)...)
	header = append(header, 0, 0, 0, 0)
	for _, tc := range []struct {
		name string
		send []byte
	}{
		{"idle", nil},
		{"stalled-64KiB-frame-after-1-byte", append(header, 'x')},
		{"stalled-64KiB-frame-1-byte-short", append(header, bytes.Repeat([]byte{'x'}, 64<<10-1)...)},
	} {
		b.Run(tc.name, func(b *testing.B) {
			bs := newBenchWsauth(b, func(c *server.Config) { c.MaxConnsPerSubject = -1 })
			var perConn float64
			for range b.N {
				perConn += holdConns(b, bs, n, tc.send)
			}
			b.ReportMetric(0, "ns/op")
			b.ReportMetric(perConn/float64(b.N), "B/conn")
		})
	}
}

// BenchmarkUnreadEchoMemory measures the server's memory per connection
// whose client sends 64 KiB messages and never reads the answers: the
// server holds the message and what it cannot write of the echo until
// WriteTimeout (made a minute here, so that the figure is taken while every
// write waits). The messages are of '<', which HTML escaping would make six
// bytes each, and of 0x01, which JSON escapes to six bytes (\u0001), the
// largest echo a message can have. docs/DEPLOY.md quotes it.
func BenchmarkUnreadEchoMemory(b *testing.B) {
	for _, c := range []byte{'<', 0x01} {
		b.Run(fmt.Sprintf("byte=%#02x", c), func(b *testing.B) {
			const n = 50
			msg := bytes.Repeat([]byte{c}, 64<<10-1)
			frame := append([]byte{0x81, 0x80 | 126, byte(len(msg) >> 8), byte(len(msg)), 0, 0, 0, 0}, msg...)
			bs := newBenchWsauth(b, func(c *server.Config) { c.MaxConnsPerSubject, c.WriteTimeout = -1, time.Minute })
			for range b.N {
				base := serverMem()
				var wg sync.WaitGroup
				conns := make([]*benchConn, n)
				for i := range conns {
					c, err := benchDial(bs.url, bs.header)
					if err != nil {
						b.Fatal(err)
					}
					conns[i] = c
					wg.Go(func() {
						// Writes until the server stops reading, which it does
						// while its echo waits for the socket buffers to drain.
						for {
							c.nc.SetWriteDeadline(time.Now().Add(2 * time.Second))
							if _, err := c.nc.Write(frame); err != nil {
								return
							}
						}
					})
				}
				wg.Wait() // every client's writes are blocked: every server write is too
				b.ReportMetric(float64(serverMem()-base)/n, "B/conn")
				for _, c := range conns {
					c.nc.Close()
				}
				waitFor(b, 30*time.Second, "the connections to close", func() bool { return bs.openConns() == 0 })
			}
			b.ReportMetric(0, "ns/op")
		})
	}
}

// holdConns has a helper process open n connections to bs, each sending
// send after the welcome, and returns the growth of HeapInuse+StackInuse
// per connection, after a GC. While they are held it calls each of held.
func holdConns(b *testing.B, bs *benchServer, n int, send []byte, held ...func()) float64 {
	b.Helper()
	base := serverMem()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHoldConnsHelper$")
	sendFile := filepath.Join(b.TempDir(), "send")
	if err := os.WriteFile(sendFile, send, 0o600); err != nil {
		b.Fatal(err)
	}
	cmd.Env = append(os.Environ(), "WSAUTH_HOLD_URL="+bs.url, "WSAUTH_HOLD_N="+strconv.Itoa(n),
		"WSAUTH_HOLD_AUTH="+bs.header.Get("Authorization"), "WSAUTH_HOLD_SEND="+sendFile)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() {
		stdin.Close() // the helper exits, closing its connections
		cmd.Wait()
		waitFor(b, 30*time.Second, "the held connections to close", func() bool { return bs.openConns() == 0 })
	}()
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if strings.TrimSpace(line) != "ready" {
		b.Fatalf("helper process: %q, %v", line, err)
	}
	if got := bs.openConns(); got != n {
		b.Fatalf("server holds %d connections; want %d", got, n)
	}
	if send == nil {
		mem := serverMem()
		for _, f := range held {
			f()
		}
		return float64(mem-base) / float64(n)
	}
	// The server reads what the helper sent in its own time and says
	// nothing: poll until its memory stops moving.
	var mem int64
	deadline := time.Now().Add(10 * time.Second)
	for prev := int64(-1); time.Now().Before(deadline); prev = mem {
		if mem = serverMem(); prev >= 0 && max(mem-prev, prev-mem) < mem/200 {
			break
		}
		<-time.After(100 * time.Millisecond) // polling with a deadline
	}
	return float64(mem-base) / float64(n)
}

// serverMem is HeapInuse+StackInuse after a GC.
func serverMem() int64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapInuse + ms.StackInuse)
}

// TestHoldConnsHelper is BenchmarkIdleConnMemory's helper process: it opens
// $WSAUTH_HOLD_N connections to $WSAUTH_HOLD_URL, reads each welcome, sends
// the bytes of the file $WSAUTH_HOLD_SEND names, says "ready", and holds
// them until its stdin closes. Run alone, it skips.
func TestHoldConnsHelper(t *testing.T) {
	base := os.Getenv("WSAUTH_HOLD_URL")
	if base == "" {
		t.Skip("helper process of BenchmarkIdleConnMemory")
	}
	n, _ := strconv.Atoi(os.Getenv("WSAUTH_HOLD_N"))
	send, err := os.ReadFile(os.Getenv("WSAUTH_HOLD_SEND"))
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	header := http.Header{}
	if a := os.Getenv("WSAUTH_HOLD_AUTH"); a != "" {
		header.Set("Authorization", a)
	}
	conns := make([]*benchConn, n)
	errs := make(chan error, n)
	sem := make(chan struct{}, 16)
	var wg sync.WaitGroup
	for i := range conns {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			c, err := benchDial(base, header)
			if err != nil {
				errs <- err
				return
			}
			if len(send) > 0 {
				if _, err := c.nc.Write(send); err != nil {
					errs <- err
					return
				}
			}
			conns[i] = c
		})
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	fmt.Println("ready")
	io.Copy(io.Discard, os.Stdin)
	os.Exit(0) // skips TestMain's checks: this process issued no token and logged nothing
}

// BenchmarkRecheckIntrospections measures the token system calls of each
// periodic recheck (sweep) of N connections that share K tokens: one per
// token, so at most K. Calls are counted by the fake; sweeps are
// the fewest rechecks any one token had in the window (refreshCounter), so
// that a sweep the ticker drops on a loaded machine does not read as a
// sweep with fewer calls, and a sweep that asks twice about a token reads
// as more than K.
func BenchmarkRecheckIntrospections(b *testing.B) {
	for _, tc := range []struct{ conns, tokens int }{{200, 10}, {200, 200}} {
		b.Run(fmt.Sprintf("conns=%d/tokens=%d", tc.conns, tc.tokens), func(b *testing.B) {
			const interval = 200 * time.Millisecond
			rc := &refreshCounter{n: map[string]int{}}
			bs := newBenchWsauth(b, func(c *server.Config) {
				c.Recheck = interval
				rc.Cache = c.Validator.(*tokens.Cache)
				c.Validator = rc
			})
			toks := make([]string, tc.tokens)
			for i := range toks {
				toks[i] = bs.issue("bench-" + strconv.Itoa(i))
			}
			for i := range tc.conns {
				c, err := benchDial(bs.url, http.Header{"Authorization": {"Bearer " + toks[i%tc.tokens]}})
				if err != nil {
					b.Fatal(err)
				}
				defer c.nc.Close()
			}
			// quiet waits until the count has grown past from and then held
			// still for 30 ms: the end of a sweep.
			quiet := func(from int64) int64 {
				last, still := from, 0
				waitFor(b, 20*interval, "the end of a sweep", func() bool {
					n := bs.svc.Introspections()
					if n == last {
						still++
					} else {
						last, still = n, 0
					}
					return n > from && still >= 3
				})
				return last
			}
			var calls, sweeps int64
			for range b.N {
				begin := quiet(bs.svc.Introspections())
				before := rc.snapshot()
				<-time.After(8 * interval) // the measuring window, not a synchronization
				end := quiet(bs.svc.Introspections() - 1)
				after := rc.snapshot()
				fewest := -1
				for _, tok := range toks {
					if d := after[tok] - before[tok]; fewest < 0 || d < fewest {
						fewest = d
					}
				}
				calls += end - begin
				sweeps += int64(fewest)
			}
			if sweeps == 0 {
				b.Fatal("no sweep rechecked every token in the measuring window")
			}
			b.ReportMetric(0, "ns/op")
			b.ReportMetric(float64(calls)/float64(sweeps), "introspections/sweep")
			b.ReportMetric(float64(tc.tokens), "tokens")
		})
	}
}

// refreshCounter is the server's validator, a tokens.Cache, counting the
// rechecks (Refresh calls) of each token.
type refreshCounter struct {
	*tokens.Cache
	mu sync.Mutex
	n  map[string]int
}

func (r *refreshCounter) Refresh(ctx context.Context, token string) (tokens.Principal, error) {
	r.mu.Lock()
	r.n[token]++
	r.mu.Unlock()
	return r.Cache.Refresh(ctx, token)
}

func (r *refreshCounter) snapshot() map[string]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return maps.Clone(r.n)
}

// The Paired benchmarks run bare and wsauth in the same loop, one operation
// of each in turn, and report wsauth's throughput as a fraction of bare's:
// on a shared, noisy machine the load changes between two sub-benchmarks,
// but not between two operations a few microseconds apart. "ratio" is
// bare's time over wsauth's: 0.95 means wsauth does 95 % of bare's
// operations per second (the target for handshakes and echoes is 0.95).

// pairedTimer accumulates the time of each server's operations.
type pairedTimer struct{ bare, wsauth time.Duration }

// run times one operation of each server, alternating which goes first.
func (pt *pairedTimer) run(i int, bare, wsauth func() error) error {
	first, second, df, ds := bare, wsauth, &pt.bare, &pt.wsauth
	if i%2 == 1 {
		first, second, df, ds = wsauth, bare, &pt.wsauth, &pt.bare
	}
	t0 := time.Now()
	if err := first(); err != nil {
		return err
	}
	t1 := time.Now()
	if err := second(); err != nil {
		return err
	}
	*df += t1.Sub(t0)
	*ds += time.Since(t1)
	return nil
}

func (pt *pairedTimer) report(b *testing.B, ops int) {
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(float64(pt.bare.Nanoseconds())/float64(ops), "bare-ns/op")
	b.ReportMetric(float64(pt.wsauth.Nanoseconds())/float64(ops), "wsauth-ns/op")
	b.ReportMetric(pt.bare.Seconds()/pt.wsauth.Seconds(), "ratio")
}

// BenchmarkPairedHandshake is BenchmarkHandshake, paired.
func BenchmarkPairedHandshake(b *testing.B) {
	bare, ws := newBenchBare(b), newBenchWsauth(b, nil)
	handshake := func(bs *benchServer) func() error {
		return func() error {
			c, err := benchDial(bs.url, bs.header)
			if err != nil {
				return err
			}
			return c.nc.Close()
		}
	}
	hb, hw := handshake(bare), handshake(ws)
	if err := hw(); err != nil { // warms the cache
		b.Fatal(err)
	}
	var pt pairedTimer
	b.ResetTimer()
	for i := range b.N {
		if err := pt.run(i, hb, hw); err != nil {
			b.Fatal(err)
		}
	}
	pt.report(b, b.N)
}

// BenchmarkPairedAPIMe is BenchmarkAPIMe, paired.
func BenchmarkPairedAPIMe(b *testing.B) {
	bare, ws := newBenchBare(b), newBenchWsauth(b, nil)
	get := func(bs *benchServer) func() error {
		client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
		b.Cleanup(client.CloseIdleConnections)
		req, _ := http.NewRequest("GET", bs.url+"/api/me", nil)
		req.Header = bs.header
		return func() error {
			resp, err := client.Do(req)
			if err != nil {
				return err
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("GET /api/me: status %d", resp.StatusCode)
			}
			return nil
		}
	}
	gb, gw := get(bare), get(ws)
	if err := gw(); err != nil {
		b.Fatal(err)
	}
	var pt pairedTimer
	b.ResetTimer()
	for i := range b.N {
		if err := pt.run(i, gb, gw); err != nil {
			b.Fatal(err)
		}
	}
	pt.report(b, b.N)
}

// BenchmarkPairedEcho is BenchmarkEcho, paired: each of the 1 or 100
// goroutines holds one connection to each server.
func BenchmarkPairedEcho(b *testing.B) {
	for _, conns := range []int{1, 100} {
		b.Run("conns="+strconv.Itoa(conns), func(b *testing.B) {
			bare, ws := newBenchBare(b), newBenchWsauth(b, nil)
			type pair struct{ bare, ws *benchConn }
			pool := make(chan pair, conns)
			for range conns {
				var p pair
				for _, s := range []struct {
					bs *benchServer
					c  **benchConn
				}{{bare, &p.bare}, {ws, &p.ws}} {
					c, err := benchDial(s.bs.url, s.bs.header)
					if err != nil {
						b.Fatal(err)
					}
					c.prepare(benchMsg)
					defer c.nc.Close()
					*s.c = c
				}
				pool <- p
			}
			var (
				mu    sync.Mutex
				total pairedTimer
			)
			b.ResetTimer()
			b.SetParallelism(max(1, conns/runtime.GOMAXPROCS(0)))
			if conns == 1 {
				b.SetParallelism(1)
			}
			b.RunParallel(func(pb *testing.PB) {
				var p pair
				select {
				case p = <-pool:
				default:
					return // conns=1: the one connection pair is taken
				}
				var pt pairedTimer
				for i := 0; pb.Next(); i++ {
					if err := pt.run(i, p.bare.roundTrip, p.ws.roundTrip); err != nil {
						b.Error(err)
						return
					}
				}
				mu.Lock()
				total.bare += pt.bare
				total.wsauth += pt.wsauth
				mu.Unlock()
			})
			total.report(b, b.N)
		})
	}
}
