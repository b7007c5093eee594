// Command wsauth runs the wsauth server: every HTTP request and every
// WebSocket connection authorized by a token that an external token system
// validates: JWT access tokens (RFC 9068) verified locally against the
// issuer's JWK set, other tokens by RFC 7662 introspection.
//
// With no flags it runs a demo on loopback: an embedded fake token service,
// two ready tokens, copy-paste commands, and a sign-in that lets anyone be
// anyone. With -issuer, -jwks-url or -introspect-url it uses a real token
// system instead (tokensystem.go, docs/TOKEN-SYSTEMS.md); the client secret
// for introspection comes from $WSAUTH_CLIENT_SECRET. The demo refuses to
// start where a real deployment looks meant (see checkDemo) unless -demo
// says so.
//
// The files, by concept: main.go runs the server (wiring and serving),
// flags.go reads the command line, tokensystem.go builds the validator of
// a real token system, demo.go decides whether the demo may start and
// prints its banner, limits.go bounds the http.Server, ticketkey.go reads
// the ticket key, and admin.go serves -admin-addr's /debug/vars.
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

	faketokensvc "wsauth/fake_tokensvc"
	"wsauth/server"
	"wsauth/tokens"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "wsauth:", err)
		os.Exit(1)
	}
}

// run starts the server and serves until ctx is done. Logs and the demo's
// banner go to stdout, -h to stderr.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	o, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	demoMode, demoReasons, err := chooseDemo(o, getenv)
	if err != nil {
		return err
	}
	ticketKey, err := loadTicketKey(o.ticketKeyFile, getenv)
	if err != nil {
		return err
	}
	logger := slog.New(slog.NewTextHandler(stdout, nil))

	var validator *tokens.Cache
	var demo *faketokensvc.Service
	if demoMode {
		var stopFake func()
		if demo, validator, stopFake, err = startDemoTokenService(o); err != nil {
			return err
		}
		defer stopFake()
	} else if validator, err = tokenSystem(ctx, o, getenv, logger); err != nil {
		return err
	}

	cookieName := o.cookieName
	if demoMode && o.tlsCert != "" && !o.set["cookie-name"] {
		cookieName = demoCookieName
	}
	cfg := serverConfig(o, validator, logger, cookieName, ticketKey)
	if demo != nil {
		cfg.DemoIssuer = demo // POST /dev/login; a nil *Service would make a non-nil interface
	}
	srv := server.New(cfg)
	if o.adminAddr != "" {
		stopAdmin, err := startAdmin(o.adminAddr, srv, logger)
		if err != nil {
			return err
		}
		defer stopAdmin()
	}
	ln, err := listen(ctx, o.addr)
	if err != nil {
		return err
	}
	scheme := "http"
	if o.tlsCert != "" {
		scheme = "https"
	}
	base := scheme + "://" + ln.Addr().String()
	if demo != nil {
		announceDemo(logger, stdout, demo, demoReasons, banner{base: base, cookieName: cookieName, queryToken: o.allowQueryToken,
			wsReject: o.wsReject, apiScope: o.apiScope, wsScope: o.wsScope})
	}
	// Last, so that whoever waits for this line finds the banner complete.
	logger.Info("wsauth listening", "url", base, "demo", demo != nil)
	return serve(ctx, httpServer(srv, logger), ln, srv, o, logger)
}

// serverConfig is the server.Config the flags describe.
func serverConfig(o options, v tokens.Validator, logger *slog.Logger, cookieName string, ticketKey []byte) server.Config {
	return server.Config{
		Validator:      v,
		Logger:         logger,
		APIScope:       o.apiScope,
		WSScope:        o.wsScope,
		CookieName:     cookieName,
		NoQueryToken:   !o.allowQueryToken,
		AllowedOrigins: splitList(o.allowedOrigins),
		TrustedProxies: o.trustedProxies,
		Recheck:        o.recheck,

		MaxMessageBytes: o.maxMessageBytes,
		MaxConns:        o.maxConns,

		MaxConnsPerSubject: offIfZero(o.maxConnsPerSub),
		TicketsPerSubject:  offIfZero(o.ticketsPerSub),
		FailureBurst:       offIfZero(o.authBurst),
		FailureRefill:      o.authRefill,

		TicketKey: ticketKey,
		WSReject:  o.wsReject,
	}
}

// serve serves hs on ln until ctx is done, then shuts down: hs stops
// accepting and srv closes its WebSockets with 1001, both within
// -shutdown-timeout.
func serve(ctx context.Context, hs *http.Server, ln net.Listener, srv *server.Server, o options, logger *slog.Logger) error {
	errc := make(chan error, 1)
	go func() {
		if o.tlsCert != "" {
			errc <- hs.ServeTLS(ln, o.tlsCert, o.tlsKey)
		} else {
			errc <- hs.Serve(ln)
		}
	}()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}

	// A fresh context: ctx is already done.
	sctx, cancel := context.WithTimeout(context.Background(), o.shutdownTimeout)
	defer cancel()
	logger.Info("shutting down")
	err := hs.Shutdown(sctx) // stops accepting; hijacked WebSockets are ours to close
	n, werr := srv.Shutdown(sctx)
	logger.Info("closed WebSocket connections", "count", n)
	return errors.Join(err, werr)
}

// offIfZero turns a flag's 0, "off", into the Config's negative "off": a
// zero Config field means its default.
func offIfZero[T int | time.Duration](n T) T {
	if n == 0 {
		return -1
	}
	return n
}
