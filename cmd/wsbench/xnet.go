package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"

	"golang.org/x/net/websocket"
)

// The bare peer: "wsbench xnet", a golang.org/x/net/websocket server with
// wsauth's route and message shapes and nothing else: no authentication, no
// origin check, no log line, no timers. It is the floor wsauth is measured
// against: what the library alone costs.

// Messages of the peers: the shapes of wsauth's welcome and echo.
type (
	welcomeMsg struct {
		Type  string   `json:"type"` // "welcome"
		Sub   string   `json:"sub"`
		Scope []string `json:"scope"`
		Exp   int64    `json:"exp,omitempty"`
	}
	echoMsg struct {
		Type string `json:"type"` // "echo"
		Sub  string `json:"sub"`
		Data string `json:"data"`
	}
)

// xnetHandler is the bare peer's GET /ws: a welcome, then an echo of each
// text message, until the client closes. x/net/websocket does not answer
// the client's close frame (RFC 6455 §5.5.1 says it must); it ends the TCP
// connection instead.
func xnetHandler() http.Handler {
	scopes := []string{"api", "ws"}
	exp := time.Now().Add(time.Hour).Unix()
	return websocket.Server{Handler: func(ws *websocket.Conn) {
		if websocket.JSON.Send(ws, welcomeMsg{Type: "welcome", Sub: "bench", Scope: scopes, Exp: exp}) != nil {
			return
		}
		var msg string
		for websocket.Message.Receive(ws, &msg) == nil {
			if websocket.JSON.Send(ws, echoMsg{Type: "echo", Sub: "bench", Data: msg}) != nil {
				return
			}
		}
	}}
}

// runXnet is "wsbench xnet": it serves the bare peer until ctx is done and
// logs the line the coordinator reads its address from, as wsauth does.
func runXnet(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("wsbench xnet", flag.ContinueOnError)
	fs.SetOutput(stdout)
	addr := fs.String("addr", "127.0.0.1:0", "listen address")
	// Accepted and ignored, so that every peer takes the same command line.
	fs.String("introspect-url", "", "ignored: the bare peer authenticates nobody")
	fs.String("client-id", "", "ignored")
	if err := fs.Parse(args); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.Handle("GET /ws", xnetHandler())
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	slog.New(slog.NewTextHandler(stdout, nil)).Info("xnet peer listening", "url", "http://"+ln.Addr().String())
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	// Hijacked connections are not the http.Server's: Close ends the
	// listener, and the process's exit ends the rest.
	if err := hs.Close(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("closing: %w", err)
	}
	return nil
}
