package server

import (
	"errors"
	"net/http"
	"net/url"
	"strings"
)

// source is where a request carried its credential.
type source uint8

const (
	fromBearer      source = 1 << iota // Authorization: Bearer <token>
	fromSubprotocol                    // Sec-WebSocket-Protocol: wsauth.v1, wsauth.bearer.<token>
	fromQuery                          // ?token=<token>
	fromTicket                         // ?ticket=<one-time ticket>
	fromCookie                         // Cookie: <name>=<token>
)

func (s source) String() string {
	switch s {
	case fromBearer:
		return "bearer"
	case fromSubprotocol:
		return "subprotocol"
	case fromQuery:
		return "query"
	case fromTicket:
		return "ticket"
	case fromCookie:
		return "cookie"
	}
	return "none"
}

// Subprotocol names. A browser cannot set headers on new WebSocket(url), but
// it can offer subprotocols: new WebSocket(url, ["wsauth.v1",
// "wsauth.bearer." + token]). The server answers wsauth.v1, never the entry
// that holds the token, and never lets it reach a log.
const (
	subprotocol       = "wsauth.v1"
	bearerSubprotocol = "wsauth.bearer."
)

// maxCookies is net/http's limit: a request with more cookies than this has
// all of them dropped (GODEBUG httpcookiemaxnum, Go 1.26), which would look
// like "no token" and earn a misleading 401.
const maxCookies = 3000

// credential is a token, or a ticket, and where it came from.
type credential struct {
	value  string
	source source
}

// Reasons a request's credentials cannot be used. Each maps to an answer in
// errors.go.
var (
	errNoCredential      = errors.New("no credential")
	errTooManyCookies    = errors.New("more cookies than net/http parses")
	errTwoCredentials    = badRequest("more than one credential in the request; use one method (RFC 6750 §2)")
	errTwoAuthHeaders    = badRequest("more than one Authorization header")
	errEmptyBearer       = badRequest("empty bearer token")
	errEmptyParam        = badRequest("empty token or ticket query parameter")
	errRepeatedParam     = badRequest("the token or ticket query parameter is repeated")
	errBadQuery          = badRequest("the query string is malformed or has more parameters than the server parses")
	errRepeatedCookie    = badRequest("the token cookie is sent more than once, so which one is meant is unknown; clear this site's cookies and sign in again")
	errNoSubprotocol     = badRequest("offer " + subprotocol + " beside " + bearerSubprotocol + "<token>")
	errQueryTokenOff     = badRequest("tokens in the query string are turned off; use a ticket, a cookie or the subprotocol")
	errSourceNotAccepted = badRequest("this route does not accept that kind of credential")
)

// extractCredential finds the one credential of r among the sources
// accepted. Explicit credentials (header, subprotocol, query, ticket) win
// over the ambient cookie, which a browser sends whether or not the page
// meant to; two different explicit ones are an error, and so is the cookie
// sent twice when it is the credential in use. It never validates
// anything: it only reads.
func extractCredential(r *http.Request, accepted source, cookieName string) (credential, error) {
	var found credential
	take := func(value string, src source) error {
		switch {
		case value == "":
			return nil
		case accepted&src == 0 && src == fromQuery:
			return errQueryTokenOff
		case accepted&src == 0:
			return errSourceNotAccepted
		case found.source != 0 && found.value != value:
			return errTwoCredentials
		case found.source == 0:
			found = credential{value: value, source: src}
		}
		return nil
	}

	bearer, err := bearerToken(r.Header)
	if err != nil {
		return credential{}, err
	}
	if err := take(bearer, fromBearer); err != nil {
		return credential{}, err
	}

	proto, offered, err := subprotocolToken(r.Header)
	if err != nil {
		return credential{}, err
	}
	if proto != "" && !offered {
		return credential{}, errNoSubprotocol
	}
	if err := take(proto, fromSubprotocol); err != nil {
		return credential{}, err
	}

	if r.URL.RawQuery != "" {
		// r.URL.Query() drops what net/url cannot parse (a bad escape, a
		// semicolon) and, past 10,000 parameters, every parameter: a
		// ?token= or ?ticket= lost so would let the cookie stand in for
		// it, around the one-credential rule. A query that does not parse
		// is refused. The parse error is not kept: it may quote the query.
		q, err := url.ParseQuery(r.URL.RawQuery)
		if err != nil {
			return credential{}, errBadQuery
		}
		for _, p := range [...]struct {
			name string
			src  source
		}{{"token", fromQuery}, {"ticket", fromTicket}} {
			v, err := queryParam(q, p.name)
			if err != nil {
				return credential{}, err
			}
			if err := take(v, p.src); err != nil {
				return credential{}, err
			}
		}
	}
	if found.source != 0 {
		return found, nil
	}

	if accepted&fromCookie != 0 {
		v, err := cookieToken(r, cookieName)
		if err != nil {
			return credential{}, err
		}
		if v != "" {
			return credential{value: v, source: fromCookie}, nil
		}
	}
	return credential{}, errNoCredential
}

