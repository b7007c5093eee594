package tokens

import (
	"cmp"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha256"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"slices"
	"strings"
	"syscall"
	"time"
)

// Defaults and bounds of a JWTConfig.
const (
	// DefaultLeeway is how far in the future "iat" and "nbf" may be, for
	// an issuer whose clock is ahead of this server's. MaxLeeway bounds it
	// (RFC 7519 §4.1.5 asks for a "small" leeway).
	DefaultLeeway = 30 * time.Second
	MaxLeeway     = 60 * time.Second

	DefaultMaxJWKSBytes = 256 << 10
	DefaultMaxJWKSKeys  = 100

	// MaxJWTHeaderBytes bounds a JWT's decoded header; the whole token is
	// bounded by MaxTokenLen.
	MaxJWTHeaderBytes = 1 << 10
)

// DefaultTypes is the "typ" allow-list of a JWTConfig whose Types is nil.
// RFC 9068 §2.1 asks for "at+jwt", but several major providers send "JWT"
// or no "typ" at all (which RFC 7519 §5.1 makes the same), so the default
// takes both; list only "at+jwt" to require RFC 9068 tokens.
var DefaultTypes = []string{"at+jwt", "application/at+jwt", "JWT"}

// JWTConfig configures a JWTVerifier. Zero fields take the defaults above.
type JWTConfig struct {
	// JWKSURL is where the issuer publishes its keys (RFC 7517 JWK set);
	// discovery gives it as "jwks_uri". Required.
	JWKSURL string
	// Issuer is the "iss" every token must carry, compared exactly.
	// Required.
	Issuer string
	// Audience is a value the token's "aud" must contain: this API's
	// identifier at the issuer. AllowedClientIDs is for issuers that put
	// no "aud" in access tokens: the token's "client_id" must be one of
	// them. At least one is required. With both, a token with an "aud"
	// must contain Audience in it, and one without must have an allowed
	// "client_id": a token for another API is refused whichever client
	// asked for it.
	Audience         string
	AllowedClientIDs []string

	// Algorithms is the allow-list of signature algorithms, among RS256,
	// PS256, ES256 and EdDSA; nil means DefaultAlgorithms. A key whose JWK
	// names no "alg" is taken for the first algorithm listed for its key
	// type.
	Algorithms []string
	// Types lists the accepted "typ" header values, compared as RFC 7515
	// §4.1.9 says (case-insensitively, "application/" optional); nil means
	// DefaultTypes. A token without "typ" passes only if "JWT" is listed.
	Types []string
	// Leeway forgives "iat" and "nbf" this far in the future: 0 means
	// DefaultLeeway, a negative value none, and more than MaxLeeway is an
	// error. It never extends "exp": a token is refused from its expiry
	// on, as the server closes its sockets then.
	Leeway time.Duration

	HTTPClient   *http.Client     // nil means a shared client that reuses connections and follows no redirect
	Timeout      time.Duration    // per JWK set fetch; 0 means DefaultTimeout
	MaxJWKSBytes int64            // 0 means DefaultMaxJWKSBytes
	MaxJWKSKeys  int              // 0 means DefaultMaxJWKSKeys
	Now          func() time.Time // nil means time.Now
}

// JWTVerifier validates JWT access tokens (RFC 9068) locally: a JWS
// (RFC 7515) signed by a key of the issuer's JWK set, with claims
// (RFC 7519) that make it an access token for this API. It follows the
// JWT best current practices of RFC 8725. It is safe for concurrent use.
type JWTVerifier struct {
	cfg  JWTConfig
	keys *keySet
}

