package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"strings"
	"time"

	"wsauth/server"
	"wsauth/tokens"
)

// tokenSystemFlags are the flags that name a token system. When none of
// them has a value, wsauth runs the demo; when one was given with an empty
// value (a variable missing from a unit file: -introspect-url "$URL"), the
// demo refuses to start.
var tokenSystemFlags = []string{
	"issuer",
	"jwks-url",
	"introspect-url",
}

// Command-line defaults that are the command's own; the server's and the
// cache's come from their packages.
const (
	defaultAddr            = "127.0.0.1:8080"
	defaultShutdownTimeout = 10 * time.Second
)

// options are the command's flags.
type options struct {
	addr            string
	demo            bool // -demo: run the demo even where it would refuse
	introspectURL   string
	clientID        string
	introspectAuth  string
	issuer          string
	jwksURL         string
	audience        string
	clientIDs       []string // -allowed-client-ids
	clockSkew       time.Duration
	jwtAlgs         []string
	jwtTypes        []string
	apiScope        string
	wsScope         string
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
	var ticketKeyFlag bool
	fs := newFlagSet(&o, &ticketKeyFlag)
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
	return o, checkOptions(o, fs)
}

// newFlagSet defines the command's flags on o; removed is set when the
// removed -ticket-key is given.
func newFlagSet(o *options, removed *bool) *flag.FlagSet {
	fs := flag.NewFlagSet("wsauth", flag.ContinueOnError)
	fs.SetOutput(io.Discard) // errors go back to main, which prints them once
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `Usage: wsauth [flags]

With no flags: a demo on loopback, with an embedded fake token service in which
anyone can sign in as anyone. With -issuer, -jwks-url or -introspect-url: a real
token system (docs/TOKEN-SYSTEMS.md): JWT access tokens verified against its JWK
set, other tokens introspected (RFC 7662) with the client secret in
$WSAUTH_CLIENT_SECRET. The ticket key is in $WSAUTH_TICKET_KEY or
-ticket-key-file. A 0 means "off" where the flag says so.

`)
		fs.PrintDefaults()
	}
	fs.StringVar(&o.addr, "addr", defaultAddr, "listen address")
	fs.BoolVar(&o.demo, "demo", false, "run the demo even where it would refuse to: with $WSAUTH_CLIENT_SECRET set, an empty -issuer, -jwks-url or -introspect-url, or a non-loopback -addr.\nIn the demo anyone who can reach the server can sign in as anyone")
	fs.StringVar(&o.issuer, "issuer", "", "the token system's issuer URL, which tokens' \"iss\" must equal: discovery (OpenID Connect, then RFC 8414)\nfinds its JWK set and, if it has one, its introspection endpoint")
	fs.StringVar(&o.jwksURL, "jwks-url", "", "the issuer's JWK set (RFC 7517): JWT access tokens are verified locally against it. Instead of\ndiscovery's: with it, -issuer only names the \"iss\" and nothing is discovered")
	fs.StringVar(&o.introspectURL, "introspect-url", "", "RFC 7662 introspection endpoint of the token system, instead of discovery's\n(none of -issuer, -jwks-url and -introspect-url: the demo)")
	fs.StringVar(&o.clientID, "client-id", "wsauth", "client id at the introspection endpoint (secret from $WSAUTH_CLIENT_SECRET)")
	fs.StringVar(&o.introspectAuth, "introspect-auth", tokens.ClientSecretBasic, "client authentication at the introspection endpoint: client_secret_basic, client_secret_post,\nor none (an endpoint only this server can reach; $WSAUTH_CLIENT_SECRET is then not needed)")
	fs.StringVar(&o.audience, "audience", "", "this API's identifier at the issuer, which a token's \"aud\" must contain. Required with a JWK set\n(unless -allowed-client-ids); with introspection, when given, a reply without it is refused")
	fs.Func("allowed-client-ids", "comma-separated client ids: a token without \"aud\" is accepted if its \"client_id\" is one\n(Amazon Cognito's access tokens have no \"aud\")", func(v string) error {
		o.clientIDs = splitList(v)
		return nil
	})
	fs.DurationVar(&o.clockSkew, "clock-skew", tokens.DefaultLeeway, "how far in the future a JWT's \"iat\" and \"nbf\" may be, for an issuer whose clock is ahead; at most 1m (0: off)")
	o.jwtAlgs, o.jwtTypes = tokens.DefaultAlgorithms, tokens.DefaultTypes
	fs.Func("jwt-algs", "comma-separated JWT signature algorithms accepted (default "+strings.Join(tokens.DefaultAlgorithms, ",")+")", func(v string) error {
		o.jwtAlgs = splitList(v)
		return nil
	})
	fs.Func("jwt-typ", "comma-separated JWT \"typ\" headers accepted (default "+strings.Join(tokens.DefaultTypes, ",")+";\n-jwt-typ at+jwt accepts RFC 9068 access tokens only)", func(v string) error {
		o.jwtTypes = splitList(v)
		return nil
	})
	fs.StringVar(&o.apiScope, "api-scope", server.DefaultAPIScope, "the scope GET /api/me needs")
	fs.StringVar(&o.wsScope, "ws-scope", server.DefaultWSScope, "the scope GET /ws and POST /api/ws-ticket need, and an open WebSocket must keep")
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
	fs.Var(removedFlag{removed}, "ticket-key", "removed: the command line shows in ps and /debug/vars; use $WSAUTH_TICKET_KEY or -ticket-key-file")
	fs.StringVar(&o.wsReject, "ws-reject", server.RejectHTTP, "how /ws refuses a bad token: http (401/403 before the upgrade) or close (upgrade, then close 3000/3003, readable by browsers)")
	fs.StringVar(&o.adminAddr, "admin-addr", "", "serve /debug/vars (memory, open connections) on this host:port, to requests addressed to it; empty: off. No auth: keep it on loopback")
	return fs
}

// checkOptions refuses values the command cannot run with, naming the
// flag and what it wants.
func checkOptions(o options, fs *flag.FlagSet) error {
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
			return fmt.Errorf("-%s is %s; want %s", c.name, fs.Lookup(c.name).Value, c.want)
		}
	}
	if o.wsReject != server.RejectHTTP && o.wsReject != server.RejectClose {
		return fmt.Errorf("-ws-reject is %q; want %s or %s", o.wsReject, server.RejectHTTP, server.RejectClose)
	}
	if err := checkTokenFlags(o); err != nil {
		return err
	}
	if (o.tlsCert == "") != (o.tlsKey == "") {
		return errors.New("-tls-cert and -tls-key go together")
	}
	return nil
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
