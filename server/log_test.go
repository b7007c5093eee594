package server

import (
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

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

			nc, _, resp := rawHandshake(t, ts.Listener.Addr().String(), "/ws")
			if resp.StatusCode != tc.want {
				t.Fatalf("handshake answered %d; want %d", resp.StatusCode, tc.want)
			}
			nc.Close()
			// The line is written when the hijacked handler returns,
			// which httptest.Server.Close does not wait for.
			waitForLog(t, &logs, " msg=request ")
			if got, want := logs.String(), " status="+strconv.Itoa(tc.want)+" "; !strings.Contains(got, want) {
				t.Errorf("request log %q; want %s", got, strings.TrimSpace(want))
			}
		})
	}
}
