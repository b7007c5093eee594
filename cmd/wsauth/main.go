// Command wsauth runs the wsauth server: every HTTP request and every
// WebSocket connection authorized by a token that an external token system
// validates (RFC 7662 introspection).
//
// With no flags it runs a demo: an embedded fake token service on a random
// loopback port, two ready tokens, and copy-paste commands to try. With
// -introspect-url it asks a real token system instead; the client secret
// comes from $WSAUTH_CLIENT_SECRET.
package main

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	faketokensvc "wsauth/fake_tokensvc"
	"wsauth/server"
	"wsauth/tokens"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "wsauth:", err)
		os.Exit(1)
	}
}

// options are the command's flags.
type options struct {
	addr            string
	introspectURL   string
	clientID        string
	allowedOrigins  string
	cookieName      string
	allowQueryToken bool
	cacheTTL        time.Duration
	recheck         time.Duration
	maxMessageBytes int
	maxConns        int
	maxConnsPerSub  int
	ticketsPerSub   int
	authBurst       int
	authRefill      time.Duration
	shutdownTimeout time.Duration
	tlsCert, tlsKey string
	trustedProxies  []netip.Prefix
	ticketKey       string
	wsReject        string
	adminAddr       string
}

func parseFlags(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("wsauth", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.addr, "addr", "127.0.0.1:8080", "listen address")
	fs.StringVar(&o.introspectURL, "introspect-url", "", "RFC 7662 introspection endpoint of the token system (empty: embedded demo token service)")
	fs.StringVar(&o.clientID, "client-id", "wsauth", "client id at the token system (secret from $WSAUTH_CLIENT_SECRET)")
	fs.StringVar(&o.allowedOrigins, "allowed-origins", "", "comma-separated origins (scheme://host[:port]) allowed to open WebSockets besides the server's own")
	fs.StringVar(&o.cookieName, "cookie-name", "token", "cookie holding a browser's token")
	fs.BoolVar(&o.allowQueryToken, "allow-query-token", true, "accept ?token= (it ends up in logs and history; prefer tickets)")
	fs.DurationVar(&o.cacheTTL, "cache-ttl", tokens.DefaultCacheTTL, "how long a valid answer of the token system is reused")
	fs.DurationVar(&o.recheck, "recheck", 60*time.Second, "how often open WebSockets' tokens are validated again")
	fs.IntVar(&o.maxMessageBytes, "max-message-bytes", 64<<10, "largest client message; bigger closes with 1009")
	fs.IntVar(&o.maxConns, "max-conns", 10_000, "most open WebSockets; past it, 503")
	fs.IntVar(&o.maxConnsPerSub, "max-conns-per-subject", 100, "most open WebSockets of one subject; past it, 429 (0: no bound)")
	fs.IntVar(&o.ticketsPerSub, "tickets-per-subject", 20, "most unexpired one-time tickets one subject may hold, used or not; past it, 429 (0: no bound)")
	fs.IntVar(&o.authBurst, "auth-burst", 20, "failed authentications a client IP or token may have in a row before 429 (0: no throttle)")
	fs.DurationVar(&o.authRefill, "auth-refill", time.Second, "how long a throttled IP or token waits to regain one attempt")
	fs.DurationVar(&o.shutdownTimeout, "shutdown-timeout", 10*time.Second, "how long a shutdown waits for connections to close")
	fs.StringVar(&o.tlsCert, "tls-cert", "", "TLS certificate file (serve https and wss)")
	fs.StringVar(&o.tlsKey, "tls-key", "", "TLS key file")
	fs.Func("trusted-proxies", "comma-separated CIDRs of reverse proxies whose X-Forwarded-For/-Proto are believed (default none)", func(v string) (err error) {
		o.trustedProxies, err = server.ParseTrustedProxies(v)
		return err
	})
	fs.StringVar(&o.ticketKey, "ticket-key", "", "32-byte key sealing one-time tickets, as 64 hex digits or base64 (default $WSAUTH_TICKET_KEY; empty: random per process)")
	fs.StringVar(&o.wsReject, "ws-reject", server.RejectHTTP, "how /ws refuses a bad token: http (401/403 before the upgrade) or close (upgrade, then close 3000/3003, readable by browsers)")
	fs.StringVar(&o.adminAddr, "admin-addr", "", "serve /debug/vars (expvar: memory, open connections) here; empty: off. No auth: keep it on loopback")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	if o.wsReject != server.RejectHTTP && o.wsReject != server.RejectClose {
		return o, fmt.Errorf("-ws-reject is %q; want %s or %s", o.wsReject, server.RejectHTTP, server.RejectClose)
	}
	if (o.tlsCert == "") != (o.tlsKey == "") {
		return o, errors.New("-tls-cert and -tls-key go together")
	}
	return o, nil
}

