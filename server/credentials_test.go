package server

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestExtractCredential(t *testing.T) {
	t.Parallel()
	type hdr = map[string][]string
	manyCookies := strings.Repeat("a=b; ", maxCookies) + "token=c"
	for _, tc := range []struct {
		name     string
		target   string
		header   hdr
		accepted source
		want     credential
		wantErr  error
	}{
		{"bearer", "/ws", hdr{"Authorization": {"Bearer abc"}}, wsSources, credential{"abc", fromBearer}, nil},
		{"bearer scheme is case-insensitive", "/ws", hdr{"Authorization": {"bEaReR abc"}}, wsSources, credential{"abc", fromBearer}, nil},
		{"basic is not ours", "/ws", hdr{"Authorization": {"Basic dXNlcjpwYXNz"}}, wsSources, credential{}, errNoCredential},
		{"empty bearer", "/ws", hdr{"Authorization": {"Bearer "}}, wsSources, credential{}, errEmptyBearer},
		{"two Authorization headers", "/ws", hdr{"Authorization": {"Bearer a", "Bearer b"}}, wsSources, credential{}, errTwoAuthHeaders},
		{"subprotocol", "/ws", hdr{"Sec-Websocket-Protocol": {"wsauth.v1, wsauth.bearer.abc"}}, wsSources, credential{"abc", fromSubprotocol}, nil},
		{"subprotocol on a second header line", "/ws", hdr{"Sec-Websocket-Protocol": {"chat", "wsauth.bearer.abc, wsauth.v1"}}, wsSources, credential{"abc", fromSubprotocol}, nil},
		{"subprotocol without wsauth.v1", "/ws", hdr{"Sec-Websocket-Protocol": {"wsauth.bearer.abc"}}, wsSources, credential{}, errNoSubprotocol},
		{"two subprotocol tokens", "/ws", hdr{"Sec-Websocket-Protocol": {"wsauth.v1, wsauth.bearer.a, wsauth.bearer.b"}}, wsSources, credential{}, errTwoCredentials},
		{"query", "/ws?token=abc", nil, wsSources, credential{"abc", fromQuery}, nil},
		{"query off", "/ws?token=abc", nil, wsSources &^ fromQuery, credential{}, errQueryTokenOff},
		{"repeated query", "/ws?token=a&token=a", nil, wsSources, credential{}, errRepeatedParam},
		{"ticket", "/ws?ticket=t1", nil, wsSources, credential{"t1", fromTicket}, nil},
		{"cookie", "/ws", hdr{"Cookie": {"token=abc"}}, wsSources, credential{"abc", fromCookie}, nil},
		{"other cookie name", "/ws", hdr{"Cookie": {"session=abc"}}, wsSources, credential{}, errNoCredential},
		{"empty query token", "/ws?token=", nil, wsSources, credential{}, errEmptyParam},
		{"empty cookie", "/ws", hdr{"Cookie": {"token="}}, wsSources, credential{}, errNoCredential},
		{"bearer beats a stale cookie", "/ws", hdr{"Authorization": {"Bearer new"}, "Cookie": {"token=old"}}, wsSources, credential{"new", fromBearer}, nil},
		{"same token twice is one credential", "/ws?token=abc", hdr{"Authorization": {"Bearer abc"}}, wsSources, credential{"abc", fromBearer}, nil},
		{"bearer and a different query token", "/ws?token=b", hdr{"Authorization": {"Bearer a"}}, wsSources, credential{}, errTwoCredentials},
		{"subprotocol and a different bearer", "/ws", hdr{"Authorization": {"Bearer a"}, "Sec-Websocket-Protocol": {"wsauth.v1, wsauth.bearer.b"}}, wsSources, credential{}, errTwoCredentials},
		{"token and ticket", "/ws?token=a&ticket=b", nil, wsSources, credential{}, errTwoCredentials},
		{"query where not accepted", "/x?token=a", nil, fromBearer | fromCookie, credential{}, errQueryTokenOff},
		{"ticket where not accepted", "/x?ticket=a", nil, fromBearer | fromCookie, credential{}, errSourceNotAccepted},
		{"too many cookies", "/ws", hdr{"Cookie": {manyCookies}}, wsSources, credential{}, errTooManyCookies},
		{"cookie twice (one planted for a narrower path)", "/ws", hdr{"Cookie": {"token=planted; token=mine"}}, wsSources, credential{}, errRepeatedCookie},
		{"cookie twice, on two header lines", "/ws", hdr{"Cookie": {"token=planted", "a=b; token=mine"}}, wsSources, credential{}, errRepeatedCookie},
		{"cookie twice, the same value", "/ws", hdr{"Cookie": {"token=abc; token=abc"}}, wsSources, credential{}, errRepeatedCookie},
		{"cookie twice, one empty", "/ws", hdr{"Cookie": {"token=; token=mine"}}, wsSources, credential{}, errRepeatedCookie},
		{"other cookies twice", "/ws", hdr{"Cookie": {"a=1; a=2; token=mine"}}, wsSources, credential{"mine", fromCookie}, nil},
		{"bearer is not refused for cookies it does not use", "/ws", hdr{"Authorization": {"Bearer abc"}, "Cookie": {"token=x; token=y"}}, wsSources, credential{"abc", fromBearer}, nil},
		{"ticket is not refused for cookies it does not use", "/ws?ticket=t1", hdr{"Cookie": {"token=x; token=y"}}, wsSources, credential{"t1", fromTicket}, nil},
		{"subprotocol is not refused for cookies it does not use", "/ws", hdr{"Sec-Websocket-Protocol": {"wsauth.v1, wsauth.bearer.abc"}, "Cookie": {"token=x; token=y"}}, wsSources, credential{"abc", fromSubprotocol}, nil},
		{"query is not refused for cookies it does not use", "/ws?token=abc", hdr{"Cookie": {"token=x; token=y"}}, wsSources, credential{"abc", fromQuery}, nil},
		{"cookies twice where cookies are not accepted", "/x", hdr{"Cookie": {"token=x; token=y"}}, fromBearer, credential{}, errNoCredential},
		{"nothing", "/ws", nil, wsSources, credential{}, errNoCredential},
		{"query over net/url's parameter limit hides a token", "/ws?token=q&" + strings.Repeat("a&", 10_000), hdr{"Cookie": {"token=c"}}, wsSources, credential{}, errBadQuery},
		{"bad escape beside a ticket", "/ws?ticket=t1&x=%zz", hdr{"Cookie": {"token=c"}}, wsSources, credential{}, errBadQuery},
		{"semicolon in the query", "/ws?token=a;b", hdr{"Cookie": {"token=c"}}, wsSources, credential{}, errBadQuery},
		{"unparsable query where tokens in the query are off", "/ws?x=%zz", hdr{"Cookie": {"token=c"}}, wsSources &^ fromQuery, credential{}, errBadQuery},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", tc.target, nil)
			r.Header = http.Header(tc.header)
			if r.Header == nil {
				r.Header = http.Header{}
			}
			got, err := extractCredential(r, tc.accepted, "token")
			if !errors.Is(err, tc.wantErr) || got != tc.want {
				t.Errorf("extractCredential = %+v, %v; want %+v, %v", got, err, tc.want, tc.wantErr)
			}
		})
	}
}

