package server

import (
	"bufio"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/websocket"
)

// TestLogStatusAfterHijack: after a hijack no wrapper sees the response,
// which x/net/websocket writes on the connection itself. The request log
// must record the status it sent, read from its status line: 101 for an
// upgrade, the bare 403 of a refusing Handshake hook, never 101 for a
// handshake that was refused.
func TestLogStatusAfterHijack(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		refuse bool
		want   int
	}{
		{"upgraded", false, 101},
		{"refused by the Handshake hook", true, 403},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var logs syncBuffer
			s := New(Config{Validator: noTokens{}, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
			ws := websocket.Server{
				Handshake: func(*websocket.Config, *http.Request) error {
					if tc.refuse {
						return errors.New("refused")
					}
					return nil
				},
				Handler: func(*websocket.Conn) {},
			}
			ts := httptest.NewServer(s.logRequests(ws))
			defer ts.Close()

			nc, err := net.Dial("tcp", ts.Listener.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer nc.Close()
			nc.SetDeadline(time.Now().Add(10 * time.Second))
			_, err = nc.Write([]byte("GET /ws HTTP/1.1\r\nHost: " + ts.Listener.Addr().String() + "\r\n" +
				"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n" +
				"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"))
			if err != nil {
				t.Fatal(err)
			}
			resp, err := http.ReadResponse(bufio.NewReader(nc), nil)
			if err != nil {
				t.Fatalf("reading the handshake's answer: %v", err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.want {
				t.Fatalf("handshake answered %d; want %d", resp.StatusCode, tc.want)
			}
			nc.Close()
			// The line is written when the hijacked handler returns,
			// which httptest.Server.Close does not wait for.
			deadline := time.Now().Add(10 * time.Second)
			for !strings.Contains(logs.String(), " msg=request ") {
				if time.Now().After(deadline) {
					t.Fatalf("no request log line after 10 s: %q", logs.String())
				}
				<-time.After(10 * time.Millisecond) // polling with a deadline
			}
			if got, want := logs.String(), " status="+strconv.Itoa(tc.want)+" "; !strings.Contains(got, want) {
				t.Errorf("request log %q; want %s", got, strings.TrimSpace(want))
			}
		})
	}
}
