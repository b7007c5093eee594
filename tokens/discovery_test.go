package tokens_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	faketokensvc "wsauth/fake_tokensvc"
	"wsauth/tokens"
)

func TestDiscoverFake(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	md, err := tokens.Discover(context.Background(), e.http, e.url)
	if err != nil {
		t.Fatalf("Discover(the fake) = %v", err)
	}
	want := tokens.Metadata{
		Issuer:                e.url,
		JWKSURI:               e.url + jwksPath,
		IntrospectionEndpoint: e.url + "/introspect",
		URL:                   e.url + "/.well-known/openid-configuration",
	}
	if md != want {
		t.Errorf("Discover(the fake) = %+v; want %+v", md, want)
	}
	// What discovery finds works: a JWT verifies with the keys it names.
	v, err := tokens.NewJWTVerifier(tokens.JWTConfig{JWKSURL: md.JWKSURI, Issuer: md.Issuer, Audience: "wsauth-api", HTTPClient: e.http, Now: e.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	tok := e.issue(t, faketokensvc.TokenRequest{Sub: "alice", TTL: 3600e9, JWT: true})
	if _, err := v.Validate(context.Background(), tok); err != nil {
		t.Errorf("Validate(JWT) with discovered keys = %v; want nil", err)
	}
}

// discoveryServer serves documents by path, 404 elsewhere, and records the
// paths asked for. A document's "{{issuer}}" is replaced with the server's
// URL.
func discoveryServer(t testing.TB, docs map[string]string) (url string, asked func() []string) {
	t.Helper()
	var mu sync.Mutex
	var paths []string
	var ts *httptest.Server
	ts = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		paths = append(paths, r.URL.Path)
		mu.Unlock()
		doc, ok := docs[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(strings.ReplaceAll(doc, "{{issuer}}", ts.URL)))
	}))
	t.Cleanup(ts.Close)
	return ts.URL, func() []string { mu.Lock(); defer mu.Unlock(); return slices.Clone(paths) }
}

