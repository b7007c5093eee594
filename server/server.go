// Package server authorizes every HTTP request and every WebSocket
// connection with a bearer token (RFC 6750) issued by an external token
// system and validated by a tokens.Validator (Config.Validator), and keeps
// each WebSocket authorized for as long as it is open: it closes the
// connection when the token expires or is revoked.
//
// Authorization runs before the WebSocket upgrade (RFC 6455 §4.2.2 lets a
// server answer any HTTP status there), so a client gets a real 401, 403 or
// 503 rather than the bare 403 that golang.org/x/net/websocket writes when its
// Handshake hook fails. The order of checks is in auth.go; routes.go shows
// the whole API.
package server

import (
	"context"
	"crypto/rand"
	"log/slog"
	"net/http"
	"net/netip"
	"time"

	"wsauth/tokens"
)

// refresher is a Config.Validator that can bypass its cache: rechecks of
// open connections call Refresh when the validator has it (tokens.Cache
// does), so that a revocation is seen at the next recheck whatever the
// cache remembers.
type refresher interface {
	Refresh(ctx context.Context, token string) (tokens.Principal, error)
}

// Defaults for Config's zero fields. cmd/wsauth's flags take theirs from
// here, so that the command line and the package cannot drift apart.
const (
	DefaultAPIScope           = "api"
	DefaultWSScope            = "ws"
	DefaultRealm              = "wsauth"
	DefaultCookieName         = "token"
	DefaultRecheck            = 60 * time.Second
	DefaultMaxMessageBytes    = 64 << 10
	DefaultMaxConns           = 10_000
	DefaultWriteTimeout       = 10 * time.Second
	DefaultPingInterval       = 30 * time.Second
	DefaultCloseTimeout       = 2 * time.Second
	DefaultFailureBurst       = 20
	DefaultFailureRefill      = time.Second
	DefaultThrottleMaxKeys    = 100_000
	DefaultMaxConnsPerSubject = 100
	DefaultMaxTickets         = 100_000
	DefaultTicketsPerSubject  = 20
	DefaultDemoTTL            = time.Hour
)

