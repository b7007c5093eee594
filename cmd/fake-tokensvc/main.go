// Command fake-tokensvc serves the in-memory fake of the external token
// system from package faketokensvc: RFC 7662 introspection, JWT access
// tokens with their JWK set and discovery document, for the demo and for
// ports of wsauth to test against.
//
// Usage:
//
//	TOKENSVC_CLIENT_SECRET=… fake-tokensvc [-addr 127.0.0.1:8081] [-client-id wsauth] [-issuer URL]
//
// Warning: its admin API mints tokens for anyone who can reach it. Keep -addr
// on loopback.
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
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

// run serves the fake until ctx is done, then shuts it down. It logs the URL it
// listens on, which is how callers of -addr 127.0.0.1:0 learn the port.
func run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	fs := flag.NewFlagSet("fake-tokensvc", flag.ContinueOnError)
	fs.SetOutput(stdout)
	addr := fs.String("addr", "127.0.0.1:8081", "listen address; keep it on loopback, the admin API has no auth")
	clientID := fs.String("client-id", "wsauth", "the client id /introspect accepts (the secret comes from $TOKENSVC_CLIENT_SECRET)")
	issuer := fs.String("issuer", "", `the "iss" of its JWTs and the "issuer" of its discovery document (default: the URL it listens on, http://<addr>)`)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %q", fs.Args())
	}

	logger := slog.New(slog.NewTextHandler(stdout, nil))
	secret := getenv("TOKENSVC_CLIENT_SECRET")
	if secret == "" {
		secret = "dev-secret"
		logger.Warn("TOKENSVC_CLIENT_SECRET is not set; using the default client secret, fit only for development")
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	base := "http://" + ln.Addr().String()
	if *issuer == "" {
		*issuer = base // what discovery at this address must find
	}
	svc := faketokensvc.New(faketokensvc.Options{ClientID: *clientID, ClientSecret: secret, Issuer: *issuer})
	srv := &http.Server{
		Handler:           svc.Handler(),
		ReadHeaderTimeout: 5 * time.Second,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	logger.Info("fake token service listening", "url", base, "client_id", *clientID, "issuer", *issuer)

	select {
	case err := <-served:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err = srv.Shutdown(shutdownCtx)
	if err != nil {
		// An introspection held by injected latency outlived the grace
		// period; closing its connection ends it.
		srv.Close()
		err = fmt.Errorf("shutdown: closed requests still running after 5s: %w", err)
	}
	<-served
	logger.Info("fake token service stopped")
	return err
}
