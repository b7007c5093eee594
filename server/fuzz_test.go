package server

import (
	"bufio"
	"bytes"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
)

// FuzzExtractCredential checks the credential extraction on hostile
// headers, query strings and cookies: it never panics, it returns a
// credential only from an accepted source, the credential's value occurs in
// the input it says it came from (it is never invented or spliced from two
// places), and an explicit credential beats the cookie.
func FuzzExtractCredential(f *testing.F) {
	f.Add("Bearer abc", "", "", "", uint8(wsSources))
	f.Add("bearer  abc ", "wsauth.v1, wsauth.bearer.abc", "", "token=abc", uint8(wsSources))
	f.Add("", "wsauth.bearer.x,wsauth.v1", "token=y", "", uint8(wsSources))
	f.Add("", "", "token=a%20b&ticket=t", "token=c", uint8(apiSources))
	f.Add("Basic dXNlcjpwYXNz", "", "", "token=cookie; other=1", uint8(apiSources))
	f.Add("", "", "token=a&token=b", "", uint8(wsSources))
	f.Add("Bearer ", "wsauth.bearer.", "token=", "token=\"quoted\"", uint8(0xff))
	f.Add("", "", "", strings.Repeat("a=b;", 3001), uint8(fromCookie))
	f.Add("", "", "", "token=planted; token=mine", uint8(wsSources))
	f.Add("", "", "ticket=t&x=%zz", "token=c", uint8(wsSources))
	f.Add("", "", "token=a;b", "token=c", uint8(wsSources))
	f.Fuzz(func(t *testing.T, auth, proto, rawQuery, cookie string, accepted uint8) {
		r := &http.Request{Method: "GET", URL: &url.URL{Path: "/ws", RawQuery: rawQuery}, Header: http.Header{}}
		if auth != "" {
			r.Header.Set("Authorization", auth)
		}
		if proto != "" {
			r.Header.Set("Sec-WebSocket-Protocol", proto)
		}
		if cookie != "" {
			r.Header.Set("Cookie", cookie)
		}
		cred, err := extractCredential(r, source(accepted), "token")
		if err != nil {
			if answerFor(err).status >= 500 {
				t.Fatalf("extractCredential error %v answers %d; want a 4xx", err, answerFor(err).status)
			}
			return
		}
		if cred.value == "" || source(accepted)&cred.source == 0 {
			t.Fatalf("extractCredential = %q from %v, accepted %b; want a non-empty value from an accepted source",
				cred.value, cred.source, accepted)
		}
		if _, err := url.ParseQuery(rawQuery); err != nil {
			t.Fatalf("extractCredential = %q from %v, with a query net/url cannot parse (%v); want 400", cred.value, cred.source, err)
		}
		if n := len(r.CookiesNamed("token")); cred.source == fromCookie && n != 1 {
			t.Fatalf("extractCredential chose the cookie, sent %d times; want it only when sent once", n)
		}
		var from string
		switch cred.source {
		case fromBearer:
			from = auth
		case fromSubprotocol:
			from = proto
		case fromCookie:
			from = cookie
		case fromQuery, fromTicket:
			q, _ := url.ParseQuery(rawQuery)
			name := map[source]string{fromQuery: "token", fromTicket: "ticket"}[cred.source]
			if !slices.Contains(q[name], cred.value) {
				t.Fatalf("extractCredential = %q from the query; %s values are %q", cred.value, name, q[name])
			}
			return
		default:
			t.Fatalf("extractCredential returned source %v", cred.source)
		}
		if !strings.Contains(from, cred.value) {
			t.Fatalf("extractCredential = %q from %v; not in that input %q", cred.value, cred.source, from)
		}
		if cred.source == fromCookie {
			if _, err := extractCredential(r, source(accepted)&^fromCookie, "token"); err == nil {
				t.Fatalf("extractCredential chose the cookie over an explicit credential")
			}
		}
	})
}

