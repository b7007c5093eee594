// Command peer-coder is a wsbench peer: a coder/websocket server doing what
// wsauth does on the path wsbench measures, and the way a Go developer
// would write it with that library: the token from ?token=, validated
// through wsauth's own tokens.Cache in front of a tokens.Introspector
// (RFC 7662), 401 or 403 before the upgrade, then a welcome and an echo of
// each text message with the subject. coder/websocket answers the client's
// close itself (RFC 6455 §5.5.1).
//
// It takes the flags every wsbench peer takes (-addr, -introspect-url,
// -client-id, the secret in $WSAUTH_CLIENT_SECRET) and logs its address
// as wsauth does. It lives in a module of its own so that wsauth's module
// requires only golang.org/x/net.
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
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/coder/websocket"
	"github.com/coder/websocket/wsjson"

	"wsauth/tokens"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "peer-coder:", err)
		os.Exit(1)
	}
}

// Messages: the shapes of wsauth's welcome and echo.
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

func run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	fs := flag.NewFlagSet("peer-coder", flag.ContinueOnError)
	fs.SetOutput(stdout)
	addr := fs.String("addr", "127.0.0.1:0", "listen address")
	introspectURL := fs.String("introspect-url", "", "RFC 7662 introspection endpoint (secret from $WSAUTH_CLIENT_SECRET)")
	clientID := fs.String("client-id", "wsauth", "client id at the token system")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *introspectURL == "" {
		return errors.New("-introspect-url is required")
	}
	v := tokens.NewCache(&tokens.Introspector{URL: *introspectURL, ClientID: *clientID, ClientSecret: getenv("WSAUTH_CLIENT_SECRET")}, tokens.CacheConfig{})
	mux := http.NewServeMux()
	mux.Handle("GET /ws", handleWS(v))
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	slog.New(slog.NewTextHandler(stdout, nil)).Info("coder peer listening", "url", "http://"+ln.Addr().String())
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		return hs.Close()
	}
}

func handleWS(v tokens.Validator) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, err := v.Validate(r.Context(), r.URL.Query().Get("token"))
		switch {
		case errors.Is(err, tokens.ErrInvalid):
			http.Error(w, "invalid token", http.StatusUnauthorized)
			return
		case err != nil:
			http.Error(w, "token system unavailable", http.StatusServiceUnavailable)
			return
		case !p.HasScope("ws"):
			http.Error(w, "insufficient scope", http.StatusForbidden)
			return
		}
		c, err := websocket.Accept(w, r, nil) // answers a failed upgrade itself
		if err != nil {
			return
		}
		defer c.CloseNow()
		c.SetReadLimit(64 << 10)
		ctx := context.Background() // the connection's life is its own, not the request's
		var exp int64
		if !p.Expiry.IsZero() {
			exp = p.Expiry.Unix()
		}
		if wsjson.Write(ctx, c, welcomeMsg{Type: "welcome", Sub: p.Subject, Scope: p.Scopes, Exp: exp}) != nil {
			return
		}
		for {
			typ, msg, err := c.Read(ctx)
			if err != nil {
				return // a close was answered by the library
			}
			if typ != websocket.MessageText {
				continue
			}
			if wsjson.Write(ctx, c, echoMsg{Type: "echo", Sub: p.Subject, Data: string(msg)}) != nil {
				return
			}
		}
	})
}
