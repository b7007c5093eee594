package server

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
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
