package tokens

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"syscall"
	"time"
)

// Defaults for an Introspector's zero fields.
const (
	DefaultTimeout       = 2 * time.Second
	DefaultMaxReplyBytes = 64 << 10
)

// MaxConnsPerHost bounds the connections the shared client of
// Introspectors without an HTTPClient opens to one token system: in use,
// being dialed and idle together. Past it, a call waits for a connection
// (within its Timeout). A server's connections to the token system count
// against the same open-files limit as its clients' WebSockets, and a
// reconnect storm of tokens the cache has not seen would otherwise open
// one per handshake in flight.
const MaxConnsPerHost = 64

// defaultClient is shared by every Introspector without an HTTPClient, so
// connections to the token system are reused. net/http keeps only two idle
// connections per host by default, which under concurrent validations means
// a new TCP (and TLS) handshake for most calls; it keeps up to all of them.
var defaultClient = &http.Client{
	Transport: func() http.RoundTripper {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.MaxConnsPerHost = MaxConnsPerHost
		t.MaxIdleConnsPerHost = MaxConnsPerHost
		return t
	}(),
	// The token system has no business redirecting an introspection call;
	// following one would resend the token elsewhere.
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

// Client authentication methods for introspection, by their RFC 7591 §2
// names.
const (
	ClientSecretBasic = "client_secret_basic" // HTTP Basic (RFC 6749 §2.3.1); the default
	ClientSecretPost  = "client_secret_post"  // client_id and client_secret in the form body
	AuthNone          = "none"                // no client authentication: an endpoint protected by the network alone
)

// Introspector is an RFC 7662 token introspection client: it POSTs the token
// as a form to URL, authenticated as AuthMethod says.
// Its zero durations and sizes mean the defaults above; it is safe for
// concurrent use.
type Introspector struct {
	URL          string // the introspection endpoint
	ClientID     string
	ClientSecret string // never logged, never part of an error
	// AuthMethod is ClientSecretBasic (the default when empty),
	// ClientSecretPost or AuthNone. With AuthNone, ClientID, if set, is
	// sent in the form.
	AuthMethod string

	// Issuer, if set, must equal a reply's "iss" when it has one (RFC 7662
	// makes it optional; an endpoint answers only for its own server's
	// tokens). Audience and AllowedClientIDs, if either is set, apply the
	// rule of JWTConfig.Audience to the reply's "aud" and "client_id": a
	// reply without "aud" is then refused unless its "client_id" is
	// allowed.
	Issuer           string
	Audience         string
	AllowedClientIDs []string

	HTTPClient    *http.Client     // nil means a shared client that reuses connections, at most MaxConnsPerHost per host
	Timeout       time.Duration    // per call; 0 means DefaultTimeout
	MaxReplyBytes int64            // 0 means DefaultMaxReplyBytes
	Now           func() time.Time // nil means time.Now; judges "exp"
}

// Reasons an active reply is refused by the Introspector's own settings,
// allocated once.
var (
	errWrongIssuer   = fmt.Errorf("%w: active, but \"iss\" is another issuer", ErrInvalid)
	errWrongAudience = fmt.Errorf("%w: active, but not for this audience or client", ErrInvalid)
)

// Validate asks the token system about token. A reply of active:true is
// still invalid without a "sub" (this server needs to know whom a token
// speaks for), without an "exp" in the future (this server closes sockets
// at expiry, and a token without one would never close), for a token that
// is not an access token ("token_use", or Keycloak's "typ"), or for another
// issuer or audience when the Introspector names its own.
func (in *Introspector) Validate(ctx context.Context, token string) (Principal, error) {
	if err := CheckFormat(token); err != nil {
		return Principal{}, err
	}
	reply, err := in.introspect(ctx, token)
	if err != nil {
		return Principal{}, err
	}
	now := time.Now
	if in.Now != nil {
		now = in.Now
	}
	p, r, err := parseIntrospection(reply, now())
	if err != nil {
		return Principal{}, err
	}
	if in.Issuer != "" && r.hasIss && r.iss != in.Issuer {
		return Principal{}, errWrongIssuer
	}
	if (in.Audience != "" || len(in.AllowedClientIDs) > 0) && !audienceOK(in.Audience, in.AllowedClientIDs, r.aud, r.hasAud, p.ClientID) {
		return Principal{}, errWrongAudience
	}
	return p, nil
}

// introspect POSTs token and returns the body of a 200 reply.
func (in *Introspector) introspect(ctx context.Context, token string) ([]byte, error) {
	timeout := in.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	// RFC 7662 §2.1: the hint saves the server a lookup among refresh
	// tokens. url.Values encodes '+', '%', '&' and '=', which CheckFormat
	// lets through.
	form := url.Values{"token": {token}, "token_type_hint": {"access_token"}}
	switch in.AuthMethod {
	case ClientSecretPost:
		form.Set("client_id", in.ClientID)
		form.Set("client_secret", in.ClientSecret)
	case AuthNone:
		if in.ClientID != "" {
			form.Set("client_id", in.ClientID)
		}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, in.URL, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, fmt.Errorf("%w: building request: %w", ErrUnavailable, err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	if in.AuthMethod == "" || in.AuthMethod == ClientSecretBasic {
		// RFC 6749 §2.3.1: client id and secret are form-encoded before Basic.
		req.SetBasicAuth(url.QueryEscape(in.ClientID), url.QueryEscape(in.ClientSecret))
	}

	client := in.HTTPClient
	if client == nil {
		client = defaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		// Drain a little so the connection can be reused.
		io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
		return nil, &statusError{status: resp.StatusCode}
	}
	limit := in.MaxReplyBytes
	if limit <= 0 {
		limit = DefaultMaxReplyBytes
	}
	reply, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, fmt.Errorf("%w: reading reply: %w", ErrUnavailable, err)
	}
	if int64(len(reply)) > limit {
		return nil, fmt.Errorf("%w: reply larger than %d bytes", ErrUnavailable, limit)
	}
	return reply, nil
}

// statusError is an introspection answered with a status other than 200.
// It is ErrUnavailable: the client's token is not at fault.
type statusError struct{ status int }

func (e *statusError) Error() string {
	return fmt.Sprintf("%v: introspection answered %d", ErrUnavailable, e.status)
}

func (e *statusError) Unwrap() error { return ErrUnavailable }

// ErrUnreachable marks a Probe or a FetchKeys that found no token system
// listening, or a Probe told by a gateway that it is not up: unlike their
// other errors, which say the configuration is wrong, it may pass when the
// token system comes up.
var ErrUnreachable = errors.New("token system unreachable")

// Probe checks, once at start, that URL is an introspection endpoint that
// accepts these client credentials, by asking about a random token: the
// healthy answer is 200 {"active":false}. Anything else is an error naming
// the URL, what came back and the likely mistake; one wrapping
// ErrUnreachable (connection refused; 502, 503 or 504) may be only a
// token system that is not up yet.
func (in *Introspector) Probe(ctx context.Context) error {
	var random [32]byte
	rand.Read(random[:]) // never fails (crypto/rand, Go 1.24+)
	where := redact(in.URL)
	reply, err := in.introspect(ctx, base64.RawURLEncoding.EncodeToString(random[:]))
	if se, ok := errors.AsType[*statusError](err); ok {
		status := fmt.Sprintf("%d %s", se.status, http.StatusText(se.status))
		switch se.status {
		case http.StatusNotFound, http.StatusMethodNotAllowed:
			return fmt.Errorf("introspection endpoint %s answered %s: there is no introspection endpoint at that URL (is the path right? some token systems serve it only on an admin port)", where, status)
		case http.StatusUnauthorized, http.StatusForbidden:
			return fmt.Errorf("introspection endpoint %s answered %s: it refused the client credentials (wrong client id or secret, or it wants another client authentication method than %s)", where, status, cmp.Or(in.AuthMethod, ClientSecretBasic))
		case http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
			return fmt.Errorf("%w: introspection endpoint %s answered %s", ErrUnreachable, where, status)
		}
		return fmt.Errorf("introspection endpoint %s answered %s, not 200 with {\"active\":false} for an unknown token", where, status)
	}
	if errors.Is(err, syscall.ECONNREFUSED) {
		return fmt.Errorf("%w: introspection endpoint %s: connection refused", ErrUnreachable, where)
	}
	if err != nil {
		return fmt.Errorf("introspection endpoint %s: %w", where, unwrapURLError(err))
	}
	m, err := parseObject(reply)
	if err != nil {
		return fmt.Errorf("introspection endpoint %s answered 200 with a body that is not a usable JSON object (%w): is it an RFC 7662 introspection endpoint?", where, err)
	}
	switch string(m["active"]) {
	case "false":
		return nil
	case "true":
		return fmt.Errorf("introspection endpoint %s says a random token is active: it cannot be trusted", where)
	}
	return fmt.Errorf("introspection endpoint %s answered 200 without a boolean \"active\": is it an RFC 7662 introspection endpoint?", where)
}

// introspection is what Validate reads of an RFC 7662 §2.2 reply beyond
// the Principal.
type introspection struct {
	iss    string
	hasIss bool
	aud    []string
	hasAud bool
}

// Reasons an active reply is still refused, allocated once.
var (
	errInactive  = fmt.Errorf("%w: inactive", ErrInvalid)
	errExpired   = fmt.Errorf("%w: expired", ErrInvalid)
	errNoExpiry  = fmt.Errorf("%w: active but no \"exp\"", ErrInvalid)
	errNoSubject = fmt.Errorf("%w: active but no subject", ErrInvalid)
)

// ParseIntrospection decodes an RFC 7662 reply, judging "exp" against now.
// A reply that is not a JSON object with a boolean "active", or whose
// members do not have their types, is ErrUnavailable: the token system said
// nothing usable. An active reply is valid only with a "sub", an "exp"
// after now, and nothing saying it is not an access token ("token_use"
// other than access_token; a "typ" of Refresh, Offline or ID).
func ParseIntrospection(reply []byte, now time.Time) (Principal, error) {
	p, _, err := parseIntrospection(reply, now)
	return p, err
}

func parseIntrospection(reply []byte, now time.Time) (Principal, introspection, error) {
	// Members are matched by exact name (RFC 8259 §4 names are
	// case-sensitive), and a reply naming one twice is refused: decoding
	// straight into a struct would match "ACTIVE" too, and the last of
	// "active":false,"active":true would win. FuzzParseIntrospection holds
	// it to that.
	m, err := parseObject(reply)
	if err != nil {
		return Principal{}, introspection{}, fmt.Errorf("%w: undecodable reply: %w", ErrUnavailable, err)
	}
	bad := func(name string) error {
		return fmt.Errorf("%w: reply's %q is not of its type", ErrUnavailable, name)
	}
	var r introspection
	var active bool
	switch raw := string(m["active"]); raw {
	case "true", "false":
		active = raw == "true"
	case "":
		return Principal{}, r, fmt.Errorf("%w: reply has no \"active\" member", ErrUnavailable)
	default:
		return Principal{}, r, bad("active")
	}
	if !active {
		return Principal{}, r, errInactive
	}
	var p Principal
	var scope, typ, tokenUse string
	for name, dst := range map[string]*string{
		"sub": &p.Subject, "scope": &scope, "client_id": &p.ClientID, "iss": &r.iss, "typ": &typ, "token_use": &tokenUse,
	} {
		var ok bool
		if *dst, ok = optString(m, name); !ok {
			return Principal{}, r, bad(name)
		}
	}
	_, r.hasIss = m["iss"]
	if raw, present := m["aud"]; present {
		var ok bool
		if r.aud, ok = stringOrList(raw); !ok {
			return Principal{}, r, bad("aud")
		}
		r.hasAud = true
	}
	p.Scopes = strings.Fields(scope)
	raw, present := m["exp"]
	if !present {
		return Principal{}, r, errNoExpiry
	}
	// RFC 7662 says integer seconds; some systems send 1.7e9. Take both.
	var ok bool
	if p.Expiry, ok = numericDate(raw); !ok {
		return Principal{}, r, bad("exp")
	}
	if !now.Before(p.Expiry) {
		return Principal{}, r, errExpired
	}
	if err := checkTokenUse(typ, tokenUse); err != nil {
		return Principal{}, r, err
	}
	if p.Subject == "" {
		return Principal{}, r, errNoSubject
	}
	return p, r, nil
}
