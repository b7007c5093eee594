// Command wsauth runs the wsauth server: every HTTP request and every
// WebSocket connection authorized by a token that an external token system
// validates (RFC 7662 introspection).
//
// With no flags it runs a demo on loopback: an embedded fake token service,
// two ready tokens, copy-paste commands, and a sign-in that lets anyone be
// anyone. With -introspect-url it asks a real token system instead; the
// client secret comes from $WSAUTH_CLIENT_SECRET. The demo refuses to start
// where a real deployment looks meant (see checkDemo) unless -demo says so.
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
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "wsauth:", err)
		os.Exit(1)
	}
}

// tokenSystemFlags are the flags that name a token system. When none of
// them has a value, wsauth runs the demo; when one was given with an empty
// value (a variable missing from a unit file: -introspect-url "$URL"), the
// demo refuses to start.
var tokenSystemFlags = []string{
	"introspect-url",
}

// Command-line defaults that are the command's own; the server's and the
// cache's come from their packages.
const (
	defaultAddr            = "127.0.0.1:8080"
	defaultShutdownTimeout = 10 * time.Second
	// demoCookieName is the demo's cookie under TLS. The __Host- prefix
	// makes a browser accept the cookie only if it is Secure, has Path=/
	// and no Domain (RFC 6265bis §4.1.3.2), so a page on another port or
	// subdomain cannot plant a cookie of that name to shadow it.
	demoCookieName = "__Host-" + server.DefaultCookieName
)

// options are the command's flags.
type options struct {
	addr            string
	demo            bool // -demo: run the demo even where it would refuse
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
	ticketKeyFile   string
	wsReject        string
	adminAddr       string

	// set holds the names of the flags given on the command line.
	set map[string]bool
	// tokenSystem names the token-system flags that have a value, and
	// emptyTokenSystem those given with an empty one.
	tokenSystem, emptyTokenSystem []string
}

