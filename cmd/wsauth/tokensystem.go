package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"

	"wsauth/server"
	"wsauth/tokens"
)

// checkTokenFlags checks the flags that say how tokens are validated, as
// far as that needs no network.
func checkTokenFlags(o options) error {
	if o.clockSkew < 0 || o.clockSkew > tokens.MaxLeeway {
		return fmt.Errorf("-clock-skew is %v; want 0 (off) to %v", o.clockSkew, tokens.MaxLeeway)
	}
	switch o.introspectAuth {
	case tokens.ClientSecretBasic, tokens.ClientSecretPost, tokens.AuthNone:
	default:
		return fmt.Errorf("-introspect-auth is %q; want %s, %s or %s", o.introspectAuth, tokens.ClientSecretBasic, tokens.ClientSecretPost, tokens.AuthNone)
	}
	if len(o.jwtAlgs) == 0 {
		return fmt.Errorf("-jwt-algs is empty; want some of %s", strings.Join(tokens.DefaultAlgorithms, ","))
	}
	for _, alg := range o.jwtAlgs {
		if !slices.Contains(tokens.DefaultAlgorithms, alg) {
			return fmt.Errorf("-jwt-algs: %q is not supported; want some of %s", alg, strings.Join(tokens.DefaultAlgorithms, ","))
		}
	}
	if len(o.jwtTypes) == 0 {
		return fmt.Errorf("-jwt-typ is empty; want the accepted \"typ\" headers, such as %s", strings.Join(tokens.DefaultTypes, ","))
	}
	for name, scope := range map[string]string{"api-scope": o.apiScope, "ws-scope": o.wsScope} {
		if !server.ValidScope(scope) {
			return fmt.Errorf("-%s is %q; want a scope as the token system spells it: visible ASCII without space, '\"' or '\\' (RFC 6749 §3.3)", name, scope)
		}
	}
	return nil
}

// tokenSystem builds the validator for the token system the flags name
// (docs/TOKEN-SYSTEMS.md), after checking that each part of it answers as
// it should, and logs how tokens will be validated:
//
//   - -issuer: discovery finds the JWK set and, if the issuer has one, the
//     introspection endpoint. A -jwks-url turns discovery off (-issuer then
//     only names the "iss"); an -introspect-url wins over discovery's. A
//     discovered introspection endpoint is used only with client
//     credentials ($WSAUTH_CLIENT_SECRET, or -introspect-auth none):
//     many issuers advertise one that a resource server without a secret
//     cannot call, and their JWTs need none.
//   - with a JWK set, JWTs are verified locally, and -audience (or
//     -allowed-client-ids) is required; other tokens are introspected if
//     there is an introspection endpoint, else refused.
//   - with introspection, rechecks of open WebSockets introspect every
//     token, JWTs included, so that a revocation closes them.
//
// A discovery that fails, a JWK set or introspection endpoint that answers
// wrongly, or a missing -audience is an error naming the flag, the URL and
// what was wrong. A token system that refuses connections is only a
// warning: it may come up after this server.
func tokenSystem(ctx context.Context, o options, getenv func(string) string, logger *slog.Logger) (*tokens.Cache, error) {
	secret := getenv("WSAUTH_CLIENT_SECRET")
	ts, err := discover(ctx, o, secret, logger)
	if err != nil {
		return nil, err
	}
	var v *tokens.JWTVerifier
	if ts.jwksURL != "" {
		if v, err = jwtVerifier(ctx, o, ts, logger); err != nil {
			return nil, err
		}
	}
	var in *tokens.Introspector
	if ts.introspectURL != "" {
		if in, err = introspector(ctx, o, ts, secret, logger); err != nil {
			return nil, err
		}
	}
	logTokenKinds(logger, o, ts, v != nil, in != nil)
	kinds := &tokens.Kinds{JWT: v, Introspector: in}
	return tokens.NewCache(kinds, tokens.CacheConfig{TTL: offIfZero(o.cacheTTL), Recheck: kinds.Recheck}), nil
}

// endpoints are the token system's URLs, each with where it came from (a
// flag, or discovery), for the messages that name it.
type endpoints struct {
	jwksURL, jwksFrom             string
	introspectURL, introspectFrom string
}

// discover finds the token system's endpoints: the flags', and for
// -issuer without -jwks-url, discovery's.
func discover(ctx context.Context, o options, secret string, logger *slog.Logger) (endpoints, error) {
	ts := endpoints{jwksURL: o.jwksURL, jwksFrom: "-jwks-url", introspectURL: o.introspectURL, introspectFrom: "-introspect-url"}
	switch {
	case o.jwksURL != "" && o.issuer == "":
		return ts, fmt.Errorf("-jwks-url %s needs -issuer: the \"iss\" every token must carry", o.jwksURL)
	case o.issuer != "" && o.jwksURL == "":
		md, err := tokens.Discover(ctx, nil, o.issuer)
		if err != nil {
			return ts, fmt.Errorf("-issuer: %w", err)
		}
		ts.jwksURL, ts.jwksFrom = md.JWKSURI, "-issuer (jwks_uri of "+md.URL+")"
		switch {
		case ts.introspectURL != "" || md.IntrospectionEndpoint == "":
		case secret != "" || o.introspectAuth == tokens.AuthNone || ts.jwksURL == "":
			ts.introspectURL, ts.introspectFrom = md.IntrospectionEndpoint, "-issuer (introspection_endpoint of "+md.URL+")"
		default:
			logger.Warn("the issuer's introspection endpoint is not used: no client secret in $WSAUTH_CLIENT_SECRET "+
				"(set it, or -introspect-auth none, to introspect)", "introspection_endpoint", md.IntrospectionEndpoint)
		}
	}
	return ts, nil
}

