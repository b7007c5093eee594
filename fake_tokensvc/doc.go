// Package faketokensvc is an in-memory fake of an external OAuth 2.0 token
// system, for tests (in-process under httptest), the demo server (embedded)
// and ports of this project (standalone, as cmd/fake-tokensvc). It plays a
// real provider to a resource server: token introspection (RFC 7662), JWT
// access tokens (RFC 9068) signed with RS256, PS256, ES256 or EdDSA, the JWK
// set (RFC 7517) that verifies them, with key rotation, and a discovery
// document (OpenID Connect Discovery 1.0, RFC 8414). Beside access tokens
// it issues refresh tokens and OpenID Connect ID tokens, so that tests can
// show that neither is taken for an access token.
//
// [Service.Handler] serves:
//
//	POST /introspect    RFC 7662 §2: form body token=…; client auth by HTTP Basic (client_secret_basic)
//	                    or client_id and client_secret in the form (client_secret_post)
//	POST /admin/tokens  {"sub","scope","ttl_seconds"} → 201 {"token","exp"}; ttl_seconds defaults to 3600;
//	                    optional "kind" (access_token, refresh_token, id_token), "format" (opaque, jwt),
//	                    "alg" (RS256, PS256, ES256, EdDSA) and "aud"
//	POST /admin/revoke  {"token"} → 204
//	PUT  /admin/scope   {"token","scope"} → 204, or 404 for an unknown token
//	GET  /admin/faults  the current [Faults] as {"latency_ms","status","garbage","hang_up"}
//	PUT  /admin/faults  the same JSON → 204
//	GET  /admin/stats   {"introspections":N}
//	GET  /healthz       {"status":"ok"}
//	POST /admin/rotate-keys  optional {"grace_seconds"} → 200 {"kids":{alg: kid}}
//	GET  /.well-known/jwks.json                   the JWK set, Cache-Control max-age (Options.JWKSMaxAge)
//	GET  /.well-known/openid-configuration        {"issuer","jwks_uri","introspection_endpoint",…}
//	GET  /.well-known/oauth-authorization-server  the same document
//
// An active token's answer carries sub, scope (space-separated; omitted when
// the token has none, as RFC 7662 §2.2 allows), exp, iat, client_id and
// token_type; a JWT's, or a token issued with an audience, also iss and aud;
// a refresh or ID token's also token_use (refresh_token, id_token), as Ory
// Hydra says. Any other token's answer is just {"active":false}. The admin
// endpoints take JSON and refuse unknown fields. Faults apply to
// /introspect only.
//
// Every error is JSON {"error":…,"error_description":…}. A path it does not
// serve is a 404 naming the method and path, and a known path with the wrong
// method a 405 with Allow, so that a wrong URL in a client is obvious.
//
// Warning: the admin API has no authentication. Anyone who can reach it can
// mint a token for any subject and scope, or make introspection fail. It is a
// test fake: bind it to loopback.
//
// The package imports nothing from the rest of wsauth, so it shares no code,
// and no bugs, with the client it tests.
package faketokensvc