// NewJWTVerifier checks cfg and returns a verifier for it. It fetches
// nothing: call FetchKeys at start, or the first token fetches the keys.
func NewJWTVerifier(cfg JWTConfig) (*JWTVerifier, error) {
	if cfg.JWKSURL == "" {
		return nil, errors.New("a JWT verifier needs the URL of the issuer's JWK set")
	}
	if cfg.Issuer == "" {
		return nil, errors.New("a JWT verifier needs the issuer its tokens must name")
	}
	if cfg.Audience == "" && len(cfg.AllowedClientIDs) == 0 {
		return nil, errors.New("a JWT verifier needs an audience or a list of allowed client ids: without one, a token issued for any other API would be accepted")
	}
	if cfg.Algorithms == nil {
		cfg.Algorithms = DefaultAlgorithms
	}
	if len(cfg.Algorithms) == 0 {
		return nil, errors.New("the list of JWT algorithms is empty")
	}
	for _, alg := range cfg.Algorithms {
		if keyTypeOf[alg] == "" {
			return nil, fmt.Errorf("JWT algorithm %q is not supported; use %s", alg, strings.Join(DefaultAlgorithms, ", "))
		}
	}
	if cfg.Types == nil {
		cfg.Types = DefaultTypes
	}
	if len(cfg.Types) == 0 {
		return nil, errors.New("the list of JWT types is empty")
	}
	switch {
	case cfg.Leeway == 0:
		cfg.Leeway = DefaultLeeway
	case cfg.Leeway < 0:
		cfg.Leeway = 0
	case cfg.Leeway > MaxLeeway:
		return nil, fmt.Errorf("a clock leeway of %v is more than the %v allowed", cfg.Leeway, MaxLeeway)
	}
	cfg.HTTPClient = cmp.Or(cfg.HTTPClient, defaultClient)
	cfg.Timeout = cmp.Or(cfg.Timeout, DefaultTimeout)
	cfg.MaxJWKSBytes = cmp.Or(cfg.MaxJWKSBytes, DefaultMaxJWKSBytes)
	cfg.MaxJWKSKeys = cmp.Or(cfg.MaxJWKSKeys, DefaultMaxJWKSKeys)
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &JWTVerifier{cfg: cfg, keys: &keySet{
		url:      cfg.JWKSURL,
		client:   cfg.HTTPClient,
		timeout:  cfg.Timeout,
		maxBytes: cfg.MaxJWKSBytes,
		maxKeys:  cfg.MaxJWKSKeys,
		allowed:  cfg.Algorithms,
		now:      cfg.Now,
	}}, nil
}

// FetchKeys fetches the JWK set now and reports why it failed, if it did:
// the URL cannot be reached, answers other than 200, or holds no key this
// verifier can use. An error that wraps ErrUnreachable (connection
// refused) may be only a token system that is not up yet. Call it at
// start; afterwards the set refreshes itself.
func (v *JWTVerifier) FetchKeys(ctx context.Context) error {
	err := v.keys.fetch(ctx)
	if errors.Is(err, syscall.ECONNREFUSED) {
		return fmt.Errorf("%w: %w", ErrUnreachable, err)
	}
	return err
}

// IsJWT reports whether token has the shape of a JWS in compact
// serialization (RFC 7515 §7.1): three parts separated by two dots. An
// encrypted JWT (five parts) or an opaque token is not one.
func IsJWT(token string) bool {
	return strings.Count(token, ".") == 2
}

// Reasons a JWT is refused, allocated once: they are answers to clients,
// not accidents.
var (
	errJWTShape     = fmt.Errorf("%w: not a JWS in compact serialization", ErrInvalid)
	errJWTEncoding  = fmt.Errorf("%w: JWT part not base64url without padding", ErrInvalid)
	errJWTHeaderBig = fmt.Errorf("%w: JWT header larger than %d bytes", ErrInvalid, MaxJWTHeaderBytes)
	errJWTHeader    = fmt.Errorf("%w: JWT header not a JSON object with string alg and kid", ErrInvalid)
	errJWTAlg       = fmt.Errorf("%w: JWT alg not in the allow-list", ErrInvalid)
	errJWTCrit      = fmt.Errorf("%w: JWT header has crit, and no extension is understood", ErrInvalid)
	errJWTType      = fmt.Errorf("%w: JWT typ not accepted", ErrInvalid)
	errJWTKeyAlg    = fmt.Errorf("%w: JWT alg is not the algorithm of the key its kid names", ErrInvalid)
	errJWTSignature = fmt.Errorf("%w: JWT signature does not verify", ErrInvalid)
	errJWTClaims    = fmt.Errorf("%w: JWT claims not a JSON object with the claims' types", ErrInvalid)
	errJWTIssuer    = fmt.Errorf("%w: JWT iss is not the issuer", ErrInvalid)
	errJWTAudience  = fmt.Errorf("%w: JWT not for this audience or client", ErrInvalid)
	errJWTExpired   = fmt.Errorf("%w: JWT expired or without exp", ErrInvalid)
	errJWTNotYet    = fmt.Errorf("%w: JWT nbf or iat in the future", ErrInvalid)
	errJWTNoSubject = fmt.Errorf("%w: JWT without sub", ErrInvalid)
	errJWTIDToken   = fmt.Errorf("%w: an OpenID Connect ID token (nonce or at_hash), not an access token", ErrInvalid)
)

