package server

import (
	"container/list"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"hash"
	"math"
	"net/netip"
	"sync"
	"time"
)

// throttle limits failed authentications, so that guessing tokens, or
// replaying a flood of bad ones, costs neither the token system nor the
// server much. Every failure takes one attempt from two token buckets: the
// client IP's and the presented token's (keyed by an HMAC of the token,
// never the token itself); an IPv6 client's failure also takes one from
// its /48's bucket (keys). When any of them is empty the request is
// answered 429 with Retry-After before the token system is asked. Buckets
// refill one attempt every Refill, up to Burst (a /48's, per48Burst times
// Burst).
//
// Policy for honest clients behind the same IP as an attacker (a NAT, a
// proxy): a token that authenticated successfully within goodFor skips the
// IP bucket, so a client that is already in is not locked out by its
// neighbours' failures. A token never seen valid waits for the IP bucket
// like any other; it refills at one attempt per Refill. Successes take
// nothing from any bucket.
//
// Memory is bounded: at most maxKeys buckets and maxKeys known-good tokens
// are kept, the least recently touched evicted first. Eviction can only
// forget failures (an attacker regains at most Burst attempts) or forget
// that a token was good (its client is judged by IP again): it never lets a
// request through unauthenticated, because the throttle only refuses.
type throttle struct {
	burst  float64
	refill time.Duration
	now    func() time.Time
	secret []byte
	// macs holds HMAC-SHA256 states keyed with secret: hmac.New costs two
	// SHA-256 states and the key schedule per request, Reset a copy.
	macs sync.Pool

	mu      sync.Mutex
	buckets *lru[bucket]
	good    *lru[time.Time] // token key → until when it skips the IP bucket
}

// goodFor is how long a successful token skips the IP bucket.
const goodFor = 10 * time.Minute

// bucket is a token bucket: tokens attempts left as of last.
type bucket struct {
	tokens float64
	last   time.Time
}

// newThrottle returns a throttle, or nil when burst is negative (off).
func newThrottle(burst int, refill time.Duration, maxKeys int, now func() time.Time) *throttle {
	if burst < 0 {
		return nil
	}
	secret := make([]byte, 32)
	rand.Read(secret) // never fails (crypto/rand, Go 1.24+)
	return &throttle{
		burst: float64(burst), refill: refill, now: now, secret: secret,
		buckets: newLRU[bucket](maxKeys), good: newLRU[time.Time](maxKeys),
	}
}

// throttleKeys names the buckets of one request: its client IP, for IPv6
// also its /48, and its token when it presented one.
type throttleKeys struct {
	ip, site, token string
}

// per48Burst is how many times Burst a /48's bucket holds.
//
// IPv6 addresses count per /64, since one host usually owns a whole /64 and
// could otherwise rotate through it. But a site is routed a /48, 65,536
// /64s: an attacker holding one would get a burst from each. So every /64
// also draws on its /48's bucket, which refills at the same rate as any
// other. Four bursts let a few subnets of one organisation fail at once
// (browsers retrying stale tokens after an outage) without throttling
// each other, while one /48 gets at most four bursts, not 65,536; and a
// token that authenticated recently skips the IP buckets altogether.
const per48Burst = 4

// keys returns the bucket keys for a request from ip presenting token
// ("" for none).
func (t *throttle) keys(ip, token string) throttleKeys {
	k := throttleKeys{ip: "ip " + ip}
	if a, err := netip.ParseAddr(ip); err == nil && a.Is6() && !a.Is4In6() {
		p64, _ := a.Prefix(64)
		p48, _ := a.Prefix(48)
		k.ip, k.site = "ip "+p64.String(), "ip "+p48.String()
	}
	if token != "" {
		m, _ := t.macs.Get().(hash.Hash)
		if m == nil {
			m = hmac.New(sha256.New, t.secret)
		}
		m.Write([]byte(token))
		var sum [sha256.Size]byte
		k.token = "tok " + string(m.Sum(sum[:0]))
		m.Reset()
		t.macs.Put(m)
	}
	return k
}

