package tokens_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"time"

	faketokensvc "wsauth/fake_tokensvc"
	"wsauth/tokens"
)

// Validate JWT access tokens locally and opaque ones by introspection, with
// the endpoints found by discovery, behind the cache a server uses. The
// cache's rechecks introspect every token, so that a revoked JWT is seen.
func Example_jwtAndIntrospection() {
	// A token system: the fake, whose issuer is its own URL.
	ts := httptest.NewUnstartedServer(nil)
	issuer := "http://" + ts.Listener.Addr().String()
	svc := faketokensvc.New(faketokensvc.Options{Issuer: issuer, ClientSecret: "s3cret"})
	ts.Config.Handler = svc.Handler()
	ts.Start()
	defer ts.Close()

	ctx := context.Background()
	md, err := tokens.Discover(ctx, nil, issuer)
	if err != nil {
		fmt.Println(err)
		return
	}
	jwt, err := tokens.NewJWTVerifier(tokens.JWTConfig{JWKSURL: md.JWKSURI, Issuer: md.Issuer, Audience: "wsauth-api"})
	if err != nil {
		fmt.Println(err)
		return
	}
	if err := jwt.FetchKeys(ctx); err != nil {
		fmt.Println(err)
		return
	}
	in := &tokens.Introspector{URL: md.IntrospectionEndpoint, ClientID: "wsauth", ClientSecret: "s3cret"}
	if err := in.Probe(ctx); err != nil {
		fmt.Println(err)
		return
	}
	kinds := &tokens.Kinds{JWT: jwt, Introspector: in}
	cache := tokens.NewCache(kinds, tokens.CacheConfig{Recheck: kinds.Recheck})

	probes := svc.Introspections()
	access, _, _ := svc.IssueToken(faketokensvc.TokenRequest{Sub: "alice", Scopes: []string{"api", "ws"}, TTL: time.Hour, JWT: true, Alg: "ES256"})
	p, err := cache.Validate(ctx, access)
	fmt.Println(p.Subject, p.Scopes, err, "introspections:", svc.Introspections()-probes)

	svc.Revoke(access)
	_, err = cache.Validate(ctx, access)
	fmt.Println("validate after revocation:", err)
	_, err = cache.Refresh(ctx, access)
	fmt.Println("recheck after revocation:", err)

	refresh, _, _ := svc.IssueToken(faketokensvc.TokenRequest{Sub: "alice", TTL: time.Hour, Kind: faketokensvc.RefreshToken})
	_, err = cache.Validate(ctx, refresh)
	fmt.Println("refresh token:", err)
	// Output:
	// alice [api ws] <nil> introspections: 0
	// validate after revocation: <nil>
	// recheck after revocation: invalid token: inactive
	// refresh token: invalid token: not an access token (its typ or token_use says so)
}
