// Command wsauth-minimal is wsauth in one file, to read first: only a token
// that the token system vouches for (RFC 7662 introspection, package tokens)
// opens GET /api/me and GET /ws, and GET /ws checks it in x/net/websocket's
// Handshake hook. Each "full server:" comment says where cmd/wsauth takes that
// step and what it does differently; README.md says why it is bigger.
//
//	go run ./cmd/fake-tokensvc &    # accepts the client secret dev-secret
//	WSAUTH_CLIENT_SECRET=dev-secret go run ./cmd/wsauth-minimal
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"golang.org/x/net/websocket"

	"wsauth/tokens"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "wsauth-minimal:", err)
		os.Exit(1)
	}
}

// run serves until ctx is done. The secret is not a flag, which ps would
// show. The first line names this process: under go run, not the go command.
func run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	fs := flag.NewFlagSet("wsauth-minimal", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:8080", "listen address")
	introspect := fs.String("introspect-url", "http://127.0.0.1:8081/introspect", "the token system's RFC 7662 endpoint")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if getenv("WSAUTH_CLIENT_SECRET") == "" {
		return errors.New("set WSAUTH_CLIENT_SECRET, the secret of client wsauth at the token system (the fake's: dev-secret)")
	}
	// full server: cmd/wsauth/tokensystem.go, tokenSystem: puts a tokens.Cache in front, so a busy token is not introspected per request.
	v := &tokens.Introspector{URL: *introspect, ClientID: "wsauth", ClientSecret: getenv("WSAUTH_CLIENT_SECRET")}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wsauth-minimal listening on http://%s, pid %d\n", ln.Addr(), os.Getpid())
	hs := &http.Server{Handler: routes(v), ReadHeaderTimeout: 5 * time.Second}
	// full server: server/registry.go, registry.shutdown: closes each WebSocket with 1001; hs.Close leaves hijacked ones open.
	context.AfterFunc(ctx, func() { hs.Close() })
	if err := hs.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// routes is the whole API.
func routes(v tokens.Validator) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/me", func(w http.ResponseWriter, r *http.Request) {
		p, err := authorize(r, v, "api")
		if err != nil {
			refuse(w, err)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"sub": p.Subject, "scope": p.Scopes, "exp": p.Expiry.Unix()})
	})
	mux.Handle("GET /ws", serveWS(v))
	return mux
}

// serveWS upgrades GET /ws if its Handshake hook lets the request in.
func serveWS(v tokens.Validator) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var p tokens.Principal // this request's: the hook sets it, the handler reads it
		websocket.Server{
			Handshake: func(cfg *websocket.Config, r *http.Request) (err error) {
				// full server: server/auth.go, Server.checkOrigin: before the upgrade, a readable 403; server/origin.go adds -allowed-origins.
				if !sameOrigin(r) {
					return errors.New("origin not allowed")
				}
				cfg.Protocol = nil // speak no subprotocol, so never echo one: it could hold a token
				// full server: server/auth.go, Server.require: authorizes before the upgrade, so a refusal is a readable 401, 403 or 503.
				p, err = authorize(r, v, "ws")
				return err // any error: the client reads a bare "403 Forbidden"
			},
			// full server: server/auth.go, PrincipalFrom: the principal travels in the request's context.
			Handler: func(ws *websocket.Conn) { echo(ws, p) },
		}.ServeHTTP(w, r)
	})
}

// sameOrigin reports whether r comes from a page of this server, or from no
// browser (no Origin). A browser sends the cookie whatever page opens a
// WebSocket: any site could open one as its visitor (RFC 6455 §10.2).
func sameOrigin(r *http.Request) bool {
	o := r.Header.Get("Origin")
	return o == "" || strings.EqualFold(o, "http://"+r.Host) || strings.EqualFold(o, "https://"+r.Host)
}

