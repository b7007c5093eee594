package server

import (
	"bytes"
	"encoding/base64"
	"errors"
	"runtime"
	"strings"
	"testing"
	"time"

	"wsauth/tokens"
)

func newTestBox(t *testing.T, key byte, now *time.Time, max int) *ticketBox {
	t.Helper()
	b, err := newTicketBox(bytes.Repeat([]byte{key}, 32), func() time.Time { return *now }, max, -1)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestTicketOpen(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	box := newTestBox(t, 1, &now, 10)
	other := newTestBox(t, 2, &now, 10)
	good, err := box.mint("tok-en", "alice")
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := base64.RawURLEncoding.DecodeString(good)
	flip := func(i int) string {
		b := bytes.Clone(raw)
		b[i] ^= 1
		return base64.RawURLEncoding.EncodeToString(b)
	}
	foreign, _ := other.mint("tok-en", "alice")
	for _, tc := range []struct {
		name   string
		ticket string
		want   error
	}{
		{"empty", "", errTicketMalformed},
		{"not base64", "!!!!", errTicketMalformed},
		{"too short", base64.RawURLEncoding.EncodeToString(raw[:20]), errTicketMalformed},
		{"too long", strings.Repeat("A", maxTicketLen+1), errTicketMalformed},
		{"other version", flip(0), errTicketMalformed},
		{"altered nonce", flip(3), errTicketForged},
		{"altered body", flip(len(raw) - 20), errTicketForged},
		{"altered tag", flip(len(raw) - 1), errTicketForged},
		{"other key", foreign, errTicketForged},
	} {
		_, _, _, err := box.open(tc.ticket)
		if !errors.Is(err, tc.want) || !errors.Is(err, tokens.ErrInvalid) {
			t.Errorf("open(%s) = %v; want %v, which is tokens.ErrInvalid", tc.name, err, tc.want)
		}
	}
	if _, _, tok, err := box.open(good); err != nil || tok != "tok-en" {
		t.Fatalf("open(good) = %q, %v; want tok-en", tok, err)
	}
	if strings.Contains(string(raw), "tok-en") {
		t.Error("the sealed ticket holds the token in clear")
	}
	now = now.Add(TicketTTL - time.Millisecond)
	if _, _, _, err := box.open(good); err != nil {
		t.Errorf("open 1 ms before expiry = %v; want nil", err)
	}
	now = now.Add(time.Millisecond)
	if _, _, _, err := box.open(good); !errors.Is(err, errTicketExpired) {
		t.Errorf("open at expiry = %v; want %v", err, errTicketExpired)
	}
	// A ticket that claims to live far longer than TicketTTL, sealed by
	// the right key (a peer with a skewed clock), is refused.
	early := now.Add(-time.Minute)
	skewed := newTestBox(t, 1, &early, 10)
	far, _ := box.mint("x", "alice")
	if _, _, _, err := skewed.open(far); !errors.Is(err, errTicketMalformed) {
		t.Errorf("open of a ticket expiring 90 s ahead = %v; want %v", err, errTicketMalformed)
	}
}

func TestTicketReplaySet(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	box := newTestBox(t, 1, &now, 3)
	peer := newTestBox(t, 1, &now, 3)
	a, _ := box.mint("a", "alice")
	b, _ := box.mint("b", "alice")
	fromPeer, _ := peer.mint("p", "alice")
	for _, tk := range []string{a, b} {
		if tok, err := box.redeem(tk); err != nil || tok == "" {
			t.Fatalf("first redeem = %q, %v; want the token", tok, err)
		}
		if _, err := box.redeem(tk); !errors.Is(err, errTicketReplayed) {
			t.Errorf("second redeem = %v; want %v", err, errTicketReplayed)
		}
	}
	if _, err := box.redeem(fromPeer); err != nil {
		t.Fatalf("redeem of a peer's ticket with room: %v", err)
	}
	if _, err := box.mint("c", "alice"); !errors.Is(err, errTicketsFull) {
		t.Errorf("mint with 3 of 3 ids held = %v; want %v", err, errTicketsFull)
	}
	fromPeer2, _ := peer.mint("q", "alice")
	if _, err := box.redeem(fromPeer2); !errors.Is(err, errTicketsFull) {
		t.Errorf("redeem of a peer's ticket with a full set = %v; want %v", err, errTicketsFull)
	}
	now = now.Add(TicketTTL)
	if _, err := box.mint("d", "alice"); err != nil {
		t.Errorf("mint once every id expired = %v; want nil", err)
	}
	if len(box.seen) != 1 || len(box.order)-box.head != 1 {
		t.Errorf("after expiry the set holds %d ids, %d in order; want 1 and 1", len(box.seen), len(box.order)-box.head)
	}
}

// TestTicketsPerSubject: one subject holds at most perSubject ids of the
// replay set, used or not, until they expire, so that no one subject can
// fill the set; other subjects and other instances' tickets are not
// affected, and nothing of a subject is kept once its tickets expired.
func TestTicketsPerSubject(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	b, err := newTicketBox(bytes.Repeat([]byte{1}, 32), func() time.Time { return now }, 100, 2)
	if err != nil {
		t.Fatal(err)
	}
	peer := newTestBox(t, 1, &now, 100)
	first, _ := b.mint("a1", "alice")
	if _, err := b.mint("a2", "alice"); err != nil {
		t.Fatalf("alice's second ticket: %v", err)
	}
	if _, err := b.mint("a3", "alice"); !errors.Is(err, errSubjectTickets) {
		t.Errorf("alice's third ticket with a quota of 2 = %v; want %v", err, errSubjectTickets)
	}
	if _, err := b.redeem(first); err != nil {
		t.Fatal(err)
	}
	if _, err := b.mint("a3", "alice"); !errors.Is(err, errSubjectTickets) {
		t.Errorf("alice's third ticket after using one = %v; want %v: a used id holds its slot until it expires", err, errSubjectTickets)
	}
	if _, err := b.mint("b1", "bob"); err != nil {
		t.Errorf("bob's ticket while alice is at her quota: %v; want nil", err)
	}
	fromPeer, _ := peer.mint("p", "alice")
	if _, err := b.redeem(fromPeer); err != nil {
		t.Errorf("redeeming alice's ticket from another instance: %v; want nil (its quota is that instance's)", err)
	}
	now = now.Add(TicketTTL)
	if _, err := b.mint("a4", "alice"); err != nil {
		t.Errorf("alice's ticket once hers expired: %v; want nil", err)
	}
	if len(b.subjects) != 1 || b.subjects["alice"] != 1 {
		t.Errorf("after expiry, ids held per subject = %v; want only alice's new one", b.subjects)
	}
}

// ticketBytesPerID bounds the heap one id in the replay set costs: the map
// slot (16-byte id, 48-byte state, the map's overhead, ~100 bytes) and its
// entry in the expiry order (40 bytes, twice while the slice is compacted
// or grown). 256 leaves room for all of it.
const ticketBytesPerID = 256

// TestTicketReplaySetBounded mints tickets at the replay set's limit for
// several ticket lifetimes: the set never holds more than its maximum, and
// the heap stays within maximum × ticketBytesPerID and stops growing after
// the fourth lifetime.
func TestTicketReplaySetBounded(t *testing.T) {
	const max, rounds = 100_000, 8
	now := time.Unix(1_800_000_000, 0)
	box, err := newTicketBox(bytes.Repeat([]byte{1}, 32), func() time.Time { return now }, max, -1)
	if err != nil {
		t.Fatal(err)
	}
	heap := func() uint64 {
		runtime.GC()
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	base := heap()
	var steady uint64
	for round := range rounds {
		for i := range max {
			if _, err := box.mint("token", "alice"); err != nil {
				t.Fatalf("round %d, mint %d: %v", round, i, err)
			}
		}
		if _, err := box.mint("one too many", "alice"); err != errTicketsFull {
			t.Fatalf("round %d: mint past the maximum = %v; want %v", round, err, errTicketsFull)
		}
		if n := len(box.seen); n != max {
			t.Fatalf("round %d: replay set holds %d ids; want %d", round, n, max)
		}
		if round == 3 {
			// Expiring and adding grows the map's table past what one
			// lifetime needed, twice (11.6, 12.6, 17.6, 18.6 MiB at the
			// end of rounds 0 to 3); after that it stays put.
			steady = heap()
		}
		now = now.Add(TicketTTL) // every ticket of this round expires
	}
	end := heap()
	runtime.KeepAlive(box)
	bound := uint64(max * ticketBytesPerID)
	t.Logf("heap: %.1f MiB before, %.1f MiB after %d tickets, %.1f MiB after %d; bound %.1f MiB",
		float64(base)/(1<<20), float64(steady)/(1<<20), 4*max, float64(end)/(1<<20), rounds*max, float64(base+bound)/(1<<20))
	if end > base+bound {
		t.Errorf("heap grew by %.1f MiB; want at most %d ids × %d bytes = %.1f MiB",
			float64(end-base)/(1<<20), max, ticketBytesPerID, float64(bound)/(1<<20))
	}
	if end > steady+steady/5+(1<<20) {
		t.Errorf("heap grew from %.1f MiB after four lifetimes to %.1f MiB after %d; want it flat",
			float64(steady)/(1<<20), float64(end)/(1<<20), rounds)
	}
}

// FuzzTicketOpen checks the ticket opener on hostile input: it never
// panics and refuses with tokens.ErrInvalid; a ticket opens, once, to the
// token sealed in it; any alteration of a ticket's bytes, and any ticket
// sealed under another key, never opens (AES-GCM's tag: a forgery the
// fuzzer finds is a broken seal, not luck).
func FuzzTicketOpen(f *testing.F) {
	f.Add("tok-en", "", 0, byte(0))
	f.Add("a", "AQ", 3, byte(1))
	f.Add("x~!+%&=", "!!!!", 40, byte(0x80))
	f.Add("tok", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", -1, byte(0))
	f.Fuzz(func(t *testing.T, token, junk string, at int, xor byte) {
		now := time.Unix(1_800_000_000, 0)
		clock := func() time.Time { return now }
		box, _ := newTicketBox(bytes.Repeat([]byte{1}, 32), clock, 100, -1)
		other, _ := newTicketBox(bytes.Repeat([]byte{2}, 32), clock, 100, -1)

		// Arbitrary input: refused, never a panic, always ErrInvalid.
		if _, _, tok, err := box.open(junk); err == nil {
			t.Fatalf("open(%q) = %q; a string no key sealed opened", junk, tok)
		} else if !errors.Is(err, tokens.ErrInvalid) {
			t.Fatalf("open(%q) = %v; want tokens.ErrInvalid", junk, err)
		}
		if tokens.CheckFormat(token) != nil {
			return // the server mints tickets only for well-formed tokens
		}
		ticket, err := box.mint(token, "alice")
		if err != nil {
			t.Fatalf("mint: %v", err)
		}
		if _, _, _, err := other.open(ticket); !errors.Is(err, tokens.ErrInvalid) {
			t.Fatalf("a ticket sealed under another key opened: %v", err)
		}
		// One byte of the sealed ticket altered.
		raw, _ := base64.RawURLEncoding.DecodeString(ticket)
		if xor != 0 && at >= 0 {
			altered := bytes.Clone(raw)
			altered[at%len(altered)] ^= xor
			if _, _, tok, err := box.open(base64.RawURLEncoding.EncodeToString(altered)); err == nil {
				t.Fatalf("a ticket with byte %d altered opened to %q", at%len(altered), tok)
			}
		}
		// The ticket with junk appended.
		if junk != "" {
			if _, _, _, err := box.open(ticket + junk); err == nil {
				if r, derr := base64.RawURLEncoding.DecodeString(ticket + junk); derr != nil || !bytes.Equal(r, raw) {
					t.Fatalf("ticket+%q opened", junk)
				}
			}
		}
		got, err := box.redeem(ticket)
		if err != nil || got != token {
			t.Fatalf("redeem(mint(%q)) = %q, %v; want the token", token, got, err)
		}
		if _, err := box.redeem(ticket); !errors.Is(err, errTicketReplayed) {
			t.Fatalf("second redeem = %v; want %v", err, errTicketReplayed)
		}
	})
}