// parseFlags parses the command line. It returns flag.ErrHelp, having
// printed the usage to stderr, for -h.
func parseFlags(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("wsauth", flag.ContinueOnError)
	fs.SetOutput(io.Discard) // errors go back to main, which prints them once
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `Usage: wsauth [flags]

With no flags: a demo on loopback, with an embedded fake token service in which
anyone can sign in as anyone. With -introspect-url: a real token system (RFC 7662),
the client secret in $WSAUTH_CLIENT_SECRET, the ticket key in $WSAUTH_TICKET_KEY
or -ticket-key-file. A 0 means "off" where the flag says so.

`)
		fs.PrintDefaults()
	}
	fs.StringVar(&o.addr, "addr", defaultAddr, "listen address")
	fs.BoolVar(&o.demo, "demo", false, "run the demo even where it would refuse to: with $WSAUTH_CLIENT_SECRET set, an empty -introspect-url, or a non-loopback -addr.\nIn the demo anyone who can reach the server can sign in as anyone")
	fs.StringVar(&o.introspectURL, "introspect-url", "", "RFC 7662 introspection endpoint of the token system (absent: the demo)")
	fs.StringVar(&o.clientID, "client-id", "wsauth", "client id at the token system (secret from $WSAUTH_CLIENT_SECRET)")
	fs.StringVar(&o.allowedOrigins, "allowed-origins", "", "comma-separated origins (scheme://host[:port]) allowed to open WebSockets besides the server's own")
	fs.StringVar(&o.cookieName, "cookie-name", server.DefaultCookieName, "cookie holding a browser's token (the demo under -tls-cert: "+demoCookieName+")")
	fs.BoolVar(&o.allowQueryToken, "allow-query-token", true, "accept ?token= (it ends up in logs and history; prefer tickets)")
	fs.DurationVar(&o.cacheTTL, "cache-ttl", tokens.DefaultCacheTTL, "how long a valid answer of the token system is reused (0: not at all)")
	fs.DurationVar(&o.recheck, "recheck", server.DefaultRecheck, "how often open WebSockets' tokens are validated again")
	fs.IntVar(&o.maxMessageBytes, "max-message-bytes", server.DefaultMaxMessageBytes, "largest client message; bigger closes with 1009")
	fs.IntVar(&o.maxConns, "max-conns", server.DefaultMaxConns, "most open WebSockets; past it, 503")
	fs.IntVar(&o.maxConnsPerSub, "max-conns-per-subject", server.DefaultMaxConnsPerSubject, "most open WebSockets of one subject; past it, 429 (0: no bound)")
	fs.IntVar(&o.ticketsPerSub, "tickets-per-subject", server.DefaultTicketsPerSubject, "most unexpired one-time tickets one subject may hold, used or not; past it, 429 (0: no bound)")
	fs.IntVar(&o.authBurst, "auth-burst", server.DefaultFailureBurst, "failed authentications a client IP or token may have in a row before 429 (0: no throttle)")
	fs.DurationVar(&o.authRefill, "auth-refill", server.DefaultFailureRefill, "how long a throttled IP or token waits to regain one attempt")
	fs.DurationVar(&o.shutdownTimeout, "shutdown-timeout", defaultShutdownTimeout, "how long a shutdown waits for connections to close")
	fs.StringVar(&o.tlsCert, "tls-cert", "", "TLS certificate file (serve https and wss)")
	fs.StringVar(&o.tlsKey, "tls-key", "", "TLS key file")
	fs.Func("trusted-proxies", "comma-separated CIDRs of reverse proxies whose X-Forwarded-For/-Proto are believed (default none)", func(v string) (err error) {
		o.trustedProxies, err = server.ParseTrustedProxies(v)
		return err
	})
	fs.StringVar(&o.ticketKeyFile, "ticket-key-file", "", "file holding the 32-byte key that seals one-time tickets, as 64 hex digits or base64\n(or the key in $WSAUTH_TICKET_KEY; neither: a random key per process)")
	var ticketKeyFlag bool
	fs.Var(removedFlag{&ticketKeyFlag}, "ticket-key", "removed: the command line shows in ps and /debug/vars; use $WSAUTH_TICKET_KEY or -ticket-key-file")
	fs.StringVar(&o.wsReject, "ws-reject", server.RejectHTTP, "how /ws refuses a bad token: http (401/403 before the upgrade) or close (upgrade, then close 3000/3003, readable by browsers)")
	fs.StringVar(&o.adminAddr, "admin-addr", "", "serve /debug/vars (memory, open connections) on this host:port, to requests addressed to it; empty: off. No auth: keep it on loopback")

	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.SetOutput(stderr)
			fs.Usage()
			return o, err
		}
		return o, fmt.Errorf("%w (wsauth -h lists the flags)", err)
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	if ticketKeyFlag {
		return o, errors.New("-ticket-key is removed: a key on the command line shows in ps and /debug/vars; " +
			"put it in $WSAUTH_TICKET_KEY or in a file named by -ticket-key-file")
	}
	o.set = make(map[string]bool)
	fs.Visit(func(f *flag.Flag) { o.set[f.Name] = true })
	for _, name := range tokenSystemFlags {
		switch {
		case fs.Lookup(name).Value.String() != "":
			o.tokenSystem = append(o.tokenSystem, "-"+name)
		case o.set[name]:
			o.emptyTokenSystem = append(o.emptyTokenSystem, "-"+name)
		}
	}

	// 0 means "off" where off makes sense, and is refused where it does
	// not: no value quietly becomes a default.
	for _, c := range []struct {
		name string
		bad  bool
		want string
	}{
		{"cache-ttl", o.cacheTTL < 0, "0 (off) or more"},
		{"recheck", o.recheck <= 0, "more than 0"},
		{"max-message-bytes", o.maxMessageBytes <= 0, "more than 0"},
		{"max-conns", o.maxConns <= 0, "more than 0"},
		{"max-conns-per-subject", o.maxConnsPerSub < 0, "0 (no bound) or more"},
		{"tickets-per-subject", o.ticketsPerSub < 0, "0 (no bound) or more"},
		{"auth-burst", o.authBurst < 0, "0 (no throttle) or more"},
		{"auth-refill", o.authRefill <= 0, "more than 0"},
		{"shutdown-timeout", o.shutdownTimeout <= 0, "more than 0"},
	} {
		if c.bad {
			return o, fmt.Errorf("-%s is %s; want %s", c.name, fs.Lookup(c.name).Value, c.want)
		}
	}
	if o.wsReject != server.RejectHTTP && o.wsReject != server.RejectClose {
		return o, fmt.Errorf("-ws-reject is %q; want %s or %s", o.wsReject, server.RejectHTTP, server.RejectClose)
	}
	if (o.tlsCert == "") != (o.tlsKey == "") {
		return o, errors.New("-tls-cert and -tls-key go together")
	}
	return o, nil
}