// wait reports how long a request with keys k must wait before it may try,
// zero when it may try now. It changes no bucket.
func (t *throttle) wait(k throttleKeys) time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	var d time.Duration
	if k.token != "" {
		if until, ok := t.good.get(k.token); ok && now.Before(*until) {
			return 0
		}
		d = t.waitLocked(k.token, now, t.burst)
	}
	d = max(d, t.waitLocked(k.ip, now, t.burst))
	if k.site != "" {
		d = max(d, t.waitLocked(k.site, now, per48Burst*t.burst))
	}
	return d
}

func (t *throttle) waitLocked(key string, now time.Time, burst float64) time.Duration {
	b, ok := t.buckets.get(key)
	if !ok {
		return 0
	}
	return untilOne(b.level(now, burst, t.refill), t.refill)
}

// untilOne is how long a bucket at level waits for one whole attempt.
func untilOne(level float64, refill time.Duration) time.Duration {
	if level >= 1 {
		return 0
	}
	return time.Duration(math.Ceil((1 - level) * float64(refill)))
}

// level is b's attempts at now: one more for every refill since b.last,
// up to burst.
func (b *bucket) level(now time.Time, burst float64, refill time.Duration) float64 {
	if refill <= 0 {
		return b.tokens
	}
	return min(burst, b.tokens+float64(now.Sub(b.last))/float64(refill))
}

// fail takes one attempt from each of k's buckets, and forgets that k's
// token was good: a revoked token is judged like any other.
func (t *throttle) fail(k throttleKeys) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	t.take(k.ip, now, t.burst)
	if k.site != "" {
		t.take(k.site, now, per48Burst*t.burst)
	}
	if k.token != "" {
		t.good.remove(k.token)
		t.take(k.token, now, t.burst)
	}
}

func (t *throttle) take(key string, now time.Time, burst float64) {
	b, ok := t.buckets.get(key)
	if !ok {
		b = t.buckets.put(key, bucket{tokens: burst, last: now})
	}
	b.tokens = max(0, b.level(now, burst, t.refill)-1)
	b.last = now
}

// succeed remembers that k's token authenticated, so that it skips the IP
// bucket for goodFor.
func (t *throttle) succeed(k throttleKeys) {
	if k.token == "" {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.good.put(k.token, t.now().Add(goodFor))
}

// len reports how many buckets and good tokens are kept.
func (t *throttle) len() (buckets, good int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.buckets.len(), t.good.len()
}

// lru is a map bounded to max entries that evicts the least recently used.
// Its callers hold a lock.
type lru[V any] struct {
	max   int
	items map[string]*list.Element // of *lruItem[V]
	order *list.List               // most recently used first
}

type lruItem[V any] struct {
	key string
	val V
}

func newLRU[V any](max int) *lru[V] {
	return &lru[V]{max: max, items: make(map[string]*list.Element), order: list.New()}
}

func (l *lru[V]) get(key string) (*V, bool) {
	el, ok := l.items[key]
	if !ok {
		return nil, false
	}
	l.order.MoveToFront(el)
	return &el.Value.(*lruItem[V]).val, true
}

func (l *lru[V]) put(key string, v V) *V {
	if el, ok := l.items[key]; ok {
		it := el.Value.(*lruItem[V])
		it.val = v
		l.order.MoveToFront(el)
		return &it.val
	}
	it := &lruItem[V]{key: key, val: v}
	l.items[key] = l.order.PushFront(it)
	for len(l.items) > l.max {
		l.remove(l.order.Back().Value.(*lruItem[V]).key)
	}
	return &it.val
}

func (l *lru[V]) remove(key string) {
	if el, ok := l.items[key]; ok {
		delete(l.items, key)
		l.order.Remove(el)
	}
}

func (l *lru[V]) len() int { return len(l.items) }