// FuzzOriginPolicy checks that no Origin naming a host other than the
// server's, and not on the allowed list, is ever allowed; and that when the
// server knows the client used TLS, the same-host rule allows only https,
// and allows nothing it would not allow otherwise.
func FuzzOriginPolicy(f *testing.F) {
	f.Add("https", "api.example.com", "api.example.com.evil.example", "")
	f.Add("http", "127.0.0.1:8080", "127.0.0.1:8081", "/")
	f.Add("https", "api.example.com", "API.EXAMPLE.COM", "")
	f.Add("https", "app.example.com", "evil.example", "")
	f.Add("https", "x", "x@evil.example", "")
	f.Add("https", "api.example.com", "evil.example#api.example.com", "")
	f.Add("https", "api.example.com", "evil.example\\@api.example.com", "")
	f.Add("null", "api.example.com", "", "")
	f.Fuzz(func(t *testing.T, scheme, host, originHost, rest string) {
		p := newOriginPolicy([]string{"https://app.example.com"})
		origin := scheme + "://" + originHost + rest
		allowed := p.allows([]string{origin}, host, false)
		secure := p.allows([]string{origin}, host, true)
		if secure && !allowed {
			t.Fatalf("allows(%q, %q) over TLS = true, without TLS = false; want TLS to allow no more", origin, host)
		}
		if !allowed {
			return
		}
		u, err := url.Parse(origin)
		if err != nil {
			t.Fatalf("allows(%q, %q) = true; the origin does not parse: %v", origin, host, err)
		}
		if secure && u.Scheme != "https" && !p.allowed[strings.ToLower(u.Scheme+"://"+u.Host)] {
			t.Fatalf("allows(%q, %q) over TLS = true for a %s page that is not listed", origin, host, u.Scheme)
		}
		switch {
		case strings.EqualFold(u.Host, host):
			// The server's own host.
			if !strings.EqualFold(originHost, host) && !strings.EqualFold(originHost+rest, host) &&
				!strings.EqualFold(strings.TrimSuffix(originHost+rest, "/"), host) {
				t.Fatalf("allows(%q, %q) = true; the origin names host %q", origin, host, originHost+rest)
			}
		case strings.EqualFold(u.Scheme+"://"+u.Host, "https://app.example.com"):
		default:
			t.Fatalf("allows(%q, %q) = true for a foreign origin (parsed host %q)", origin, host, u.Host)
		}
		if u.User != nil || u.RawQuery != "" || u.Fragment != "" || (u.Path != "" && u.Path != "/") {
			t.Fatalf("allows(%q, %q) = true for an origin with more than scheme://host[:port]", origin, host)
		}
	})
}

// FuzzFrames feeds hostile bytes to the frame reader: readHeader and
// parseClose never panic, every refusal is a close code the server may
// send, a header they accept obeys RFC 6455 §5.2 and §5.5, and no close
// code a peer must not send (1005, 1006, 1015, reserved ranges) is ever
// accepted from a non-empty close payload.
func FuzzFrames(f *testing.F) {
	mask := []byte{1, 2, 3, 4}
	f.Add(append([]byte{0x81, 0x85}, append(mask, "hello"...)...))
	f.Add(append([]byte{0x88, 0x82}, append(mask, 0x03^1, 0xe8^2)...))
	f.Add(append([]byte{0x88, 0x82}, append(mask, 0x03^1, 0xed^2)...))         // 1005
	f.Add(append([]byte{0x88, 0x83}, append(mask, 0x03^1, 0xe8^2, 0xff^3)...)) // bad UTF-8
	f.Add(append([]byte{0x81, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 0}, mask...))      // top bit
	f.Add(append([]byte{0x82, 0xfe, 0x01, 0x00}, mask...))                     // 16-bit length
	f.Add(append([]byte{0x09, 0x80}, mask...))                                 // fragmented ping
	f.Add([]byte{0x81, 0x05, 'h', 'e', 'l', 'l', 'o'})                         // unmasked
	f.Fuzz(func(t *testing.T, in []byte) {
		br := bufio.NewReader(bytes.NewReader(in))
		h, err := readHeader(br)
		if err != nil {
			var ce *closeError
			if errors.As(err, &ce) && ce.code != CloseProtocolError {
				t.Fatalf("readHeader refused with close %d; want 1002", ce.code)
			}
			return
		}
		switch {
		case h.length < 0:
			t.Fatalf("readHeader length = %d", h.length)
		case h.op > opBinary && h.op < opClose, h.op > opPong:
			t.Fatalf("readHeader accepted opcode %d", h.op)
		case h.op >= opClose && (!h.fin || h.length > maxControlPayload):
			t.Fatalf("readHeader accepted control frame fin=%v length=%d", h.fin, h.length)
		}
		if h.op != opClose {
			return
		}
		payload, err := readPayload(br, h, nil)
		if err != nil {
			return
		}
		code, reason, err := parseClose(payload)
		if err != nil {
			var ce *closeError
			if !errors.As(err, &ce) || (ce.code != CloseProtocolError && ce.code != CloseInvalidPayload) {
				t.Fatalf("parseClose(%x) error %v; want close 1002 or 1007", payload, err)
			}
			return
		}
		if len(payload) == 0 {
			if code != CloseNoStatus {
				t.Fatalf("parseClose(empty) = %d; want 1005", code)
			}
			return
		}
		if !validCloseCode(code) || code == 1005 || code == 1006 || code == 1015 || (code >= 1016 && code < 3000) {
			t.Fatalf("parseClose(%x) accepted code %d", payload, code)
		}
		if string(payload[2:]) != reason {
			t.Fatalf("parseClose(%x) reason %q; want the payload's", payload, reason)
		}
	})
}
