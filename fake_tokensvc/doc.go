// Package faketokensvc is an in-memory fake of an external OAuth 2.0 token
// introspection service (RFC 7662), for tests (in-process under httptest), the
// demo server (embedded) and ports of this project (standalone, as
// cmd/fake-tokensvc).
//
// [Service.Handler] serves:
//
//	POST /introspect    RFC 7662 §2: form body token=…, HTTP Basic client auth
//	POST /admin/tokens  {"sub","scope","ttl_seconds"} → 201 {"token","exp"}; ttl_seconds defaults to 3600
//	POST /admin/revoke  {"token"} → 204
//	PUT  /admin/scope   {"token","scope"} → 204, or 404 for an unknown token
//	GET  /admin/faults  the current [Faults] as {"latency_ms","status","garbage","hang_up"}
//	PUT  /admin/faults  the same JSON → 204
//	GET  /admin/stats   {"introspections":N}
//	GET  /healthz       {"status":"ok"}
//
// An active token's answer carries sub, scope (space-separated; omitted when
// the token has none, as RFC 7662 §2.2 allows), exp, iat, client_id and
// token_type; any other token's is just {"active":false}. The admin endpoints
// take JSON and refuse unknown fields.
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