// removedFlag stands for a flag that no longer exists, so that its use is
// a clear error rather than "flag provided but not defined". It drops its
// value unread and unprinted: the removed -ticket-key held a secret.
type removedFlag struct{ given *bool }

func (f removedFlag) String() string { return "" }

func (f removedFlag) Set(string) error {
	*f.given = true
	return nil
}

// checkDemo decides whether the demo may run, given that no token system
// was named. The demo lets anyone who reaches the server sign in as
// anyone, so it must never start by accident: an empty token-system flag,
// a client secret in the environment or a non-loopback address say that a
// real deployment was meant. It returns those reasons; without -demo, any
// reason is an error.
func checkDemo(o options, getenv func(string) string) (reasons []string, err error) {
	for _, name := range o.emptyTokenSystem {
		reasons = append(reasons, name+" is given but empty")
	}
	if getenv("WSAUTH_CLIENT_SECRET") != "" {
		reasons = append(reasons, "$WSAUTH_CLIENT_SECRET is set")
	}
	if !loopback(o.addr) {
		reasons = append(reasons, "-addr "+o.addr+" is not a loopback address")
	}
	if len(reasons) == 0 || o.demo {
		return reasons, nil
	}
	return reasons, fmt.Errorf("refusing to start the demo, in which anyone can sign in as anyone: %s. "+
		"Name the token system (%s), or pass -demo to run the demo anyway",
		strings.Join(reasons, "; "), strings.Join(prefixed(tokenSystemFlags), ", "))
}

