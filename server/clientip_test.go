package server

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"

	"wsauth/tokens"
)

func prefixes(t *testing.T, s string) []netip.Prefix {
	t.Helper()
	p, err := ParseTrustedProxies(s)
	if err != nil {
		t.Fatalf("ParseTrustedProxies(%q): %v", s, err)
	}
	return p
}

func TestClientAddr(t *testing.T) {
	t.Parallel()
	const proxies = "10.0.0.0/8, 192.0.2.1, 2001:db8::/32"
	tests := []struct {
		name    string
		remote  string
		xff     []string
		trusted string
		want    string
	}{
		{"no proxies trusted, no header", "203.0.113.5:4000", nil, "", "203.0.113.5"},
		{"no proxies trusted, header ignored", "203.0.113.5:4000", []string{"198.51.100.7"}, "", "203.0.113.5"},
		{"untrusted peer, header ignored", "203.0.113.5:4000", []string{"198.51.100.7"}, proxies, "203.0.113.5"},
		{"untrusted peer claiming a trusted address", "203.0.113.5:4000", []string{"10.1.1.1"}, proxies, "203.0.113.5"},
		{"trusted peer, no header", "10.0.0.2:4000", nil, proxies, "10.0.0.2"},
		{"trusted peer, one hop", "10.0.0.2:4000", []string{"198.51.100.7"}, proxies, "198.51.100.7"},
		{"trusted peer, spoofed prefix skipped", "10.0.0.2:4000", []string{"1.2.3.4, 198.51.100.7"}, proxies, "198.51.100.7"},
		{"two trusted hops", "10.0.0.2:4000", []string{"1.2.3.4, 198.51.100.7, 192.0.2.1"}, proxies, "198.51.100.7"},
		{"several header lines are one list", "10.0.0.2:4000", []string{"1.2.3.4", "198.51.100.7", "10.9.9.9"}, proxies, "198.51.100.7"},
		{"all hops trusted: left-most", "10.0.0.2:4000", []string{"10.3.3.3, 192.0.2.1"}, proxies, "10.3.3.3"},
		{"garbage right of the client stops at the last trusted hop", "10.0.0.2:4000", []string{"198.51.100.7, garbage, 192.0.2.1"}, proxies, "192.0.2.1"},
		{"garbage from the proxy itself: the proxy", "10.0.0.2:4000", []string{"unknown"}, proxies, "10.0.0.2"},
		{"garbage left of the client is the client's own business", "10.0.0.2:4000", []string{"<script>, 198.51.100.7"}, proxies, "198.51.100.7"},
		{"empty header value", "10.0.0.2:4000", []string{""}, proxies, "10.0.0.2"},
		{"entry with a port", "10.0.0.2:4000", []string{"198.51.100.7:5555"}, proxies, "198.51.100.7"},
		{"IPv6 peer and entry", "[2001:db8::1]:4000", []string{"2001:db9::7"}, proxies, "2001:db9::7"},
		{"IPv6 entry with port", "[2001:db8::1]:4000", []string{"[2001:db9::7]:80"}, proxies, "2001:db9::7"},
		{"IPv4-mapped peer matches an IPv4 prefix", "[::ffff:10.0.0.2]:4000", []string{"198.51.100.7"}, proxies, "198.51.100.7"},
		{"IPv4-mapped entry is unmapped", "10.0.0.2:4000", []string{"::ffff:198.51.100.7"}, proxies, "198.51.100.7"},
		{"zone dropped", "[fe80::1%eth0]:4000", nil, "", "fe80::1"},
		{"unparsable RemoteAddr kept", "pipe", []string{"198.51.100.7"}, proxies, "pipe"},
		{"the right-most untrusted entry, not the left-most", "203.0.113.5:4000", []string{"1.2.3.4, 198.51.100.7"}, "203.0.113.0/24, 1.0.0.0/8", "198.51.100.7"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			trusted := prefixes(t, tt.trusted)
			if got := clientAddr(tt.remote, tt.xff, trusted); got != tt.want {
				t.Errorf("clientAddr(%q, %q, %q) = %q; want %q", tt.remote, tt.xff, tt.trusted, got, tt.want)
			}
		})
	}
}

func TestForwardedTLS(t *testing.T) {
	t.Parallel()
	trusted := prefixes(t, "10.0.0.0/8")
	tests := []struct {
		name   string
		direct bool
		remote string
		proto  []string
		want   bool
	}{
		{"direct TLS", true, "203.0.113.5:4000", nil, true},
		{"direct TLS, header says http", true, "10.0.0.2:4000", []string{"http"}, true},
		{"plain, no header", false, "10.0.0.2:4000", nil, false},
		{"trusted proxy says https", false, "10.0.0.2:4000", []string{"https"}, true},
		{"trusted proxy says HTTPS", false, "10.0.0.2:4000", []string{" HTTPS "}, true},
		{"trusted proxy says http", false, "10.0.0.2:4000", []string{"http"}, false},
		{"untrusted peer says https", false, "203.0.113.5:4000", []string{"https"}, false},
		{"nearest proxy's value counts", false, "10.0.0.2:4000", []string{"https, http"}, false},
		{"nearest proxy's line counts", false, "10.0.0.2:4000", []string{"http", "https"}, true},
		{"garbage", false, "10.0.0.2:4000", []string{"wss"}, false},
		{"unparsable RemoteAddr", false, "pipe", []string{"https"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := forwardedTLS(tt.direct, tt.remote, tt.proto, trusted); got != tt.want {
				t.Errorf("forwardedTLS(%v, %q, %q) = %v; want %v", tt.direct, tt.remote, tt.proto, got, tt.want)
			}
		})
	}
}