// bearerToken returns the token of the request's Authorization: Bearer
// header, "" when there is no Authorization header or it names another
// scheme: those are not ours, and count as no credential. The scheme is
// case-insensitive (RFC 7235 §2.1).
func bearerToken(h http.Header) (string, error) {
	auth := h.Values("Authorization")
	switch {
	case len(auth) == 0:
		return "", nil
	case len(auth) > 1:
		return "", errTwoAuthHeaders
	}
	scheme, rest, _ := strings.Cut(auth[0], " ")
	if !strings.EqualFold(scheme, "Bearer") {
		return "", nil
	}
	token := strings.Trim(rest, " ")
	if token == "" {
		return "", errEmptyBearer
	}
	return token, nil
}

// queryParam returns the one value of the query parameter name, "" when
// it is absent. Empty or repeated, it is an error.
func queryParam(q url.Values, name string) (string, error) {
	switch v := q[name]; len(v) {
	case 0:
		return "", nil
	case 1:
		if v[0] == "" {
			return "", errEmptyParam
		}
		return v[0], nil
	default:
		return "", errRepeatedParam
	}
}

// cookieToken returns the value of the cookie name, "" when there is none.
//
// A cookie is keyed by name, host and path, not port: a page on another
// port of this host, or one that set a narrower Path, can plant a second
// cookie of this name, which the browser sends first (RFC 6265 §5.4), so
// that the victim's page runs as the planter. Which one the user meant
// cannot be known: two are refused.
func cookieToken(r *http.Request, name string) (string, error) {
	n := 0
	for _, line := range r.Header["Cookie"] {
		n += strings.Count(line, ";") + 1
	}
	if n > maxCookies {
		return "", errTooManyCookies
	}
	switch cs := r.CookiesNamed(name); {
	case len(cs) > 1:
		return "", errRepeatedCookie
	case len(cs) == 1:
		return cs[0].Value, nil
	}
	return "", nil
}

// subprotocolToken returns the token of a wsauth.bearer.<token> entry in the
// Sec-WebSocket-Protocol header lines, and whether wsauth.v1 was offered
// too. Every header line is read: x/net/websocket reads only the first.
func subprotocolToken(h http.Header) (token string, offered bool, err error) {
	for _, line := range h.Values("Sec-WebSocket-Protocol") {
		for entry := range strings.SplitSeq(line, ",") {
			entry = strings.TrimSpace(entry)
			switch {
			case entry == subprotocol:
				offered = true
			case strings.HasPrefix(entry, bearerSubprotocol):
				t := entry[len(bearerSubprotocol):]
				if t == "" {
					return "", false, errEmptyBearer
				}
				if token != "" && token != t {
					return "", false, errTwoCredentials
				}
				token = t
			}
		}
	}
	return token, offered, nil
}

// offersSubprotocol reports whether the client offered wsauth.v1.
func offersSubprotocol(h http.Header) bool {
	_, offered, _ := subprotocolToken(h)
	return offered
}
