package faketokensvc

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/big"
	"net/http"
	"slices"
	"strconv"
	"time"
)

// Algorithms are the JWS algorithms (RFC 7518 §3.1, RFC 8037) the service
// signs with, one key each.
var Algorithms = []string{"RS256", "PS256", "ES256", "EdDSA"}

// signingKey is one of the service's keys. A key is current until a
// rotation retires it; it is published for Options.KeyGrace after that, so
// that tokens it signed still verify, then dropped.
type signingKey struct {
	kid     string
	alg     string
	priv    crypto.Signer
	retired time.Time // zero while current
	grace   time.Duration
}

func newSigningKey(alg string) signingKey {
	var priv crypto.Signer
	var err error
	switch alg {
	case "RS256", "PS256":
		priv, err = rsa.GenerateKey(rand.Reader, 2048)
	case "ES256":
		priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case "EdDSA":
		_, priv, err = ed25519.GenerateKey(rand.Reader)
	}
	if err != nil {
		panic("faketokensvc: generating a key: " + err.Error()) // crypto/rand does not fail
	}
	var id [9]byte
	rand.Read(id[:])
	return signingKey{kid: base64.RawURLEncoding.EncodeToString(id[:]), alg: alg, priv: priv}
}

// keysLocked returns the keys, generated on first use: most users of the
// fake never ask for a JWT, and an RSA key takes a tenth of a second to
// make. s.keysMu must be held.
func (s *Service) keysLocked() []signingKey {
	if s.keys == nil {
		for _, alg := range Algorithms {
			s.keys = append(s.keys, newSigningKey(alg))
		}
	}
	now := s.opts.Now()
	s.keys = slices.DeleteFunc(s.keys, func(k signingKey) bool {
		return !k.retired.IsZero() && !now.Before(k.retired.Add(k.grace))
	})
	return s.keys
}

// currentKey returns the key that signs new tokens with alg.
func (s *Service) currentKey(alg string) (signingKey, error) {
	s.keysMu.Lock()
	defer s.keysMu.Unlock()
	for _, k := range s.keysLocked() {
		if k.alg == alg && k.retired.IsZero() {
			return k, nil
		}
	}
	return signingKey{}, fmt.Errorf("unknown algorithm %q: want one of %q", alg, Algorithms)
}

// KeyID returns the "kid" of the key that signs new tokens with alg, or ""
// for an algorithm the service does not have.
func (s *Service) KeyID(alg string) string {
	k, _ := s.currentKey(alg)
	return k.kid
}

// RotateKeys replaces every signing key with a new one. The old keys stay
// in the JWK set for grace, so that the tokens they signed still verify,
// then leave it; a grace of zero or less drops them at once.
func (s *Service) RotateKeys(grace time.Duration) {
	fresh := make([]signingKey, 0, len(Algorithms))
	for _, alg := range Algorithms {
		fresh = append(fresh, newSigningKey(alg)) // outside the lock: RSA is slow
	}
	s.keysMu.Lock()
	defer s.keysMu.Unlock()
	now := s.opts.Now()
	for i := range s.keysLocked() {
		if s.keys[i].retired.IsZero() {
			s.keys[i].retired, s.keys[i].grace = now, grace
		}
	}
	s.keys = append(s.keys, fresh...)
	s.keysLocked() // drops what a grace of zero retired
}

// JWKSFetches reports how many times the JWK set has been served.
func (s *Service) JWKSFetches() int64 { return s.jwksFetches.Load() }

// Sign signs header and payload, both raw JSON used exactly as given, with
// the current key for alg, and returns the JWS in compact serialization
// (RFC 7515 §7.1). It is for tests that need tokens no honest issuer
// makes; the header must name "alg" and "kid" (KeyID) itself.
func (s *Service) Sign(alg string, header, payload []byte) (string, error) {
	k, err := s.currentKey(alg)
	if err != nil {
		return "", err
	}
	return k.sign(header, payload)
}