// run starts the server and serves until ctx is done.
func run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	o, err := parseFlags(args, stdout)
	if err != nil {
		return err
	}
	logger := slog.New(slog.NewTextHandler(stdout, nil))

	in := &tokens.Introspector{URL: o.introspectURL, ClientID: o.clientID, ClientSecret: getenv("WSAUTH_CLIENT_SECRET")}
	var demo *faketokensvc.Service
	if o.introspectURL == "" {
		var stopFake func()
		demo, in.URL, stopFake, err = startDemoTokenService(in)
		if err != nil {
			return err
		}
		defer stopFake()
	} else if in.ClientSecret == "" {
		return errors.New("-introspect-url needs the client secret in $WSAUTH_CLIENT_SECRET")
	}

	keyText := o.ticketKey
	if keyText == "" {
		keyText = getenv("WSAUTH_TICKET_KEY")
	}
	ticketKey, err := parseTicketKey(keyText)
	if err != nil {
		return err
	}
	cfg := server.Config{
		Validator:      tokens.NewCache(in, tokens.CacheConfig{TTL: o.cacheTTL}),
		Logger:         logger,
		CookieName:     o.cookieName,
		NoQueryToken:   !o.allowQueryToken,
		AllowedOrigins: splitList(o.allowedOrigins),
		TrustedProxies: o.trustedProxies,
		Recheck:        o.recheck,

		MaxMessageBytes: o.maxMessageBytes,
		MaxConns:        o.maxConns,

		MaxConnsPerSubject: orNegative(o.maxConnsPerSub),
		TicketsPerSubject:  orNegative(o.ticketsPerSub),
		FailureBurst:       orNegative(o.authBurst),
		FailureRefill:      o.authRefill,

		TicketKey: ticketKey,
		WSReject:  o.wsReject,
	}
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
	hs := httpServer(srv, logger)
	ln, err := net.Listen("tcp", o.addr)
	if err != nil {
		return err
	}
	scheme := "http"
	if o.tlsCert != "" {
		scheme = "https"
	}
	base := scheme + "://" + ln.Addr().String()
	logger.Info("wsauth listening", "url", base, "demo", demo != nil)
	if demo != nil {
		printDemo(stdout, demo, base)
	}

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
	err = hs.Shutdown(sctx) // stops accepting; hijacked WebSockets are ours to close
	n, werr := srv.Shutdown(sctx)
	logger.Info("closed WebSocket connections", "count", n)
	return errors.Join(err, werr)
}

// httpServer is the http.Server in front of h, with every limit set
// (STYLE.md rule 10): a client that dribbles its headers is dropped after
// ReadHeaderTimeout, headers past MaxHeaderBytes get 431, an idle
// keep-alive connection is closed after IdleTimeout.
func httpServer(h http.Handler, logger *slog.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       15 * time.Second, // a handshake is one small request
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
}

// startDemoTokenService runs the fake token service in-process, on a random
// loopback port, and points in at it.
func startDemoTokenService(in *tokens.Introspector) (*faketokensvc.Service, string, func(), error) {
	in.ClientSecret = "demo-secret"
	svc := faketokensvc.New(faketokensvc.Options{ClientID: in.ClientID, ClientSecret: in.ClientSecret})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, "", nil, err
	}
	hs := &http.Server{Handler: svc.Handler(), ReadHeaderTimeout: 5 * time.Second}
	go hs.Serve(ln)
	return svc, "http://" + ln.Addr().String() + "/introspect", func() { hs.Close() }, nil
}

// printDemo prints two ready tokens and commands that work as printed.
func printDemo(w io.Writer, svc *faketokensvc.Service, base string) {
	alice, _ := svc.Issue("alice", []string{"api", "ws"}, 24*time.Hour)
	bob, _ := svc.Issue("bob", []string{"api"}, 24*time.Hour)
	host := strings.TrimPrefix(strings.TrimPrefix(base, "http://"), "https://")
	fmt.Fprintf(w, `
wsauth demo: open %[1]s/ in a browser to sign in and try every way of connecting.

An embedded fake token service issued two tokens (valid 24h).
  alice (scopes api ws): %[2]s
  bob   (scope  api):    %[3]s

Try HTTP:
  curl -i -H 'Authorization: Bearer %[2]s' %[1]s/api/me
  curl -i --cookie 'token=%[3]s' %[1]s/api/me
  curl -i %[1]s/api/me                                   # 401, no token

Try a WebSocket handshake (prints 101 and the welcome frame, then stops after 3 s):
  curl -i -N --max-time 3 -H 'Connection: Upgrade' -H 'Upgrade: websocket' -H 'Sec-WebSocket-Version: 13' -H 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==' -H 'Authorization: Bearer %[2]s' %[1]s/ws
  # with bob's token (no ws scope) the same command answers 403

From a browser console on %[1]s/healthz:
  const ws = new WebSocket("ws://%[4]s/ws?token=%[2]s");
  ws.onmessage = (e) => console.log(e.data); ws.onopen = () => ws.send("hello");

`, base, alice, bob, host)
}

// orNegative turns a flag's 0, "off", into the Config's negative "off":
// a zero Config field means its default.
func orNegative(n int) int {
	if n == 0 {
		return -1
	}
	return n
}

// parseTicketKey reads a ticket key: 64 hex digits, or 32 bytes in base64
// (standard or URL alphabet, padded or not), as `openssl rand -hex 32` or
// `openssl rand -base64 32` print. Empty means none.
func parseTicketKey(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, nil
	}
	if len(s) == 64 {
		if k, err := hex.DecodeString(s); err == nil {
			return k, nil
		}
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if k, err := enc.DecodeString(s); err == nil && len(k) == 32 {
			return k, nil
		}
	}
	// The key itself is not repeated: it is a secret.
	return nil, errors.New("ticket key: want 32 bytes as 64 hex digits or base64 (openssl rand -hex 32)")
}

func splitList(s string) []string {
	var out []string
	for part := range strings.SplitSeq(s, ",") {
		if part = strings.TrimSpace(part); part != "" {
			out = append(out, part)
		}
	}
	return out
}
