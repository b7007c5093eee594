package server

import (
	"crypto/hmac"
	"crypto/sha256"
	"fmt"
	"testing"
	"time"
)

// clock is a settable clock for throttle tests.
type clock struct{ t time.Time }

func (c *clock) Now() time.Time { return c.t }

func TestThrottleBucket(t *testing.T) {
	t.Parallel()
	clk := &clock{t: time.Unix(1_700_000_000, 0)}
	th := newThrottle(3, time.Second, 100, clk.Now)
	k := th.keys("192.0.2.1", "bad")
	for i := range 3 {
		if w := th.wait(k); w != 0 {
			t.Fatalf("failure %d: wait = %v; want 0 within the burst", i+1, w)
		}
		th.fail(k)
	}
	if w := th.wait(k); w != time.Second {
		t.Fatalf("after the burst: wait = %v; want 1s", w)
	}
	other := th.keys("192.0.2.2", "other")
	if w := th.wait(other); w != 0 {
		t.Errorf("another IP with another token: wait = %v; want 0", w)
	}
	sameToken := th.keys("192.0.2.3", "bad")
	if w := th.wait(sameToken); w != time.Second {
		t.Errorf("the same bad token from another IP: wait = %v; want 1s (per-token bucket)", w)
	}
	clk.t = clk.t.Add(500 * time.Millisecond)
	if w := th.wait(k); w != 500*time.Millisecond {
		t.Errorf("half a refill later: wait = %v; want 500ms", w)
	}
	clk.t = clk.t.Add(500 * time.Millisecond)
	if w := th.wait(k); w != 0 {
		t.Errorf("one refill later: wait = %v; want 0", w)
	}
	th.fail(k)
	if w := th.wait(k); w != time.Second {
		t.Errorf("failing the refilled attempt: wait = %v; want 1s", w)
	}
	clk.t = clk.t.Add(time.Hour)
	for i := range 3 {
		if w := th.wait(k); w != 0 {
			t.Fatalf("an hour later, failure %d: wait = %v; want 0 (refilled to the burst, not beyond)", i+1, w)
		}
		th.fail(k)
	}
	if w := th.wait(k); w == 0 {
		t.Errorf("an hour later, past the burst: wait = 0; want > 0 (the bucket holds at most the burst)")
	}
}

func TestThrottleGoodTokenSkipsIP(t *testing.T) {
	t.Parallel()
	clk := &clock{t: time.Unix(1_700_000_000, 0)}
	th := newThrottle(2, time.Hour, 100, clk.Now)
	good := th.keys("192.0.2.1", "good")
	th.succeed(good)
	for _, tok := range []string{"bad1", "bad2", "bad3"} {
		th.fail(th.keys("192.0.2.1", tok))
	}
	if w := th.wait(th.keys("192.0.2.1", "new")); w == 0 {
		t.Errorf("a token never seen valid, from the throttled IP: wait = 0; want > 0")
	}
	if w := th.wait(good); w != 0 {
		t.Errorf("a token seen valid, from the throttled IP: wait = %v; want 0", w)
	}
	clk.t = clk.t.Add(goodFor)
	if w := th.wait(good); w == 0 {
		t.Errorf("goodFor after its success: wait = 0; want the IP's wait")
	}
	th.succeed(good)
	th.fail(good) // revoked since
	if w := th.wait(good); w == 0 {
		t.Errorf("a good token that then failed: wait = 0; want the IP's wait")
	}
}

func TestThrottleIPv6Per64(t *testing.T) {
	t.Parallel()
	th := newThrottle(1, time.Minute, 100, (&clock{t: time.Unix(0, 0)}).Now)
	th.fail(th.keys("2001:db8:1:2::1", ""))
	if w := th.wait(th.keys("2001:db8:1:2:ffff::9", "")); w == 0 {
		t.Errorf("another address in the same /64: wait = 0; want > 0")
	}
	if w := th.wait(th.keys("2001:db8:1:3::1", "")); w != 0 {
		t.Errorf("an address in another /64: wait = %v; want 0", w)
	}
}