// sign signs header and payload with k.
func (k signingKey) sign(header, payload []byte) (string, error) {
	var err error
	enc := base64.RawURLEncoding
	input := enc.EncodeToString(header) + "." + enc.EncodeToString(payload)
	digest := sha256.Sum256([]byte(input))
	var sig []byte
	switch k.alg {
	case "RS256":
		sig, err = rsa.SignPKCS1v15(nil, k.priv.(*rsa.PrivateKey), crypto.SHA256, digest[:])
	case "PS256":
		sig, err = rsa.SignPSS(rand.Reader, k.priv.(*rsa.PrivateKey), crypto.SHA256, digest[:],
			&rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash})
	case "ES256":
		// RFC 7518 §3.4: r‖s, each 32 bytes, not the DER of SignASN1.
		var r, ss *big.Int
		r, ss, err = ecdsa.Sign(rand.Reader, k.priv.(*ecdsa.PrivateKey), digest[:])
		if err == nil {
			sig = make([]byte, 64)
			r.FillBytes(sig[:32])
			ss.FillBytes(sig[32:])
		}
	case "EdDSA":
		sig = ed25519.Sign(k.priv.(ed25519.PrivateKey), []byte(input))
	}
	if err != nil {
		return "", err
	}
	return input + "." + enc.EncodeToString(sig), nil
}

// signJWT signs claims with the current key for alg, with header "typ".
// The key is looked up once, so that the header's kid names the key that
// signs even when RotateKeys runs meanwhile.
func (s *Service) signJWT(alg, typ string, claims map[string]any) (string, error) {
	k, err := s.currentKey(alg)
	if err != nil {
		return "", err
	}
	header, _ := json.Marshal(map[string]string{"alg": alg, "kid": k.kid, "typ": typ})
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", err
	}
	return k.sign(header, payload)
}

// jwkJSON is one public key of the JWK set (RFC 7517 §4, RFC 7518 §6,
// RFC 8037 §2).
type jwkJSON struct {
	Kty string `json:"kty"`
	Kid string `json:"kid"`
	Use string `json:"use"`
	Alg string `json:"alg"`
	Crv string `json:"crv,omitempty"`
	N   string `json:"n,omitempty"`
	E   string `json:"e,omitempty"`
	X   string `json:"x,omitempty"`
	Y   string `json:"y,omitempty"`
}

func (s *Service) handleJWKS(w http.ResponseWriter, r *http.Request) {
	s.jwksFetches.Add(1)
	s.keysMu.Lock()
	keys := slices.Clone(s.keysLocked())
	s.keysMu.Unlock()
	enc := base64.RawURLEncoding
	set := struct {
		Keys []jwkJSON `json:"keys"`
	}{Keys: []jwkJSON{}}
	for _, k := range keys {
		j := jwkJSON{Kid: k.kid, Use: "sig", Alg: k.alg}
		switch pub := k.priv.Public().(type) {
		case *rsa.PublicKey:
			j.Kty, j.N, j.E = "RSA", enc.EncodeToString(pub.N.Bytes()), enc.EncodeToString(big.NewInt(int64(pub.E)).Bytes())
		case *ecdsa.PublicKey:
			point, _ := pub.Bytes() // 0x04 ‖ x ‖ y
			j.Kty, j.Crv, j.X, j.Y = "EC", "P-256", enc.EncodeToString(point[1:33]), enc.EncodeToString(point[33:])
		case ed25519.PublicKey:
			j.Kty, j.Crv, j.X = "OKP", "Ed25519", enc.EncodeToString(pub)
		}
		set.Keys = append(set.Keys, j)
	}
	w.Header().Set("Content-Type", "application/jwk-set+json")
	if age := s.opts.JWKSMaxAge; age > 0 {
		w.Header().Set("Cache-Control", "public, max-age="+strconv.Itoa(int(age/time.Second)))
	} else {
		w.Header().Set("Cache-Control", "no-store")
	}
	json.NewEncoder(w).Encode(set)
}
