package server

import (
	"net/url"
	"strings"
	"testing"
)

// TestOriginPolicy: an Origin is allowed when it is absent, names the
// request's own host (and, where the server knows the client used TLS, an
// https page), or is listed; null and unparsable origins are refused.
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
		{[]string{"http://%80"}, "\xea", false, false},  // url.Parse decodes the host to "\x80": the same trap
		{[]string{"http://%80"}, "\x80", false, false},  // browsers never percent-encode an origin
		{[]string{"http://k"}, "\u212a", false, false},  // EqualFold folds the Kelvin sign to k
		{[]string{"http://[::1%25eth0]:80"}, "[::1%eth0]:80", false, false},
		{[]string{"http://api.example.com#"}, "api.example.com", false, false}, // an empty fragment is still one
		{[]string{"http://api.example.com?"}, "api.example.com", false, false},
		{[]string{"http://api.example.com/"}, "api.example.com", true, false},
		{[]string{"http://api.example.com//"}, "api.example.com", false, false},
		{[]string{"http://[::1]:8080"}, "[::1]:8080", true, false},
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
		case isASCII(u.Host) && isASCII(host) && strings.EqualFold(u.Host, host):
			// The server's own host, equal but for ASCII case (EqualFold
			// folds more than ASCII, hence the isASCII).
			if !strings.EqualFold(originHost, host) && !strings.EqualFold(originHost+rest, host) &&
				!strings.EqualFold(strings.TrimSuffix(originHost+rest, "/"), host) {
				t.Fatalf("allows(%q, %q) = true; the origin names host %q", origin, host, originHost+rest)
			}
		case strings.EqualFold(u.Scheme+"://"+u.Host, "https://app.example.com"):
		default:
			t.Fatalf("allows(%q, %q) = true for a foreign origin (parsed host %q)", origin, host, u.Host)
		}
		if u.User != nil || u.RawQuery != "" || u.Fragment != "" || (u.Path != "" && u.Path != "/") || strings.ContainsAny(origin, "?#") {
			t.Fatalf("allows(%q, %q) = true for an origin with more than scheme://host[:port]", origin, host)
		}
	})
}
