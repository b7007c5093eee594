package tokens

import (
	"container/list"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"sync"
	"time"
)

// Defaults for a CacheConfig's zero fields.
const (
	DefaultCacheTTL        = 30 * time.Second
	DefaultCacheInvalidTTL = 5 * time.Second
	DefaultCacheMaxEntries = 100_000
)

// CacheConfig tunes a Cache. A zero field means its default (the
// constants above); a negative TTL or InvalidTTL means "off".
type CacheConfig struct {
	// TTL bounds how long a valid answer is reused; a token's own expiry
	// ends it sooner. It is also how long a revocation can go unnoticed by
	// new requests, so keep it short. Zero means DefaultCacheTTL (30s);
	// negative means valid answers are not reused at all (concurrent
	// validations of one token still share one call).
	TTL time.Duration
	// InvalidTTL is how long an invalid answer is reused, so that a flood of
	// one bad token does not become a flood of calls to the token system.
	// Zero means DefaultCacheInvalidTTL (5s); negative means invalid answers
	// are not reused.
	InvalidTTL time.Duration
	// MaxEntries bounds the entries kept; past it the oldest go first.
	// Zero means DefaultCacheMaxEntries (100,000). It has no "off": NewCache
	// panics on a negative value (turn caching off with TTL and InvalidTTL).
	MaxEntries int
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Recheck, if set, is what Refresh asks instead of the validator the
	// cache is in front of. Kinds.Recheck is made for it: with JWTs and
	// introspection both configured, requests verify JWTs locally while
	// rechecks of open connections introspect them, so that a revocation
	// is seen. Nil means Refresh asks the same validator as Validate.
	Recheck func(ctx context.Context, token string) (Principal, error)
}

// Cache is a Validator that remembers the answers of another. Valid answers
// are kept until the earlier of the token's expiry and TTL, invalid ones for
// InvalidTTL, and unavailable ones never. Concurrent validations of one token
// share a single call. Entries are keyed by HMAC-SHA-256 of the token under a
// random per-process key, so the cache holds no token a memory dump could
// replay (the Kubernetes webhook token authenticator does the same).
type Cache struct {
	next Validator
	cfg  CacheConfig

	hashers sync.Pool // of *hasher: HMAC under the per-process key

	mu       sync.Mutex
	entries  map[key]*list.Element // of *entry
	order    *list.List            // insertion order, oldest first
	inflight map[flight]*call
}

type key [sha256.Size]byte

// flight names a call in flight. A refresh that asks cfg.Recheck must not
// join a validation in flight, nor the reverse: they ask different
// questions (is the token revoked; is its signature good).
type flight struct {
	key     key
	recheck bool
}

type entry struct {
	key   key
	p     Principal
	err   error
	until time.Time
}

// call is one validation in flight, shared by everyone asking meanwhile.
type call struct {
	done chan struct{}
	p    Principal
	err  error
}

// NewCache returns a Cache in front of next. It panics if cfg.MaxEntries
// is negative.
func NewCache(next Validator, cfg CacheConfig) *Cache {
	if cfg.TTL == 0 {
		cfg.TTL = DefaultCacheTTL
	}
	if cfg.InvalidTTL == 0 {
		cfg.InvalidTTL = DefaultCacheInvalidTTL
	}
	switch {
	case cfg.MaxEntries == 0:
		cfg.MaxEntries = DefaultCacheMaxEntries
	case cfg.MaxEntries < 0:
		panic("tokens: CacheConfig.MaxEntries is negative; it has no \"off\" (zero means the default)")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	secret := make([]byte, 32)
	rand.Read(secret) // never fails (crypto/rand, Go 1.24+)
	c := &Cache{
		next:     next,
		cfg:      cfg,
		entries:  make(map[key]*list.Element),
		order:    list.New(),
		inflight: make(map[flight]*call),
	}
	c.hashers.New = func() any { return &hasher{mac: hmac.New(sha256.New, secret)} }
	return c
}

// hasher is an HMAC with scratch space, so that keying a token costs no
// allocation: Write needs the token as []byte and Sum an output slice, and
// both would otherwise escape to the heap on every request.
type hasher struct {
	mac hash.Hash
	in  []byte
	sum []byte
}

// Validate returns the remembered answer for token, or asks the next
// validator once however many callers ask at the same time.
func (c *Cache) Validate(ctx context.Context, token string) (Principal, error) {
	return c.validate(ctx, token, false)
}

// Refresh asks the next validator (or CacheConfig.Recheck, if set) about
// token even when an answer is remembered, and remembers the new one.
// Concurrent refreshes and validations of one token still share a single
// call, unless Recheck is set: then refreshes share one call and
// validations another. Rechecks of open connections use it, so that a
// revocation is seen at the next recheck whatever the TTL.
func (c *Cache) Refresh(ctx context.Context, token string) (Principal, error) {
	return c.validate(ctx, token, true)
}

// Len reports how many answers the cache holds.
func (c *Cache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries)
}