func TestOriginPolicy(t *testing.T) {
	t.Parallel()
	p := newOriginPolicy([]string{"https://app.example.com", " HTTP://Other.example:8443/ "})
	for _, tc := range []struct {
		origin []string
		host   string
		want   bool
		secure bool // the server knows the client used TLS
	}{
		{nil, "api.example.com", true, false},
		{[]string{"https://api.example.com"}, "api.example.com", true, false},
		{[]string{"http://API.example.com"}, "api.example.com", true, false}, // scheme unknown, host case-insensitive
		{[]string{"http://127.0.0.1:8080"}, "127.0.0.1:8080", true, false},
		{[]string{"http://127.0.0.1:8081"}, "127.0.0.1:8080", false, false}, // port compared
		{[]string{"https://app.example.com"}, "api.example.com", true, false},
		{[]string{"http://app.example.com"}, "api.example.com", false, false}, // allowed list compares scheme
		{[]string{"http://other.example:8443"}, "api.example.com", true, false},
		{[]string{"https://evil.example"}, "api.example.com", false, false},
		{[]string{"https://api.example.com.evil.example"}, "api.example.com", false, false},
		{[]string{"null"}, "api.example.com", false, false},
		{[]string{""}, "api.example.com", false, false},
		{[]string{"::"}, "api.example.com", false, false},
		{[]string{"https://api.example.com/path"}, "api.example.com", false, false},
		{[]string{"https://user@api.example.com"}, "api.example.com", false, false},
		{[]string{"file://api.example.com"}, "api.example.com", false, false},
		{[]string{"http://\xd3"}, "\xfd", false, false}, // invalid UTF-8: EqualFold would call them equal
		{[]string{"https://xn--caf-dma.example"}, "xn--caf-dma.example", true, false},
		{[]string{"https://café.example"}, "café.example", false, false}, // browsers send punycode
		{[]string{"https://api.example.com", "https://api.example.com"}, "api.example.com", false, false},
		// Over TLS the same-host rule wants an https page.
		{[]string{"https://api.example.com"}, "api.example.com", true, true},
		{[]string{"http://api.example.com"}, "api.example.com", false, true},
		{[]string{"HTTP://api.example.com"}, "api.example.com", false, true},
		{[]string{"http://127.0.0.1:8443"}, "127.0.0.1:8443", false, true},
		{nil, "api.example.com", true, true},
		{[]string{"https://app.example.com"}, "api.example.com", true, true},
		{[]string{"http://other.example:8443"}, "api.example.com", true, true}, // listed explicitly: the operator's choice
	} {
		if got := p.allows(tc.origin, tc.host, tc.secure); got != tc.want {
			t.Errorf("allows(%q, %q, secure %v) = %v; want %v", tc.origin, tc.host, tc.secure, got, tc.want)
		}
	}
}