// loopback reports whether addr (host:port) is reachable from this machine
// only: "localhost" or a loopback IP. An empty host listens on every
// interface, and any other name could resolve anywhere.
func loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.Unmap().IsLoopback()
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
	demoMode := len(o.tokenSystem) == 0
	switch {
	case o.demo && !demoMode:
		return fmt.Errorf("-demo and %s exclude each other", strings.Join(o.tokenSystem, ", "))
	case o.set["demo"] && !o.demo && demoMode:
		return fmt.Errorf("-demo=false and no token system: name one (%s)", strings.Join(prefixed(tokenSystemFlags), ", "))
	}
	var demoReasons []string
	if demoMode {
		if demoReasons, err = checkDemo(o, getenv); err != nil {
			return err
		}
	}
	ticketKey, err := loadTicketKey(o.ticketKeyFile, getenv)
	if err != nil {
		return err
	}
	logger := slog.New(slog.NewTextHandler(stdout, nil))

	in := &tokens.Introspector{URL: o.introspectURL, ClientID: o.clientID, ClientSecret: getenv("WSAUTH_CLIENT_SECRET")}
	var demo *faketokensvc.Service
	if demoMode {
		var stopFake func()
		demo, in.URL, stopFake, err = startDemoTokenService(in)
		if err != nil {
			return err
		}
		defer stopFake()
	} else if in.ClientSecret == "" {
		return errors.New("-introspect-url needs the client secret in $WSAUTH_CLIENT_SECRET")
	}

	cookieName := o.cookieName
	if demoMode && o.tlsCert != "" && !o.set["cookie-name"] {
		cookieName = demoCookieName
	}
	cfg := server.Config{
		Validator:      tokens.NewCache(in, tokens.CacheConfig{TTL: offIfZero(o.cacheTTL)}),
		Logger:         logger,
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
	ln, err := listen(ctx, o.addr)
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
		logger.Warn("DEMO MODE: anyone can sign in as anyone", "sign_in", base+"/dev/login",
			"real_token_system", strings.Join(prefixed(tokenSystemFlags), ", "))
		for _, r := range demoReasons {
			logger.Warn("DEMO MODE forced by -demo although "+r, "url", base)
		}
		printDemo(stdout, demo, banner{base: base, cookieName: cookieName, queryToken: o.allowQueryToken, wsReject: o.wsReject})
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

// listen binds addr without TCP keep-alive, which net.Listen turns on, at
// four setsockopt calls per accepted connection, about 5 % of a WebSocket
// handshake's CPU. It would find nothing the server does not: a silent
// WebSocket is pinged after 30 s and dropped 10 s later (server.Config's
// PingInterval, WriteTimeout), and an idle HTTP connection is closed after
// IdleTimeout (60 s), before the first probe would have told anything.
func listen(ctx context.Context, addr string) (net.Listener, error) {
	return (&net.ListenConfig{KeepAlive: -1}).Listen(ctx, "tcp", addr)
}

// maxRequestHead bounds a request's line and headers, the blank line that
// ends them included: 431 past it. The longest token is 4 KiB
// (tokens.MaxTokenLen), so a request carrying two, in a bearer header and
// a cookie, fits with room to spare.
const maxRequestHead = 16 << 10

// netHTTPSlop is what net/http reads beyond http.Server.MaxHeaderBytes
// before it answers 431 ("bufio slop", initialReadLimitSize in
// net/http/server.go). MaxHeaderBytes is set that much lower, so that the
// limit is the one documented.
const netHTTPSlop = 4096

// httpServer is the http.Server in front of h, with every limit set, as
// net/http's zero values wait forever and accept a 1 MB head: a client
// that dribbles its headers is dropped after ReadHeaderTimeout, a request
// head past maxRequestHead gets 431, an idle keep-alive connection is
// closed after IdleTimeout.
func httpServer(h http.Handler, logger *slog.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       15 * time.Second, // a handshake is one small request
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    maxRequestHead - netHTTPSlop,
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

// banner is what the demo's printed commands depend on.
type banner struct {
	base       string // http://host:port or https://host:port
	cookieName string
	queryToken bool   // ?token= accepted
	wsReject   string // server.RejectHTTP or server.RejectClose
}

// printDemo prints two ready tokens and commands that work as printed
// under the flags given (run_test.go runs them).
func printDemo(w io.Writer, svc *faketokensvc.Service, b banner) {
	alice, _ := svc.Issue("alice", []string{"api", "ws"}, 24*time.Hour)
	bob, _ := svc.Issue("bob", []string{"api"}, 24*time.Hour)
	host, isTLS := strings.CutPrefix(b.base, "https://")
	host = strings.TrimPrefix(host, "http://")
	curl, curlWS, ws := "curl -i", "curl -i -N", "ws"
	if isTLS {
		// -k: the certificate is the operator's own, and rarely valid for
		// 127.0.0.1. --http1.1: curl would otherwise speak HTTP/2, which
		// has no Upgrade (RFC 9113 §8.2.2).
		curl, curlWS, ws = "curl -i -k", "curl -i -N -k --http1.1", "wss"
	}
	fmt.Fprintf(w, `
################################################################################
  DEMO MODE: anyone can sign in as anyone. Not for production.
  Any visitor can POST /dev/login as any subject with any scope. For a real
  token system, start with %[6]s (README: "Running against a real token system").
################################################################################

wsauth demo: open %[1]s/ in a browser to sign in and try every way of connecting.

An embedded fake token service issued two tokens (valid 24h).
  alice (scopes api ws): %[2]s
  bob   (scope  api):    %[3]s

Try HTTP:
  %[4]s -H 'Authorization: Bearer %[2]s' %[1]s/api/me
  %[4]s --cookie '%[5]s=%[3]s' %[1]s/api/me
  %[4]s %[1]s/api/me                                   # 401, no token
`, b.base, alice, bob, curl, b.cookieName, strings.Join(prefixed(tokenSystemFlags), " or "))
	if isTLS {
		fmt.Fprintln(w, "  (-k: curl does not check the certificate; do that only on loopback, as here)")
	}
	bobAnswer := "answers 403"
	if b.wsReject == server.RejectClose {
		bobAnswer = "answers 101, then closes with 3003 (-ws-reject=close)"
	}
	fmt.Fprintf(w, `
Try a WebSocket handshake (prints 101 and the welcome frame, then stops after 3 s):
  %[1]s --max-time 3 -H 'Connection: Upgrade' -H 'Upgrade: websocket' -H 'Sec-WebSocket-Version: 13' -H 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==' -H 'Authorization: Bearer %[2]s' %[3]s/ws
  # with bob's token (no ws scope) the same command %[4]s
`, curlWS, alice, b.base, bobAnswer)
	if b.queryToken {
		fmt.Fprintf(w, `
From a browser console on %[1]s/healthz:
  const ws = new WebSocket("%[4]s://%[2]s/ws?token=%[3]s");
  ws.onmessage = (e) => console.log(e.data); ws.onopen = () => ws.send("hello");
`, b.base, host, alice, ws)
	}
	fmt.Fprintln(w)
}

// offIfZero turns a flag's 0, "off", into the Config's negative "off": a
// zero Config field means its default.
func offIfZero[T int | time.Duration](n T) T {
	if n == 0 {
		return -1
	}
	return n
}

// loadTicketKey reads the ticket key from $WSAUTH_TICKET_KEY or from the
// file named by -ticket-key-file, never from the command line, which ps and
// /debug/vars show to anyone on the machine. Neither means none (nil).
func loadTicketKey(file string, getenv func(string) string) ([]byte, error) {
	env := getenv("WSAUTH_TICKET_KEY")
	if file == "" {
		k, err := parseTicketKey(env)
		if err != nil {
			return nil, fmt.Errorf("ticket key in $WSAUTH_TICKET_KEY: %w", err)
		}
		return k, nil
	}
	if env != "" {
		return nil, errors.New("ticket key: both $WSAUTH_TICKET_KEY and -ticket-key-file are given; give one")
	}
	f, err := os.Open(file)
	if err != nil {
		return nil, fmt.Errorf("-ticket-key-file: %w", err)
	}
	defer f.Close()
	text, err := io.ReadAll(io.LimitReader(f, 1<<10)) // a key is 64 bytes; a bigger file is not a key
	if err != nil {
		return nil, fmt.Errorf("-ticket-key-file: %w", err)
	}
	k, err := parseTicketKey(string(text))
	switch {
	case err != nil:
		return nil, fmt.Errorf("ticket key in -ticket-key-file %s: %w", file, err)
	case k == nil:
		return nil, fmt.Errorf("ticket key in -ticket-key-file %s: the file is empty", file)
	}
	return k, nil
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
	return nil, errors.New("want 32 bytes as 64 hex digits or base64 (openssl rand -hex 32)")
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

// prefixed returns names as flags: "-name".
func prefixed(names []string) []string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = "-" + n
	}
	return out
}