// authorize returns whom r's token speaks for, if the token system says it is
// valid and it carries scope; every error it returns is a *refusal. The token
// is in Authorization: Bearer or ?token=, else in the token cookie; two
// explicit ones, or an empty one, are refused (RFC 6750 §2: one way only).
func authorize(r *http.Request, v tokens.Validator, scope string) (tokens.Principal, error) {
	// full server: server/credentials.go, extractCredential: also the subprotocol and one-time tickets.
	toks := r.URL.Query()["token"]
	if scheme, tok, _ := strings.Cut(r.Header.Get("Authorization"), " "); strings.EqualFold(scheme, "Bearer") {
		toks = append(toks, strings.TrimSpace(tok))
	}
	if c, err := r.Cookie("token"); err == nil && c.Value != "" && len(toks) == 0 {
		toks = append(toks, c.Value)
	}
	switch {
	case len(toks) == 0:
		return tokens.Principal{}, errNoToken
	case len(toks) > 1 || toks[0] == "":
		return tokens.Principal{}, errBadRequest
	}
	// full server: server/auth.go, Server.authenticate: asks through tokens.Cache, behind a throttle of failed attempts.
	p, err := v.Validate(r.Context(), toks[0])
	switch {
	case errors.Is(err, tokens.ErrInvalid):
		return tokens.Principal{}, errInvalidToken
	case err != nil: // the token system could not answer: fail closed
		return tokens.Principal{}, errUnavailable
	case !p.HasScope(scope):
		return tokens.Principal{}, &refusal{403, `Bearer realm="wsauth", error="insufficient_scope", scope="` + scope + `"`, "insufficient_scope", "the token lacks the scope " + scope}
	}
	return p, nil
}

// refusal is a refused request's HTTP answer (RFC 6750 §3). Nothing in it
// comes from the request, so no token can leak through it.
type refusal struct {
	status                int
	challenge, code, desc string // WWW-Authenticate, if any; the JSON body's error and error_description
}

func (f *refusal) Error() string { return f.desc }

var (
	errNoToken      = &refusal{401, `Bearer realm="wsauth"`, "missing_token", "send a bearer token, ?token= or the token cookie"}
	errBadRequest   = &refusal{400, `Bearer realm="wsauth", error="invalid_request"`, "invalid_request", "send one non-empty token, one way"}
	errInvalidToken = &refusal{401, `Bearer realm="wsauth", error="invalid_token"`, "invalid_token", "the token is invalid, expired or revoked"}
	errUnavailable  = &refusal{503, "", "temporarily_unavailable", "the token system cannot answer; retry later"}
)

// refuse answers w with err's refusal, or with a 500 for any other error.
// full server: server/errors.go, answerFor: one table from every error to its status, challenge and body; and a log line.
func refuse(w http.ResponseWriter, err error) {
	f := &refusal{500, "", "server_error", "internal error"}
	errors.As(err, &f)
	if f.challenge != "" {
		w.Header().Set("WWW-Authenticate", f.challenge)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(f.status)
	json.NewEncoder(w).Encode(map[string]string{"error": f.code, "error_description": f.desc})
}

// echo greets the client and echoes each message with the hook's subject.
// full server: server/session.go, session.serve: pings and deadlines; closes at the token's expiry, at a failed recheck, at shutdown.
func echo(ws *websocket.Conn, p tokens.Principal) {
	defer ws.Close()              // x/net/websocket always closes with 1000
	ws.MaxPayloadBytes = 64 << 10 // a longer frame ends the connection
	websocket.JSON.Send(ws, map[string]any{"type": "welcome", "sub": p.Subject, "scope": p.Scopes, "exp": p.Expiry.Unix()})
	for {
		var msg string
		// full server: server/session.go, session.readLoop: reads frames itself (frames.go), to answer a client's close with its code.
		if err := websocket.Message.Receive(ws, &msg); err != nil {
			return
		}
		websocket.JSON.Send(ws, map[string]string{"type": "echo", "sub": p.Subject, "data": msg})
	}
}