// Validate verifies token and returns whom it speaks for. Every refusal
// wraps ErrInvalid, except a token whose key cannot be had because the JWK
// set cannot be fetched: ErrUnavailable.
func (v *JWTVerifier) Validate(ctx context.Context, token string) (Principal, error) {
	if err := CheckFormat(token); err != nil {
		return Principal{}, err
	}
	// RFC 7515 §5.2: split, decode, check the header, find the key, verify,
	// and only then read the claims.
	if !IsJWT(token) {
		return Principal{}, errJWTShape
	}
	h64, rest, _ := strings.Cut(token, ".")
	p64, s64, _ := strings.Cut(rest, ".")
	if len(h64) > b64.EncodedLen(MaxJWTHeaderBytes) {
		return Principal{}, errJWTHeaderBig
	}
	header, err1 := b64.DecodeString(h64)
	payload, err2 := b64.DecodeString(p64)
	sig, err3 := b64.DecodeString(s64)
	if err1 != nil || err2 != nil || err3 != nil {
		return Principal{}, errJWTEncoding
	}
	alg, kid, err := v.checkHeader(header)
	if err != nil {
		return Principal{}, err
	}
	key, err := v.keys.key(ctx, kid)
	if err != nil {
		return Principal{}, err
	}
	if key.err != nil {
		return Principal{}, fmt.Errorf("%w: the key the token's kid names is refused: %w", ErrInvalid, key.err)
	}
	// RFC 8725 §3.1: the key decides the algorithm; the header must agree.
	if alg != key.alg {
		return Principal{}, errJWTKeyAlg
	}
	if !verifySignature(key, []byte(token[:len(h64)+1+len(p64)]), sig) {
		return Principal{}, errJWTSignature
	}
	return v.checkClaims(payload)
}

// checkHeader reads the JOSE header (RFC 7515 §4) and returns its alg and
// kid. "jku", "x5u", "jwk" and "x5c" would let the token choose its own key
// (RFC 8725 §3.10): they are never read. "crit" names extensions the token
// says must be understood; none is, so it is refused (RFC 7515 §4.1.11).
func (v *JWTVerifier) checkHeader(header []byte) (alg, kid string, err error) {
	h, err := parseObject(header)
	if err != nil {
		return "", "", errJWTHeader
	}
	alg, ok1 := jsonString(h["alg"])
	kid, ok2 := jsonString(h["kid"])
	if !ok1 || !ok2 || kid == "" {
		return "", "", errJWTHeader
	}
	// Refuses "none" and HS256 (RFC 8725 §2.1) before any key is looked
	// up: neither is ever in the allow-list.
	if !slices.Contains(v.cfg.Algorithms, alg) {
		return "", "", errJWTAlg
	}
	if _, present := h["crit"]; present {
		return "", "", errJWTCrit
	}
	typ := "JWT" // RFC 7519 §5.1: what no "typ" means
	if raw, present := h["typ"]; present {
		if typ, ok1 = jsonString(raw); !ok1 {
			return "", "", errJWTType
		}
	}
	if !slices.ContainsFunc(v.cfg.Types, func(t string) bool { return sameMediaType(t, typ) }) {
		return "", "", errJWTType
	}
	return alg, kid, nil
}

// sameMediaType compares two "typ" values as RFC 7515 §4.1.9 asks:
// case-insensitively, with "application/" optional.
func sameMediaType(a, b string) bool {
	trim := func(s string) string {
		if len(s) > len("application/") && strings.EqualFold(s[:len("application/")], "application/") {
			return s[len("application/"):]
		}
		return s
	}
	return strings.EqualFold(trim(a), trim(b))
}

// verifySignature checks sig over input with key, by the key's algorithm.
func verifySignature(key jwk, input, sig []byte) bool {
	digest := sha256.Sum256(input)
	switch key.alg {
	case RS256:
		return rsa.VerifyPKCS1v15(key.pub.(*rsa.PublicKey), crypto.SHA256, digest[:], sig) == nil
	case PS256:
		// RFC 7518 §3.5: the salt is as long as the hash; Go would
		// otherwise accept any salt length.
		opts := &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash, Hash: crypto.SHA256}
		return rsa.VerifyPSS(key.pub.(*rsa.PublicKey), crypto.SHA256, digest[:], sig, opts) == nil
	case ES256:
		// RFC 7518 §3.4: r‖s, 32 bytes each; an ASN.1 DER signature, as
		// crypto/ecdsa makes, is not a JWS signature.
		if len(sig) != 64 {
			return false
		}
		r, s := new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])
		return ecdsa.Verify(key.pub.(*ecdsa.PublicKey), digest[:], r, s)
	case EdDSA:
		return ed25519.Verify(key.pub.(ed25519.PublicKey), input, sig)
	}
	return false
}