func TestCheckUpgrade(t *testing.T) {
	t.Parallel()
	good := func() *http.Request {
		r := httptest.NewRequest("GET", "/ws", nil)
		r.Header.Set("Connection", "keep-alive, Upgrade")
		r.Header.Set("Upgrade", "websocket")
		r.Header.Set("Sec-WebSocket-Version", "13")
		r.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
		return r
	}
	for _, tc := range []struct {
		name   string
		mutate func(*http.Request)
		status int
	}{
		{"good", func(*http.Request) {}, 0},
		{"HTTP/1.0", func(r *http.Request) { r.Proto, r.ProtoMinor = "HTTP/1.0", 0 }, 400},
		{"no Upgrade", func(r *http.Request) { r.Header.Del("Upgrade") }, 426},
		{"no Connection: upgrade", func(r *http.Request) { r.Header.Set("Connection", "keep-alive") }, 426},
		{"version 8", func(r *http.Request) { r.Header.Set("Sec-WebSocket-Version", "8") }, 426},
		{"no key", func(r *http.Request) { r.Header.Del("Sec-WebSocket-Key") }, 400},
		{"short key", func(r *http.Request) { r.Header.Set("Sec-WebSocket-Key", "c2hvcnQ=") }, 400},
		{"HEAD", func(r *http.Request) { r.Method = "HEAD" }, 405},
		{"POST", func(r *http.Request) { r.Method = "POST" }, 405},
		{"Host with a port x/net cannot parse", func(r *http.Request) { r.Host = "example.com:abc" }, 400},
		{"Host with a bad escape", func(r *http.Request) { r.Host = "exa%zzmple.com" }, 400},
		{"IPv6 Host", func(r *http.Request) { r.Host = "[::1]:8080" }, 0},
		{"Connection: upgrade on a second line only (x/net reads the first)", func(r *http.Request) {
			r.Header["Connection"] = []string{"keep-alive", "Upgrade"}
		}, 426},
	} {
		r := good()
		tc.mutate(r)
		err := checkUpgrade(r)
		got := 0
		if err != nil {
			got = answerFor(err).status
		}
		if got != tc.status {
			t.Errorf("%s: checkUpgrade status = %d (%v); want %d", tc.name, got, err, tc.status)
		}
	}
}
