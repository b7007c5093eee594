package tokens

import (
	"context"
	"fmt"
)

// Kinds validates each token the way the token systems configured allow:
//
//   - with a JWT verifier, a token shaped like a JWT (IsJWT) is verified
//     locally, with no call to the token system; any other token goes to
//     the introspector, or is invalid if there is none;
//   - with only an introspector, every token is introspected, JWT-shaped
//     ones included, as many deployments that introspect their JWTs want.
//
// Its Recheck is what rechecks of open connections should ask (give it to
// CacheConfig.Recheck): the introspector if there is one, so that a
// revoked JWT closes its socket at the next recheck; otherwise the JWT
// verifier again, so that a token whose key left the JWK set does.
type Kinds struct {
	JWT          *JWTVerifier  // nil: no local verification
	Introspector *Introspector // nil: no introspection
}

var errNotJWT = fmt.Errorf("%w: not a JWT, and no introspection endpoint is configured", ErrInvalid)

// Validate validates token by its kind, as the type's doc says.
func (k *Kinds) Validate(ctx context.Context, token string) (Principal, error) {
	switch {
	case k.JWT != nil && IsJWT(token):
		return k.JWT.Validate(ctx, token)
	case k.Introspector != nil:
		return k.Introspector.Validate(ctx, token)
	default:
		if err := CheckFormat(token); err != nil {
			return Principal{}, err
		}
		return Principal{}, errNotJWT
	}
}

// Recheck validates token again for an open connection: by introspection
// when an introspector is configured, whatever the token's kind, since only
// the token system knows of a revocation; by local verification otherwise.
func (k *Kinds) Recheck(ctx context.Context, token string) (Principal, error) {
	if k.Introspector != nil {
		return k.Introspector.Validate(ctx, token)
	}
	return k.Validate(ctx, token)
}