// checkClaims reads the claims of a token whose signature verified, and
// returns its principal if they make it an access token for this API.
func (v *JWTVerifier) checkClaims(payload []byte) (Principal, error) {
	c, err := parseObject(payload)
	if err != nil {
		return Principal{}, errJWTClaims
	}
	iss, ok1 := optString(c, "iss")
	sub, ok2 := optString(c, "sub")
	clientID, ok3 := optString(c, "client_id")
	scope, ok4 := optString(c, "scope")
	typ, ok5 := optString(c, "typ")
	tokenUse, ok6 := optString(c, "token_use")
	if !ok1 || !ok2 || !ok3 || !ok4 || !ok5 || !ok6 {
		return Principal{}, errJWTClaims
	}
	// OpenID Connect Core §2 and §3.1.3.6: only ID tokens carry these.
	// An ID token's "aud" is a client, not this API; refusing it by these
	// claims too says plainly what it is.
	_, nonce := c["nonce"]
	_, atHash := c["at_hash"]
	if nonce || atHash {
		return Principal{}, errJWTIDToken
	}
	if err := checkTokenUse(typ, tokenUse); err != nil {
		return Principal{}, err
	}
	if iss != v.cfg.Issuer {
		return Principal{}, errJWTIssuer
	}
	var aud []string
	rawAud, hasAud := c["aud"]
	if hasAud {
		if aud, ok1 = stringOrList(rawAud); !ok1 {
			return Principal{}, errJWTClaims
		}
	}
	if !audienceOK(v.cfg.Audience, v.cfg.AllowedClientIDs, aud, hasAud, clientID) {
		return Principal{}, errJWTAudience
	}
	now := v.cfg.Now()
	exp, ok := numericDate(c["exp"])
	if !ok || !now.Before(exp) {
		return Principal{}, errJWTExpired
	}
	for _, name := range []string{"nbf", "iat"} {
		if raw, present := c[name]; present {
			t, ok := numericDate(raw)
			if !ok {
				return Principal{}, errJWTClaims
			}
			if t.After(now.Add(v.cfg.Leeway)) {
				return Principal{}, errJWTNotYet
			}
		}
	}
	if sub == "" {
		return Principal{}, errJWTNoSubject
	}
	// RFC 9068 §2.2.3 (and RFC 8693 §4.2): "scope", space-separated.
	// Microsoft Entra ID sends "scp", space-separated; Okta "scp", an array.
	scopes := strings.Fields(scope)
	if raw, present := c["scp"]; present {
		scp, ok := stringOrList(raw)
		if !ok {
			return Principal{}, errJWTClaims
		}
		for _, s := range scp {
			scopes = append(scopes, strings.Fields(s)...)
		}
	}
	return Principal{Subject: sub, Scopes: scopes, Expiry: exp, ClientID: clientID}, nil
}

// audienceOK applies the audience rule of JWTConfig.Audience to a token's
// "aud" (hasAud: whether it has one) and "client_id". Introspection replies
// follow the same rule.
func audienceOK(audience string, clientIDs, aud []string, hasAud bool, clientID string) bool {
	if audience != "" && slices.Contains(aud, audience) {
		return true
	}
	return len(clientIDs) > 0 && (audience == "" || !hasAud) && clientID != "" && slices.Contains(clientIDs, clientID)
}

var errNotAccessToken = fmt.Errorf("%w: not an access token (its typ or token_use says so)", ErrInvalid)

// checkTokenUse refuses a token that says it is not an access token:
// Keycloak's "typ" claim names refresh, offline and ID tokens ("Refresh",
// "Offline", "ID"; access tokens say "Bearer"); Ory Hydra's introspection
// says "token_use": "refresh_token", and Amazon Cognito's tokens
// "token_use": "id". Both are optional.
func checkTokenUse(typ, tokenUse string) error {
	switch {
	case strings.EqualFold(typ, "Refresh"), strings.EqualFold(typ, "Offline"), strings.EqualFold(typ, "ID"):
		return errNotAccessToken
	case tokenUse != "" && tokenUse != "access_token" && tokenUse != "access":
		return errNotAccessToken
	}
	return nil
}
