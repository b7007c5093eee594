package tokens

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"sync"
	"time"
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
//
// # Revocations seen by rechecks
//
// Local verification cannot see a revocation. With both configured, when
// a recheck's introspection says a JWT is no longer valid while its
// signature and claims still verify, Kinds remembers it until the token's
// "exp" and refuses it from then on, so that the token opens no new
// connection or request either: it would otherwise be refused only while
// a cache remembers the recheck's answer (CacheConfig.InvalidTTL), then
// verify again until it expires. This is what one process learns from its
// own rechecks: a revoked JWT that no open connection of this process
// carries is not rechecked here, and stays valid for new requests until
// it expires (docs/TOKEN-SYSTEMS.md). At most MaxRevoked tokens are
// remembered, by SHA-256 of the token. A Kinds must not be copied after
// first use.
type Kinds struct {
	JWT          *JWTVerifier  // nil: no local verification
	Introspector *Introspector // nil: no introspection
	// MaxRevoked bounds the revoked JWTs remembered; past it, those that
	// expire soonest are forgotten. Zero means DefaultMaxRevoked; negative
	// means none is remembered.
	MaxRevoked int

	mu      sync.Mutex
	revoked map[[sha256.Size]byte]time.Time // SHA-256 of a token → its "exp"
}

// DefaultMaxRevoked is Kinds.MaxRevoked's default: about 8 MB when full.
const DefaultMaxRevoked = 100_000

var (
	errNotJWT     = fmt.Errorf("%w: not a JWT, and no introspection endpoint is configured", ErrInvalid)
	errJWTRevoked = fmt.Errorf("%w: a recheck found this JWT revoked", ErrInvalid)
)

// Validate validates token by its kind, as the type's doc says.
func (k *Kinds) Validate(ctx context.Context, token string) (Principal, error) {
	switch {
	case k.JWT != nil && IsJWT(token):
		if k.isRevoked(token) {
			return Principal{}, errJWTRevoked
		}
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
// A JWT the introspector refuses but that still verifies is remembered as
// revoked (see the type's doc).
func (k *Kinds) Recheck(ctx context.Context, token string) (Principal, error) {
	if k.Introspector == nil {
		return k.Validate(ctx, token)
	}
	p, err := k.Introspector.Validate(ctx, token)
	if errors.Is(err, ErrInvalid) && k.JWT != nil && k.MaxRevoked >= 0 && IsJWT(token) {
		if lp, lerr := k.JWT.Validate(ctx, token); lerr == nil {
			k.remember(token, lp.Expiry)
		}
	}
	return p, err
}

func (k *Kinds) isRevoked(token string) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	if len(k.revoked) == 0 {
		return false
	}
	h := sha256.Sum256([]byte(token))
	exp, ok := k.revoked[h]
	if ok && !k.JWT.cfg.Now().Before(exp) {
		delete(k.revoked, h) // expired: local verification refuses it now
		return false
	}
	return ok
}

// remember records token as revoked until exp, forgetting expired tokens,
// then those that expire soonest, to stay within MaxRevoked.
func (k *Kinds) remember(token string, exp time.Time) {
	limit := k.MaxRevoked
	if limit == 0 {
		limit = DefaultMaxRevoked
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.revoked == nil {
		k.revoked = make(map[[sha256.Size]byte]time.Time)
	}
	if len(k.revoked) >= limit {
		now := k.JWT.cfg.Now()
		for h, e := range k.revoked {
			if !now.Before(e) {
				delete(k.revoked, h)
			}
		}
	}
	for len(k.revoked) >= limit {
		var soonest [sha256.Size]byte
		var soonestExp time.Time
		for h, e := range k.revoked {
			if soonestExp.IsZero() || e.Before(soonestExp) {
				soonest, soonestExp = h, e
			}
		}
		delete(k.revoked, soonest)
	}
	k.revoked[sha256.Sum256([]byte(token))] = exp
}