func TestParseTrustedProxies(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in      string
		want    []string
		wantErr bool
	}{
		{"", nil, false},
		{" , ", nil, false},
		{"127.0.0.1/32", []string{"127.0.0.1/32"}, false},
		{"10.1.2.3/8", []string{"10.0.0.0/8"}, false},
		{"192.0.2.1, 2001:db8::/32", []string{"192.0.2.1/32", "2001:db8::/32"}, false},
		{"::1", []string{"::1/128"}, false},
		{"::ffff:10.0.0.0/104", []string{"10.0.0.0/8"}, false},
		{"10.0.0.0/33", nil, true},
		{"example.com", nil, true},
		{"10.0.0.0/8,nonsense", nil, true},
	}
	for _, tt := range tests {
		got, err := ParseTrustedProxies(tt.in)
		if (err != nil) != tt.wantErr {
			t.Errorf("ParseTrustedProxies(%q) error = %v; want error %v", tt.in, err, tt.wantErr)
			continue
		}
		var gotS []string
		for _, p := range got {
			gotS = append(gotS, p.String())
		}
		if !slices.Equal(gotS, tt.want) {
			t.Errorf("ParseTrustedProxies(%q) = %q; want %q", tt.in, gotS, tt.want)
		}
	}
}

// noTokens is a validator for tests that need no valid token.
type noTokens struct{}

func (noTokens) Validate(context.Context, string) (tokens.Principal, error) {
	return tokens.Principal{}, tokens.ErrInvalid
}

// syncBuffer is a log sink shared by the server's goroutines and the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// TestClientInRequestLog sends X-Forwarded-For over a real socket from
// 127.0.0.1 and reads the request log's client attribute: a spoofed header
// from an untrusted peer changes nothing; from a trusted proxy it names the
// client.
func TestClientInRequestLog(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		trusted string
		xff     string
		want    string
	}{
		{"no trusted proxies, no header", "", "", "127.0.0.1"},
		{"no trusted proxies, spoofed header", "", "203.0.113.9", "127.0.0.1"},
		{"other proxies trusted, spoofed header", "10.0.0.0/8, ::1", "203.0.113.9", "127.0.0.1"},
		{"peer trusted", "127.0.0.0/8", "203.0.113.9", "203.0.113.9"},
		{"peer trusted, spoofed left part", "127.0.0.0/8", "198.51.100.1, 203.0.113.9", "203.0.113.9"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var logs syncBuffer
			s := New(Config{
				Validator:      noTokens{},
				Logger:         slog.New(slog.NewTextHandler(&logs, nil)),
				TrustedProxies: prefixes(t, tt.trusted),
			})
			ts := httptest.NewServer(s)
			defer ts.Close()
			for _, path := range []string{"/healthz", "/api/me"} {
				req, _ := http.NewRequest("GET", ts.URL+path, nil)
				if tt.xff != "" {
					req.Header.Set("X-Forwarded-For", tt.xff)
				}
				resp, err := ts.Client().Do(req)
				if err != nil {
					t.Fatalf("GET %s: %v", path, err)
				}
				resp.Body.Close()
				if want := map[string]int{"/healthz": 200, "/api/me": 401}[path]; resp.StatusCode != want {
					t.Errorf("GET %s: status = %d; want %d", path, resp.StatusCode, want)
				}
			}
			ts.Close() // the log lines are written before the handlers return
			var lines []string
			for line := range strings.Lines(logs.String()) {
				if strings.Contains(line, " msg=request ") {
					lines = append(lines, strings.TrimSpace(line))
				}
			}
			if len(lines) != 2 {
				t.Fatalf("request log has %d request lines; want 2:\n%s", len(lines), logs.String())
			}
			for _, line := range lines {
				if !strings.Contains(line+" ", " client="+tt.want+" ") {
					t.Errorf("log line %q: want client=%s", line, tt.want)
				}
			}
		})
	}
}

// TestParseAddrAllocs: reading a RemoteAddr ("ip:port") or an
// X-Forwarded-For entry ("ip") allocates nothing: every request reads one,
// and a failed parse of the other form would allocate its error.
func TestParseAddrAllocs(t *testing.T) {
	for _, s := range []string{"192.0.2.1:443", "[2001:db8::1]:443", "192.0.2.1", "2001:db8::1"} {
		if n := testing.AllocsPerRun(100, func() {
			if _, ok := parseAddr(s); !ok {
				t.Fatalf("parseAddr(%q) failed", s)
			}
		}); n != 0 {
			t.Errorf("parseAddr(%q) allocates %v times; want 0", s, n)
		}
	}
}
