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
		if accepted&src == 0 {
			if src == fromQuery {
				return errQueryTokenOff
			}
			return errSourceNotAccepted
		}
		if found.source != 0 && found.value != value {
			return errTwoCredentials
		}
		if found.source == 0 {
			found = credential{value: value, source: src}
		}
		return nil
	}

	switch auth := r.Header.Values("Authorization"); len(auth) {
	case 0:
	case 1:
		// RFC 7235 §2.1: the scheme is case-insensitive. Other schemes are
		// not ours and count as no credential.
		scheme, rest, _ := strings.Cut(auth[0], " ")
		if strings.EqualFold(scheme, "Bearer") {
			token := strings.Trim(rest, " ")
			if token == "" {
				return credential{}, errEmptyBearer
			}
			if err := take(token, fromBearer); err != nil {
				return credential{}, err
			}
		}
	default:
		return credential{}, errTwoAuthHeaders
	}

	if token, offered, err := subprotocolToken(r.Header); err != nil {
		return credential{}, err
	} else if token != "" {
		if !offered {
			return credential{}, errNoSubprotocol
		}
		if err := take(token, fromSubprotocol); err != nil {
			return credential{}, err
		}
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
			switch v := q[p.name]; len(v) {
			case 0:
			case 1:
				if v[0] == "" {
					return credential{}, errEmptyParam
				}
				if err := take(v[0], p.src); err != nil {
					return credential{}, err
				}
			default:
				return credential{}, errRepeatedParam
			}
		}
	}
	if found.source != 0 {
		return found, nil
	}

	if accepted&fromCookie != 0 {
		n := 0
		for _, line := range r.Header["Cookie"] {
			n += strings.Count(line, ";") + 1
		}
		if n > maxCookies {
			return credential{}, errTooManyCookies
		}
		// A cookie is keyed by name, host and path, not port: a page on
		// another port of this host, or one that set a narrower Path, can
		// plant a second cookie of this name, which the browser sends
		// first (RFC 6265 §5.4), so that the victim's page runs as the
		// planter. Which one the user meant cannot be known: refuse.
		switch cs := r.CookiesNamed(cookieName); {
		case len(cs) > 1:
			return credential{}, errRepeatedCookie
		case len(cs) == 1 && cs[0].Value != "":
			return credential{value: cs[0].Value, source: fromCookie}, nil
		}
	}
	return credential{}, errNoCredential
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