func TestDiscover(t *testing.T) {
	t.Parallel()
	closed := httptest.NewServer(nil)
	closed.Close()
	const oidc, oauth = "/.well-known/openid-configuration", "/.well-known/oauth-authorization-server"
	good := `{"issuer":"{{issuer}}%s","jwks_uri":"{{issuer}}/keys"}`
	for _, tc := range []struct {
		name      string
		docs      map[string]string
		path      string   // the issuer's path
		wantAsked []string // paths requested, in order
		wantURL   string   // the path the document came from; "" if an error
		wantErr   []string // substrings of the error
	}{
		{name: "OpenID Connect", docs: map[string]string{oidc: fmt.Sprintf(good, "")},
			wantAsked: []string{oidc}, wantURL: oidc},
		{name: "RFC 8414 when OpenID Connect has none", docs: map[string]string{oauth: fmt.Sprintf(good, "")},
			wantAsked: []string{oidc, oauth}, wantURL: oauth},
		{name: "issuer with a path: appended for OpenID Connect", path: "/tenant/v2", docs: map[string]string{"/tenant/v2" + oidc: fmt.Sprintf(good, "/tenant/v2")},
			wantAsked: []string{"/tenant/v2" + oidc}, wantURL: "/tenant/v2" + oidc},
		{name: "issuer with a path: inserted for RFC 8414 (§3.1)", path: "/tenant/v2", docs: map[string]string{oauth + "/tenant/v2": fmt.Sprintf(good, "/tenant/v2")},
			wantAsked: []string{"/tenant/v2" + oidc, oauth + "/tenant/v2"}, wantURL: oauth + "/tenant/v2"},
		{name: "issuer with a trailing slash (Auth0)", path: "/", docs: map[string]string{oidc: fmt.Sprintf(good, "/")},
			wantAsked: []string{oidc}, wantURL: oidc},
		{name: "neither document", docs: nil, wantAsked: []string{oidc, oauth},
			wantErr: []string{oidc + " answered 404 Not Found", oauth + " answered 404 Not Found"}},
		{name: "another issuer named", docs: map[string]string{oidc: `{"issuer":"https://evil.example","jwks_uri":"https://evil.example/keys"}`},
			wantAsked: []string{oidc}, wantErr: []string{oidc, `names the issuer "https://evil.example"`}},
		{name: "issuer without its trailing slash", path: "/", docs: map[string]string{oidc: fmt.Sprintf(good, "")},
			wantAsked: []string{oidc}, wantErr: []string{"trailing slash included"}},
		{name: "no issuer member", docs: map[string]string{oidc: `{"jwks_uri":"https://x.example/keys"}`},
			wantAsked: []string{oidc}, wantErr: []string{`names the issuer ""`}},
		{name: "not JSON", docs: map[string]string{oidc: `<html>login</html>`},
			wantAsked: []string{oidc}, wantErr: []string{oidc, "not usable"}},
		{name: "jwks_uri not a string", docs: map[string]string{oidc: `{"issuer":"{{issuer}}","jwks_uri":7}`},
			wantAsked: []string{oidc}, wantErr: []string{`"jwks_uri" is not a string`}},
		{name: "neither jwks_uri nor introspection", docs: map[string]string{oidc: `{"issuer":"{{issuer}}"}`},
			wantAsked: []string{oidc}, wantErr: []string{`neither "jwks_uri" nor "introspection_endpoint"`}},
		{name: "jwks_uri not a URL", docs: map[string]string{oidc: `{"issuer":"{{issuer}}","jwks_uri":"keys"}`},
			wantAsked: []string{oidc}, wantErr: []string{`"jwks_uri" is not an http or https URL`}},
		{name: "duplicate issuer member", docs: map[string]string{oidc: `{"issuer":"https://evil.example","issuer":"{{issuer}}","jwks_uri":"{{issuer}}/k"}`},
			wantAsked: []string{oidc}, wantErr: []string{"names a member twice"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			base, asked := discoveryServer(t, tc.docs)
			md, err := tokens.Discover(context.Background(), nil, base+tc.path)
			if got := asked(); !slices.Equal(got, tc.wantAsked) {
				t.Errorf("Discover asked for %q; want %q", got, tc.wantAsked)
			}
			if tc.wantURL != "" {
				if err != nil || md.URL != base+tc.wantURL || md.JWKSURI != base+"/keys" || md.Issuer != base+tc.path {
					t.Errorf("Discover = %+v, %v; want the document at %s", md, err, tc.wantURL)
				}
				return
			}
			for _, want := range tc.wantErr {
				if err == nil || !strings.Contains(err.Error(), want) {
					t.Errorf("Discover = %v; want an error saying %q", err, want)
				}
			}
		})
	}

	for _, tc := range []struct{ issuer, want string }{
		{closed.URL, "GET " + closed.URL + oidc + ": dial tcp"},
		{closed.URL + "?tenant=x", "not an http or https URL without query"},
		{"ftp://issuer.example", "not an http or https URL"},
		{"https://user:pass@issuer.example", "credentials"},
		{"issuer.example", "not an http or https URL"},
	} {
		_, err := tokens.Discover(context.Background(), nil, tc.issuer)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Discover(%q) = %v; want an error saying %q", tc.issuer, err, tc.want)
		}
	}
}

func TestDiscoverRedirectNotFollowed(t *testing.T) {
	t.Parallel()
	target, asked := discoveryServer(t, map[string]string{"/.well-known/openid-configuration": `{"issuer":"{{issuer}}","jwks_uri":"{{issuer}}/k"}`})
	ts := httptest.NewServer(http.RedirectHandler(target+"/.well-known/openid-configuration", http.StatusFound))
	defer ts.Close()
	_, err := tokens.Discover(context.Background(), nil, ts.URL)
	if err == nil || !strings.Contains(err.Error(), "302 Found, a redirect to "+target) {
		t.Errorf("Discover(issuer that redirects) = %v; want an error naming the redirect", err)
	}
	if n := len(asked()); n != 0 {
		t.Errorf("the redirect's target was asked %d times; want 0", n)
	}
}

// TestDiscoverGivesUpOnASilentIssuer: an issuer that takes the connection
// and never answers fails discovery after DefaultTimeout, with an error
// naming the URL, even when the caller's context has no deadline: a
// server must not hang at start-up without a word.
func TestDiscoverGivesUpOnASilentIssuer(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer ts.Close()
	defer close(release)

	done := make(chan error, 1)
	go func() {
		_, err := tokens.Discover(context.Background(), nil, ts.URL)
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), ts.URL+"/.well-known/openid-configuration") {
			t.Errorf("Discover(silent issuer) = %v; want an error naming the URL it waited for", err)
		}
	case <-time.After(4 * tokens.DefaultTimeout):
		t.Fatalf("Discover(silent issuer) still waiting after %v; want it to give up after %v", 4*tokens.DefaultTimeout, tokens.DefaultTimeout)
	}
}
