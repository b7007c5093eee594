package tokens

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
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

// Introspector is an RFC 7662 token introspection client: it POSTs the token
// as a form to URL, authenticated with HTTP Basic client credentials.
// Its zero durations and sizes mean the defaults above; it is safe for
// concurrent use.
type Introspector struct {
	URL          string // the introspection endpoint
	ClientID     string
	ClientSecret string // never logged, never part of an error

	HTTPClient    *http.Client     // nil means a shared client that reuses connections, at most MaxConnsPerHost per host
	Timeout       time.Duration    // per call; 0 means DefaultTimeout
	MaxReplyBytes int64            // 0 means DefaultMaxReplyBytes
	Now           func() time.Time // nil means time.Now; judges "exp"
}

// Validate asks the token system about token. A reply of active:true with an
// "exp" in the past, or with no "sub", is invalid: this server needs to know
// whom a token speaks for.
func (in *Introspector) Validate(ctx context.Context, token string) (Principal, error) {
	if err := CheckFormat(token); err != nil {
		return Principal{}, err
	}
	timeout := in.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	// CheckFormat allows no byte that form encoding would change but '+',
	// '%', '&' and '=', so escaping is needed, not optional.
	body := "token=" + url.QueryEscape(token)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, in.URL, strings.NewReader(body))
	if err != nil {
		return Principal{}, fmt.Errorf("%w: building request: %w", ErrUnavailable, err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	// RFC 6749 §2.3.1: client id and secret are form-encoded before Basic.
	req.SetBasicAuth(url.QueryEscape(in.ClientID), url.QueryEscape(in.ClientSecret))

	client := in.HTTPClient
	if client == nil {
		client = defaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		return Principal{}, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		// Drain a little so the connection can be reused.
		io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
		return Principal{}, fmt.Errorf("%w: introspection answered %d", ErrUnavailable, resp.StatusCode)
	}
	limit := in.MaxReplyBytes
	if limit <= 0 {
		limit = DefaultMaxReplyBytes
	}
	reply, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return Principal{}, fmt.Errorf("%w: reading reply: %w", ErrUnavailable, err)
	}
	if int64(len(reply)) > limit {
		return Principal{}, fmt.Errorf("%w: reply larger than %d bytes", ErrUnavailable, limit)
	}
	now := time.Now
	if in.Now != nil {
		now = in.Now
	}
	return ParseIntrospection(reply, now())
}

// introspection is the part of an RFC 7662 §2.2 reply this package reads.
type introspection struct {
	Active   *bool
	Sub      string
	Scope    string
	Exp      json.Number
	ClientID string
}

// Reasons an active reply is still refused, allocated once.
var (
	errInactive  = fmt.Errorf("%w: inactive", ErrInvalid)
	errExpired   = fmt.Errorf("%w: expired", ErrInvalid)
	errNoSubject = fmt.Errorf("%w: active but no subject", ErrInvalid)
)

// ParseIntrospection decodes an RFC 7662 reply, judging "exp" against now.
// A reply that is not a JSON object with a boolean "active", or whose "exp"
// is not a number, is ErrUnavailable: the token system said nothing usable.
func ParseIntrospection(reply []byte, now time.Time) (Principal, error) {
	// Members are matched by exact name (RFC 8259 §4 names are
	// case-sensitive). Decoding straight into the struct would match
	// "ACTIVE" too, and the last of "active":false,"ACTIVE":true would win:
	// FuzzParseIntrospection holds it to that.
	var members map[string]json.RawMessage
	if err := json.Unmarshal(reply, &members); err != nil {
		return Principal{}, fmt.Errorf("%w: undecodable reply: %w", ErrUnavailable, err)
	}
	var r introspection
	for name, dst := range map[string]any{
		"active": &r.Active, "sub": &r.Sub, "scope": &r.Scope, "exp": &r.Exp, "client_id": &r.ClientID,
	} {
		if raw, ok := members[name]; ok {
			if err := json.Unmarshal(raw, dst); err != nil {
				return Principal{}, fmt.Errorf("%w: undecodable reply: %w", ErrUnavailable, err)
			}
		}
	}
	if r.Active == nil {
		return Principal{}, fmt.Errorf("%w: reply has no \"active\" member", ErrUnavailable)
	}
	if !*r.Active {
		return Principal{}, errInactive
	}
	p := Principal{Subject: r.Sub, Scopes: strings.Fields(r.Scope), ClientID: r.ClientID}
	if r.Exp != "" {
		// RFC 7662 says integer seconds; some systems send 1.7e9. Take both.
		sec, err := strconv.ParseFloat(string(r.Exp), 64)
		if err != nil || sec < 0 || sec > 1<<40 {
			return Principal{}, fmt.Errorf("%w: bad \"exp\"", ErrUnavailable)
		}
		p.Expiry = time.Unix(int64(sec), 0)
		if !now.Before(p.Expiry) {
			return Principal{}, errExpired
		}
	}
	if p.Subject == "" {
		return Principal{}, errNoSubject
	}
	return p, nil
}
