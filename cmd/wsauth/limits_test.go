package main

import (
	"bufio"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"wsauth/tokens"
)

// TestHTTPServerLimits checks the limits of the http.Server that run
// serves: headers past 16 KiB get 431 while a request carrying the longest
// token worth validating gets through, and a client that never finishes
// its headers is dropped after ReadHeaderTimeout (5s).
func TestHTTPServerLimits(t *testing.T) {
	t.Parallel()
	hs := httpServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNoContent)
	}), slog.New(slog.DiscardHandler))
	if hs.ReadHeaderTimeout == 0 || hs.IdleTimeout == 0 || hs.MaxHeaderBytes == 0 || hs.ReadTimeout == 0 {
		t.Fatalf("http.Server limits: ReadHeaderTimeout %v, ReadTimeout %v, IdleTimeout %v, MaxHeaderBytes %d; want all set",
			hs.ReadHeaderTimeout, hs.ReadTimeout, hs.IdleTimeout, hs.MaxHeaderBytes)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go hs.Serve(ln)
	defer hs.Close()

	exchange := func(raw string) (int, time.Duration) {
		t.Helper()
		nc, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		nc.SetDeadline(time.Now().Add(15 * time.Second))
		start := time.Now()
		go io.WriteString(nc, raw)
		resp, err := http.ReadResponse(bufio.NewReader(nc), nil)
		if err != nil {
			return 0, time.Since(start) // dropped without an answer
		}
		resp.Body.Close()
		return resp.StatusCode, time.Since(start)
	}
	longest := strings.Repeat("t", tokens.MaxTokenLen)
	if status, _ := exchange("GET /api/me HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + longest + "\r\n" +
		"Cookie: token=" + longest + "\r\nUser-Agent: " + strings.Repeat("u", 512) + "\r\n\r\n"); status != 204 {
		t.Errorf("request with two %d-byte tokens: %d; want it served", tokens.MaxTokenLen, status)
	}
	if status, _ := exchange("GET /api/me HTTP/1.1\r\nHost: x\r\nX-Pad: " + strings.Repeat("p", 24<<10) + "\r\n\r\n"); status != 431 {
		t.Errorf("request with 24 KiB of headers: %d; want 431", status)
	}
	status, d := exchange("GET /api/me HTTP/1.1\r\nHost: x\r\n")
	if status != 0 || d < hs.ReadHeaderTimeout-time.Second || d > hs.ReadHeaderTimeout+2*time.Second {
		t.Errorf("unfinished headers: answered %d after %v; want dropped after about %v", status, d, hs.ReadHeaderTimeout)
	}
}

// TestRequestHeadLimit shows exactly where the head of a request (request
// line, headers and the blank line after them) starts being refused: a
// head of maxRequestHead (16 KiB) bytes is served, one byte more is
// answered 431. net/http reads 4 KiB past MaxHeaderBytes before it
// refuses, so MaxHeaderBytes alone would let about 20 KiB through.
func TestRequestHeadLimit(t *testing.T) {
	t.Parallel()
	hs := httpServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNoContent)
	}), slog.New(slog.DiscardHandler))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go hs.Serve(ln)
	defer hs.Close()

	// head returns a GET whose head is n bytes long, padded in one header.
	head := func(n int) string {
		const start, end = "GET /api/me HTTP/1.1\r\nHost: x\r\nX-Pad: ", "\r\n\r\n"
		return start + strings.Repeat("p", n-len(start)-len(end)) + end
	}
	for _, tc := range []struct {
		size int
		want int
	}{
		{4 << 10, 204},
		{maxRequestHead - 1, 204},
		{maxRequestHead, 204},
		{maxRequestHead + 1, 431},
		{maxRequestHead + netHTTPSlop, 431},
	} {
		nc, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		nc.SetDeadline(time.Now().Add(10 * time.Second))
		raw := head(tc.size)
		if len(raw) != tc.size {
			t.Fatalf("built a %d-byte head; want %d", len(raw), tc.size)
		}
		go io.WriteString(nc, raw)
		resp, err := http.ReadResponse(bufio.NewReader(nc), nil)
		nc.Close()
		if err != nil {
			t.Fatalf("request with a %d-byte head: %v", tc.size, err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("request with a %d-byte head: %d; want %d", tc.size, resp.StatusCode, tc.want)
		}
	}
}