// Config holds the server's dependencies and options.
//
// A zero field means its default (the Default constants above). A negative
// value means "off" on the fields that say so (FailureBurst,
// MaxConnsPerSubject, TicketsPerSubject); on every other number it is a
// mistake, and New panics rather than quietly run with the default: a bound
// or an interval that has no "off" must not get one by accident.
type Config struct {
	// Validator answers whether a token is valid. Required. Anything from
	// package tokens fits (a tokens.Cache in front of a tokens.Kinds,
	// tokens.Introspector or tokens.JWTVerifier), and so does a validator
	// of your own for another kind of token system: tokens.Validator says
	// what it must return. When it also has a method
	// Refresh(ctx, token) (tokens.Principal, error), as tokens.Cache does,
	// rechecks of open connections call Refresh instead, to bypass a cache.
	Validator tokens.Validator
	// Logger receives one line per request and the server's warnings; nil
	// discards them. No token ever reaches it.
	Logger *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time

	// APIScope is the scope GET /api/me needs, and WSScope the scope GET /ws
	// and POST /api/ws-ticket need, which an open WebSocket must keep: a
	// refresh to a token without it is refused, and a recheck that finds
	// it gone closes the connection with 3003. routes.go is where they
	// apply. Empty means DefaultAPIScope ("api") and DefaultWSScope ("ws").
	// Each must be an RFC 6749 §3.3 scope token (visible ASCII, no space,
	// '"' or '\\'), as a token system spells it, "chat:read" say: New
	// panics otherwise, since a scope that no token can carry, or that
	// cannot be quoted in a WWW-Authenticate challenge, is a mistake.
	APIScope string
	WSScope  string

	// Realm is the realm of WWW-Authenticate challenges. Empty means
	// DefaultRealm.
	Realm string
	// CookieName is the cookie holding a browser's token. Empty means
	// DefaultCookieName. Under TLS, prefer a name with the __Host- prefix
	// (RFC 6265bis §4.1.3.2): a browser then accepts the cookie only if it
	// is Secure, has Path=/ and no Domain, so that no other host or port of
	// the site can plant one in its place.
	CookieName string
	// NoQueryToken turns off ?token= on /ws. Query tokens end up in
	// access logs, browser history and Referer headers; they exist for
	// clients that can do nothing else (the design this project ports).
	NoQueryToken bool
	// AllowedOrigins are origins ("scheme://host[:port]") allowed to open a
	// WebSocket besides the server's own host.
	//
	// Warning: every origin listed here can open a WebSocket with the
	// cookies of a visitor to that origin's pages. List only origins you
	// control. A browser that connects by cookie from any other page is
	// refused; that refusal is the whole defence against cross-site
	// WebSocket hijacking.
	AllowedOrigins []string
	// TrustedProxies are the reverse proxies whose X-Forwarded-For and
	// X-Forwarded-Proto headers are believed (clientip.go). Default none:
	// from any other peer those headers are ignored.
	//
	// Warning: list only the proxies' own addresses. A prefix that covers
	// clients lets them choose the address the logs and the failure
	// throttle see, and pass plain HTTP off as TLS.
	TrustedProxies []netip.Prefix

	// Recheck is how often open connections' tokens are validated again.
	// Zero means DefaultRecheck (60s). It has no "off": without rechecks a
	// revoked token's WebSocket would stay open until the token expires.
	Recheck time.Duration
	// MaxMessageBytes bounds one client message. Zero means
	// DefaultMaxMessageBytes (64 KiB); it has no "off".
	MaxMessageBytes int
	// MaxConns bounds open WebSocket connections. Zero means
	// DefaultMaxConns (10,000); it has no "off".
	MaxConns int
	// WriteTimeout bounds one write to a WebSocket client. Zero means
	// DefaultWriteTimeout (10s); it has no "off".
	WriteTimeout time.Duration
	// PingInterval is how often an idle connection is pinged; a peer that
	// sends nothing, not even a pong, for PingInterval plus WriteTimeout is
	// dropped. Zero means DefaultPingInterval (30s); it has no "off".
	PingInterval time.Duration
	// CloseTimeout is how long the server waits for the client's answer to
	// its close frame before dropping the TCP connection. Zero means
	// DefaultCloseTimeout (2s); it has no "off".
	CloseTimeout time.Duration

	// FailureBurst is how many failed authentications (401, 400, 431) a client
	// IP, or one presented token, may have in a row before further attempts
	// are answered 429 with Retry-After, without asking the token system.
	// Zero means DefaultFailureBurst (20); negative turns the throttle off.
	// A token that authenticated in the last 10 minutes is not held back by
	// its IP's failures (throttle.go, docs/SECURITY.md).
	FailureBurst int
	// FailureRefill is how long a throttled IP or token waits to regain one
	// attempt. Zero means DefaultFailureRefill (1s); it has no "off" (turn
	// the throttle off with FailureBurst).
	FailureRefill time.Duration
	// ThrottleMaxKeys bounds the IPs and token hashes the throttle
	// remembers; past it the least recently seen are forgotten. Zero means
	// DefaultThrottleMaxKeys (100,000); it has no "off".
	ThrottleMaxKeys int
	// MaxConnsPerSubject bounds one subject's open WebSockets; past it, the
	// handshake is answered 429. Zero means DefaultMaxConnsPerSubject (100);
	// negative means no bound.
	MaxConnsPerSubject int

	// TicketKey is the 32-byte AES-256-GCM key that seals one-time tickets
	// (ticket.go). Instances that share it accept each other's tickets.
	// Nil means a random key for this process, logged as such.
	TicketKey []byte
	// MaxTickets bounds the ids of unexpired tickets one instance remembers
	// to refuse a second use; past it, minting answers 503. Zero means
	// DefaultMaxTickets (100,000); it has no "off".
	MaxTickets int
	// TicketsPerSubject bounds the tickets one subject may hold in this
	// instance's replay set, minted here and not yet expired, used or not;
	// past it, minting answers 429 with Retry-After, so that no one
	// subject can fill the set (ticket.go). Zero means
	// DefaultTicketsPerSubject (20); negative means no bound.
	TicketsPerSubject int
	// WSReject is how /ws refuses a missing or invalid token or a lacking
	// scope: "http" (default), a 401 or 403 before the upgrade; or "close",
	// an upgrade closed at once with 3000 or 3003, because a browser cannot
	// read the status of a refused handshake (reject.go).
	WSReject string
	// DemoIssuer, when set, turns on demo mode: POST /dev/login issues a
	// token from it and sets the cookie. Set it only to an embedded fake
	// token service (a *faketokensvc.Service): anyone who can reach the
	// server can sign in as anyone.
	DemoIssuer Issuer
	// DemoTTL is the lifetime of a token from /dev/login when the request
	// names none. Zero means DefaultDemoTTL (1h); it has no "off".
	DemoTTL time.Duration
}

// WSReject values.
const (
	RejectHTTP  = "http"
	RejectClose = "close"
)