// jwtVerifier is the verifier of JWTs against ts's JWK set, which it
// fetches once: a set that cannot be used is an error, one that refuses
// connections a warning.
func jwtVerifier(ctx context.Context, o options, ts endpoints, logger *slog.Logger) (*tokens.JWTVerifier, error) {
	if o.audience == "" && len(o.clientIDs) == 0 {
		return nil, fmt.Errorf("-audience is required: JWTs are verified against the JWK set %s (from %s), and without an audience "+
			"a token the issuer made for any other API would be accepted; give this API's identifier at the issuer "+
			"(or -allowed-client-ids, for an issuer whose access tokens carry no \"aud\")", ts.jwksURL, ts.jwksFrom)
	}
	v, err := tokens.NewJWTVerifier(tokens.JWTConfig{
		JWKSURL: ts.jwksURL, Issuer: o.issuer, Audience: o.audience, AllowedClientIDs: o.clientIDs,
		Algorithms: o.jwtAlgs, Types: o.jwtTypes, Leeway: offIfZero(o.clockSkew),
	})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", ts.jwksFrom, err)
	}
	if err := v.FetchKeys(ctx); errors.Is(err, tokens.ErrUnreachable) {
		logger.Warn("the JWK set cannot be fetched yet: connection refused; JWTs are answered 503 until it can be",
			"jwks_url", ts.jwksURL, "cause", err.Error())
	} else if err != nil {
		return nil, fmt.Errorf("%s: the JWK set cannot be used: %s", ts.jwksFrom, strings.TrimPrefix(err.Error(), tokens.ErrUnavailable.Error()+": "))
	}
	return v, nil
}

// introspector is the client of ts's introspection endpoint, which it
// probes once: an endpoint that answers wrongly is an error, one that
// cannot be reached a warning.
func introspector(ctx context.Context, o options, ts endpoints, secret string, logger *slog.Logger) (*tokens.Introspector, error) {
	if secret == "" && o.introspectAuth != tokens.AuthNone {
		return nil, fmt.Errorf("%s %s needs the client secret in $WSAUTH_CLIENT_SECRET "+
			"(or -introspect-auth none, for an endpoint that asks for no client authentication)", ts.introspectFrom, ts.introspectURL)
	}
	in := &tokens.Introspector{
		URL: ts.introspectURL, ClientID: o.clientID, ClientSecret: secret, AuthMethod: o.introspectAuth,
		Issuer: o.issuer, Audience: o.audience, AllowedClientIDs: o.clientIDs,
	}
	if o.introspectAuth == tokens.AuthNone {
		logger.Warn("-introspect-auth none: introspection requests carry no client credentials; "+
			"the endpoint must be reachable by this server alone (an admin port, a private network)", "introspect_url", ts.introspectURL)
	}
	if err := in.Probe(ctx); errors.Is(err, tokens.ErrUnreachable) {
		logger.Warn("the introspection endpoint cannot be reached yet; tokens it must validate are answered 503 until it can be",
			"cause", err.Error())
	} else if err != nil {
		return nil, fmt.Errorf("%s: %w", ts.introspectFrom, err)
	}
	return in, nil
}

// logTokenKinds says how tokens will be validated and, with JWTs only,
// that revocation then waits for expiry.
func logTokenKinds(logger *slog.Logger, o options, ts endpoints, jwt, introspect bool) {
	switch {
	case jwt && introspect:
		logger.Info("token kinds: JWTs are verified locally against the JWK set, with no call to the token system; "+
			"other tokens are introspected. Rechecks of open WebSockets introspect every token, JWTs included, "+
			"so a revoked JWT's sockets close at the next recheck; new requests with it are refused once a recheck here "+
			"has seen the revocation, and accepted until its exp otherwise",
			"jwks_url", ts.jwksURL, "introspect_url", ts.introspectURL, "recheck", o.recheck)
	case jwt:
		logger.Warn("token kinds: JWTs only, verified locally against the JWK set; tokens that are not JWTs are refused. "+
			"With no introspection endpoint, revocation waits for expiry: a revoked token is accepted, "+
			"and its open WebSockets stay open, until its exp. -recheck only verifies open WebSockets' tokens again "+
			"(one whose key left the JWK set closes with 3000); short token lifetimes bound the rest",
			"jwks_url", ts.jwksURL, "recheck", o.recheck)
	default:
		logger.Info("token kinds: every token is introspected", "introspect_url", ts.introspectURL, "recheck", o.recheck)
	}
}