func (c *Cache) validate(ctx context.Context, token string, fresh bool) (Principal, error) {
	if err := CheckFormat(token); err != nil {
		return Principal{}, err
	}
	k := c.key(token)
	f := flight{key: k, recheck: fresh && c.cfg.Recheck != nil}

	c.mu.Lock()
	if !fresh {
		if el, ok := c.entries[k]; ok {
			e := el.Value.(*entry)
			if c.cfg.Now().Before(e.until) {
				c.mu.Unlock()
				return e.p, e.err
			}
			c.remove(el)
		}
	}
	if cl, ok := c.inflight[f]; ok {
		c.mu.Unlock()
		select {
		case <-cl.done:
			return cl.p, cl.err
		case <-ctx.Done():
			return Principal{}, fmt.Errorf("%w: %w", ErrUnavailable, ctx.Err())
		}
	}
	cl := &call{done: make(chan struct{})}
	c.inflight[f] = cl
	c.mu.Unlock()

	defer func() {
		// Runs even if next panics, so that no waiter blocks forever.
		c.mu.Lock()
		delete(c.inflight, f)
		c.store(k, cl.p, cl.err)
		c.mu.Unlock()
		close(cl.done)
	}()
	cl.err = errPanicked
	// Detached from the caller's cancellation: others may be waiting on this
	// call. The next validator bounds it (Introspector.Timeout).
	if f.recheck {
		cl.p, cl.err = c.cfg.Recheck(context.WithoutCancel(ctx), token)
	} else {
		cl.p, cl.err = c.next.Validate(context.WithoutCancel(ctx), token)
	}
	return cl.p, cl.err
}

var errPanicked = fmt.Errorf("%w: validator panicked", ErrUnavailable)

// store remembers an answer; c.mu must be held.
func (c *Cache) store(k key, p Principal, err error) {
	now := c.cfg.Now()
	var until time.Time
	switch {
	case err == nil:
		until = now.Add(c.cfg.TTL)
		if !p.Expiry.IsZero() && p.Expiry.Before(until) {
			until = p.Expiry
		}
	case errors.Is(err, ErrInvalid):
		until = now.Add(c.cfg.InvalidTTL)
	default:
		// Unavailable is never remembered. An answer remembered before
		// stays: it is as good as the TTL it was given.
		return
	}
	if el, ok := c.entries[k]; ok {
		c.remove(el) // the new answer replaces it, or, if off, outdates it
	}
	if !until.After(now) {
		return // reuse is off (negative TTL), or the token expires now
	}
	c.entries[k] = c.order.PushBack(&entry{key: k, p: p, err: err, until: until})
	for len(c.entries) > c.cfg.MaxEntries {
		c.remove(c.order.Front())
	}
}

func (c *Cache) remove(el *list.Element) {
	delete(c.entries, el.Value.(*entry).key)
	c.order.Remove(el)
}

func (c *Cache) key(token string) key {
	h := c.hashers.Get().(*hasher)
	h.mac.Reset()
	h.in = append(h.in[:0], token...)
	h.mac.Write(h.in)
	h.sum = h.mac.Sum(h.sum[:0])
	var k key
	copy(k[:], h.sum)
	clear(h.in) // the pool keeps no token
	c.hashers.Put(h)
	return k
}
