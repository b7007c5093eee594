package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"runtime"
	"testing"
	"time"
)

// waitForOutput polls out until re matches, and returns its first group.
func waitForOutput(t *testing.T, out *syncBuffer, re *regexp.Regexp) string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		if m := re.FindStringSubmatch(out.String()); m != nil {
			return m[1]
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %q in run's output after 10s:\n%s", re, out)
		}
		<-tick.C
	}
}

// readServerFrame reads one unmasked server frame.
func readServerFrame(br *bufio.Reader) (op byte, payload []byte, err error) {
	var h [2]byte
	if _, err := io.ReadFull(br, h[:]); err != nil {
		return 0, nil, err
	}
	n := uint64(h[1] & 0x7f)
	switch n {
	case 126:
		var b [2]byte
		if _, err := io.ReadFull(br, b[:]); err != nil {
			return 0, nil, err
		}
		n = uint64(binary.BigEndian.Uint16(b[:]))
	case 127:
		var b [8]byte
		if _, err := io.ReadFull(br, b[:]); err != nil {
			return 0, nil, err
		}
		n = binary.BigEndian.Uint64(b[:])
	}
	payload = make([]byte, n)
	_, err = io.ReadFull(br, payload)
	return h[0] & 0x0f, payload, err
}

// TestRunShutdownClosesWebSockets runs the command as main does, opens a
// WebSocket, and cancels run's context as SIGTERM would: the client reads
// 1001, run returns nil and logs how many connections it closed.
func TestRunShutdownClosesWebSockets(t *testing.T) {
	before := runtime.NumGoroutine() // not parallel: the count is this test's
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := &syncBuffer{}
	errc := make(chan error, 1)
	go func() {
		errc <- run(ctx, []string{"-addr", "127.0.0.1:0", "-shutdown-timeout", "5s"}, func(string) string { return "" }, out, out)
	}()
	base := waitForOutput(t, out, listeningURL)
	tok := waitForOutput(t, out, regexp.MustCompile(`alice \(scopes api ws\): (\S+)`))
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("listening url %q: %v", base, err)
	}

	nc, err := net.Dial("tcp", u.Host)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(nc, "GET /ws HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nAuthorization: Bearer %s\r\n\r\n", u.Host, tok)
	br := bufio.NewReader(nc)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("WebSocket handshake: %v, %v; want 101", resp, err)
	}
	if op, p, err := readServerFrame(br); err != nil || op != 0x1 || !bytes.Contains(p, []byte(`"welcome"`)) {
		t.Fatalf("first frame = op %d %q, %v; want the welcome", op, p, err)
	}

	cancel()
	op, p, err := readServerFrame(br)
	if err != nil || op != 0x8 || len(p) < 2 || binary.BigEndian.Uint16(p) != 1001 || string(p[2:]) != "server shutting down" {
		t.Fatalf("after cancel: frame op %d %q, %v; want close 1001 \"server shutting down\"", op, p, err)
	}
	// Answer the close, masked with a zero key, as a client must.
	nc.Write([]byte{0x88, 0x82, 0, 0, 0, 0, p[0], p[1]})
	if _, _, err := readServerFrame(br); err != io.EOF {
		t.Errorf("after the closing handshake: %v; want EOF", err)
	}

	select {
	case err := <-errc:
		if err != nil {
			t.Errorf("run = %v; want nil after a clean shutdown", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("run did not return 10s after its context was cancelled")
	}
	if !regexp.MustCompile(`msg="closed WebSocket connections" count=1\b`).MatchString(out.String()) {
		t.Errorf("run's output has no \"closed WebSocket connections\" count=1:\n%s", out)
	}

	deadline := time.Now().Add(5 * time.Second)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for n := runtime.NumGoroutine(); n > before; n = runtime.NumGoroutine() {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines before run, %d 5s after it returned:\n%s", before, n, buf[:runtime.Stack(buf, true)])
		}
		<-tick.C
	}
}