// withDefaults fills the zero fields. It panics on a negative value where
// the field has no "off" (see Config).
func (c Config) withDefaults() Config {
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.APIScope == "" {
		c.APIScope = DefaultAPIScope
	}
	if c.WSScope == "" {
		c.WSScope = DefaultWSScope
	}
	if c.Realm == "" {
		c.Realm = DefaultRealm
	}
	if c.CookieName == "" {
		c.CookieName = DefaultCookieName
	}
	orDefault(&c.Recheck, DefaultRecheck, "Recheck")
	orDefault(&c.MaxMessageBytes, DefaultMaxMessageBytes, "MaxMessageBytes")
	orDefault(&c.MaxConns, DefaultMaxConns, "MaxConns")
	orDefault(&c.WriteTimeout, DefaultWriteTimeout, "WriteTimeout")
	orDefault(&c.PingInterval, DefaultPingInterval, "PingInterval")
	orDefault(&c.CloseTimeout, DefaultCloseTimeout, "CloseTimeout")
	if c.FailureBurst == 0 {
		c.FailureBurst = DefaultFailureBurst
	}
	orDefault(&c.FailureRefill, DefaultFailureRefill, "FailureRefill")
	orDefault(&c.ThrottleMaxKeys, DefaultThrottleMaxKeys, "ThrottleMaxKeys")
	if c.MaxConnsPerSubject == 0 {
		c.MaxConnsPerSubject = DefaultMaxConnsPerSubject
	}
	orDefault(&c.MaxTickets, DefaultMaxTickets, "MaxTickets")
	if c.TicketsPerSubject == 0 {
		c.TicketsPerSubject = DefaultTicketsPerSubject
	}
	if c.WSReject == "" {
		c.WSReject = RejectHTTP
	}
	orDefault(&c.DemoTTL, DefaultDemoTTL, "DemoTTL")
	return c
}

// ValidScope reports whether scope is one RFC 6749 §3.3 scope-token:
// 1*( %x21 / %x23-5B / %x5D-7E ), visible ASCII except '"' and '\\'.
// Only such a scope can be carried in a token's space-separated "scope"
// and quoted in a WWW-Authenticate challenge.
func ValidScope(scope string) bool {
	if scope == "" {
		return false
	}
	for i := 0; i < len(scope); i++ {
		if c := scope[i]; c < 0x21 || c > 0x7e || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}

// orDefault sets a zero *v to def and panics on a negative one: the field
// has no "off", and a silent default would hide the mistake.
func orDefault[T int | time.Duration](v *T, def T, name string) {
	switch {
	case *v == 0:
		*v = def
	case *v < 0:
		panic("server: Config." + name + " is negative; it has no \"off\" (zero means the default)")
	}
}

// Server is the HTTP and WebSocket surface. Create it with New; it is an
// http.Handler. Call Shutdown to close its WebSocket connections, which
// http.Server.Shutdown does not touch.
type Server struct {
	cfg     Config
	origins originPolicy
	conns   *registry
	tickets *ticketBox
	handler http.Handler
	limits  *throttle // nil when FailureBurst < 0
}

// New returns a Server. It panics if cfg.Validator is nil, if
// cfg.TicketKey is set but not 32 bytes, if cfg.WSReject is unknown, if a
// scope is not a scope token, or if a field that has no "off" is negative:
// a server that cannot run as configured must not start.
func New(cfg Config) *Server {
	if cfg.Validator == nil {
		panic("server: Config.Validator is nil")
	}
	cfg = cfg.withDefaults()
	if cfg.WSReject != RejectHTTP && cfg.WSReject != RejectClose {
		panic("server: Config.WSReject is neither " + RejectHTTP + " nor " + RejectClose)
	}
	for name, scope := range map[string]string{"APIScope": cfg.APIScope, "WSScope": cfg.WSScope} {
		if !ValidScope(scope) {
			panic("server: Config." + name + " is not a scope token (RFC 6749 §3.3): visible ASCII without space, '\"' or '\\'")
		}
	}
	key := cfg.TicketKey
	if key == nil {
		key = make([]byte, 32)
		rand.Read(key) // crypto/rand.Read never returns an error (Go 1.24+).
		cfg.Logger.Info("no ticket key configured: a random one for this process; other instances will not accept its tickets")
	}
	tickets, err := newTicketBox(key, cfg.Now, cfg.MaxTickets, cfg.TicketsPerSubject)
	if err != nil {
		panic("server: Config.TicketKey: " + err.Error())
	}
	s := &Server{
		cfg:     cfg,
		origins: newOriginPolicy(cfg.AllowedOrigins),
		tickets: tickets,
	}
	s.conns = newRegistry(s)
	s.limits = newThrottle(cfg.FailureBurst, cfg.FailureRefill, cfg.ThrottleMaxKeys, cfg.Now)
	s.handler = s.logRequests(s.routes())
	return s
}

// ServeHTTP serves the API: GET /healthz, GET /api/me, GET /ws, GET
// /api/ws-check, POST /api/ws-ticket, the demo page (GET /) and its
// /static/ files (the browser client wsauth.js among them) and, in demo
// mode, POST /dev/login and POST /dev/logout. routes.go lists them with
// the checks each one runs.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.handler.ServeHTTP(w, r)
}

// Shutdown closes every open WebSocket with 1001 (going away) and waits
// until their handlers return or ctx is done. It returns how many
// connections it closed. New connections are refused from its start.
func (s *Server) Shutdown(ctx context.Context) (int, error) {
	return s.conns.shutdown(ctx)
}

// OpenConns reports how many WebSocket connections are open.
func (s *Server) OpenConns() int { return s.conns.len() }