// TestThrottleIPv6Per48: besides its /64's bucket, every IPv6 failure
// takes from its /48's, which holds per48Burst bursts, so that a routed /48
// does not get a burst for each of its 65,536 /64s.
func TestThrottleIPv6Per48(t *testing.T) {
	t.Parallel()
	const burst = 2
	th := newThrottle(burst, time.Minute, 100, (&clock{t: time.Unix(0, 0)}).Now)
	n := 0
	for sub := range per48Burst {
		for range burst {
			if w := th.wait(th.keys(fmt.Sprintf("2001:db8:1:%x::1", sub), "")); w != 0 {
				t.Fatalf("failure %d of the /48's %d, from a /64 within its own burst: wait = %v; want 0", n+1, per48Burst*burst, w)
			}
			th.fail(th.keys(fmt.Sprintf("2001:db8:1:%x::1", sub), ""))
			n++
		}
	}
	if w := th.wait(th.keys("2001:db8:1:99::1", "")); w == 0 {
		t.Errorf("a fresh /64 of a /48 that failed %d times: wait = 0; want > 0", n)
	}
	if w := th.wait(th.keys("2001:db8:2:99::1", "")); w != 0 {
		t.Errorf("a /64 of another /48: wait = %v; want 0", w)
	}
	if w := th.wait(th.keys("192.0.2.1", "")); w != 0 {
		t.Errorf("an IPv4 address: wait = %v; want 0", w)
	}
}

func TestThrottleBounded(t *testing.T) {
	t.Parallel()
	clk := &clock{t: time.Unix(0, 0)}
	th := newThrottle(1, time.Minute, 1000, clk.Now)
	for i := range 50_000 {
		k := th.keys(fmt.Sprintf("10.%d.%d.%d", i>>16, i>>8&0xff, i&0xff), fmt.Sprint("tok", i))
		th.fail(k)
		th.succeed(k)
	}
	if b, g := th.len(); b > 1000 || g > 1000 {
		t.Errorf("after 50,000 distinct IPs and tokens: %d buckets, %d good tokens; want at most 1000 each", b, g)
	}
	last := th.keys("10.0.195.79", "tok49999")
	th.fail(last)
	if w := th.wait(th.keys("10.0.195.79", "")); w == 0 {
		t.Errorf("the most recent IP was evicted; want the oldest evicted first")
	}
}

func TestThrottleOff(t *testing.T) {
	t.Parallel()
	if th := newThrottle(-1, time.Second, 10, time.Now); th != nil {
		t.Errorf("newThrottle(-1, …) = %v; want nil (off)", th)
	}
}

// TestThrottleTokenKeyIsHMAC: a token's bucket is keyed by HMAC-SHA256 of
// the token under the throttle's secret, never the token, and the HMAC
// states the throttle reuses give every token its own key however they
// are interleaved.
func TestThrottleTokenKeyIsHMAC(t *testing.T) {
	t.Parallel()
	th := newThrottle(3, time.Second, 100, time.Now)
	want := func(token string) string {
		m := hmac.New(sha256.New, th.secret)
		m.Write([]byte(token))
		return "tok " + string(m.Sum(nil))
	}
	for range 3 {
		for _, tok := range []string{"first-token", "second-token", "first-token"} {
			if got := th.keys("192.0.2.1", tok).token; got != want(tok) {
				t.Fatalf("key of %q = %x; want HMAC-SHA256 %x", tok, got, want(tok))
			}
		}
	}
}

// BenchmarkThrottleKeys measures the bucket keys of a handshake from an
// IPv4 client with a token, which every authenticated request works out.
func BenchmarkThrottleKeys(b *testing.B) {
	th := newThrottle(DefaultFailureBurst, time.Second, 100, time.Now)
	token := "k3x9QeWbq1mZ8u0yTt4vR2sLpN6dHc5aJf7gYiOoUlE"
	b.ReportAllocs()
	for b.Loop() {
		th.keys("192.0.2.1", token)
	}
}
