package tokens

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"slices"
)

// Signature algorithms (RFC 7518 §3.1, RFC 8037 §3.1) a JWTVerifier can
// accept. Each needs its own kind of key, so a key fixes its algorithm.
const (
	RS256 = "RS256" // RSASSA-PKCS1-v1_5 with SHA-256
	PS256 = "PS256" // RSASSA-PSS with SHA-256, salt as long as the hash
	ES256 = "ES256" // ECDSA on P-256 with SHA-256, signature r‖s
	EdDSA = "EdDSA" // Ed25519
)

// DefaultAlgorithms is the allow-list of a JWTConfig whose Algorithms is nil.
var DefaultAlgorithms = []string{RS256, PS256, ES256, EdDSA}

// keyTypeOf is the key type, "kty" plus "crv" where there is one, that each
// algorithm needs.
var keyTypeOf = map[string]string{RS256: "RSA", PS256: "RSA", ES256: "EC P-256", EdDSA: "OKP Ed25519"}

// Bounds on RSA keys. RFC 8725 §3.5 and NIST SP 800-131A: no less than 2048
// bits. The upper bound keeps one verification from costing a denial of
// service.
const (
	minRSABits = 2048
	maxRSABits = 8192
)

// b64 is base64url without padding, strict: RFC 7515 §2 allows no padding,
// and Strict refuses encodings whose unused trailing bits are not zero, so
// that every byte string has exactly one encoding.
var b64 = base64.RawURLEncoding.Strict()

// jwk is a verification key with the one algorithm it accepts, or, when err
// is set, a key the set names but this verifier refuses, and why: a token
// that names it is told the reason rather than "unknown key".
type jwk struct {
	alg string
	pub crypto.PublicKey // *rsa.PublicKey, *ecdsa.PublicKey or ed25519.PublicKey
	err error
}

// parseJWKSet decodes an RFC 7517 §5 JWK Set into its keys by "kid", each
// with one of the algorithms in allowed. Keys this verifier cannot or must
// not use (no "kid", another "use", a type or algorithm not allowed, weak or
// malformed) are kept as refused, with the reason; so is a "kid" that two
// usable keys share. A set that is not a JSON object with a "keys" array of
// objects, or has more than maxKeys keys, is an error.
func parseJWKSet(data []byte, allowed []string, maxKeys int) (map[string]jwk, error) {
	set, err := parseObject(data)
	if err != nil {
		return nil, fmt.Errorf("JWK set: %w", err)
	}
	var raws []json.RawMessage
	if keys, ok := set["keys"]; !ok || len(keys) == 0 || keys[0] != '[' || json.Unmarshal(keys, &raws) != nil {
		return nil, errors.New(`JWK set: no "keys" array`)
	}
	if len(raws) > maxKeys {
		return nil, fmt.Errorf("JWK set: %d keys; at most %d are accepted", len(raws), maxKeys)
	}
	keys := make(map[string]jwk)
	for i, raw := range raws {
		m, err := parseObject(raw)
		if err != nil {
			return nil, fmt.Errorf("JWK set: key %d: %w", i, err)
		}
		kid, _ := jsonString(m["kid"])
		if kid == "" {
			continue // no token can name it
		}
		k := parseJWK(m, allowed)
		// A usable key takes the place of an unusable one of its kid, but
		// a kid that two usable keys share stays refused, whatever follows.
		switch old, seen := keys[kid]; {
		case old.err == errSharedKid:
		case !seen || old.err != nil && k.err == nil:
			keys[kid] = k
		case old.err == nil && k.err == nil:
			keys[kid] = jwk{err: errSharedKid}
		}
	}
	return keys, nil
}

// errSharedKid marks a kid that two usable keys of a set share: which one
// signed a token cannot be told, so neither is used.
var errSharedKid = errors.New("two keys in the JWK set share this kid")

// parseJWK decodes one key of a set.
func parseJWK(m map[string]json.RawMessage, allowed []string) jwk {
	kty, ok1 := optString(m, "kty")
	crv, ok2 := optString(m, "crv")
	alg, ok3 := optString(m, "alg")
	use, ok4 := optString(m, "use")
	if !ok1 || !ok2 || !ok3 || !ok4 {
		return refused("a member that should be a string is not")
	}
	if use != "" && use != "sig" {
		return refused("the key's use is not sig")
	}
	if ops, present := m["key_ops"]; present {
		// RFC 7517 §4.3: a key for verifying says "verify".
		if list, ok := stringOrList(ops); !ok || ops[0] != '[' || !slices.Contains(list, "verify") {
			return refused(`the key's "key_ops" lacks "verify"`)
		}
	}
	keyType := kty
	if crv != "" {
		keyType += " " + crv
	}
	// RFC 8725 §3.1: the key, not the token, says which algorithm it is for.
	// A key without "alg" takes the first allowed algorithm for its type.
	if alg == "" {
		for _, a := range allowed {
			if keyTypeOf[a] == keyType {
				alg = a
				break
			}
		}
		if alg == "" {
			return refused("no allowed algorithm for a key of type " + keyType)
		}
	}
	if !slices.Contains(allowed, alg) {
		return refused("the key is for " + alg + ", which is not an allowed algorithm")
	}
	if keyTypeOf[alg] != keyType {
		return refused("the key is for " + alg + " but is of type " + keyType)
	}

	bytesOf := func(name string) ([]byte, bool) {
		s, ok := jsonString(m[name])
		if !ok {
			return nil, false
		}
		b, err := b64.DecodeString(s)
		return b, err == nil
	}
	switch kty {
	case "RSA":
		n, ok1 := bytesOf("n")
		e, ok2 := bytesOf("e")
		// Every real exponent is 65537, 3 bytes; a longer one is no key.
		if !ok1 || !ok2 || len(e) == 0 || len(e) > 4 {
			return refused(`RSA key without base64url "n" and "e"`)
		}
		pub := &rsa.PublicKey{N: new(big.Int).SetBytes(n)}
		for _, b := range e {
			pub.E = pub.E<<8 | int(b)
		}
		if bits := pub.N.BitLen(); bits < minRSABits || bits > maxRSABits {
			return refused(fmt.Sprintf("RSA key of %d bits; want %d to %d", bits, minRSABits, maxRSABits))
		}
		if pub.E < 3 || pub.E%2 == 0 {
			return refused("RSA exponent out of range")
		}
		return jwk{alg: alg, pub: pub}
	case "EC":
		x, ok1 := bytesOf("x")
		y, ok2 := bytesOf("y")
		// RFC 7518 §6.2.1.2: each coordinate is exactly the curve's size.
		if !ok1 || !ok2 || len(x) != 32 || len(y) != 32 {
			return refused(`P-256 key without 32-byte base64url "x" and "y"`)
		}
		// Refuses a point off the curve (the invalid-curve attack of
		// RFC 8725 §2.1) and the point at infinity.
		pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), append(append([]byte{4}, x...), y...))
		if err != nil {
			return refused("EC point not on P-256")
		}
		return jwk{alg: alg, pub: pub}
	default: // "OKP", RFC 8037 §2
		x, ok := bytesOf("x")
		if !ok || len(x) != ed25519.PublicKeySize {
			return refused(`Ed25519 key without 32-byte base64url "x"`)
		}
		return jwk{alg: alg, pub: ed25519.PublicKey(x)}
	}
}

func refused(reason string) jwk { return jwk{err: errors.New(reason)} }
