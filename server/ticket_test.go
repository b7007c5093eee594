package server

import (
	"bytes"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"

	"wsauth/tokens"
)

func newTestBox(t *testing.T, key byte, now *time.Time, max int) *ticketBox {
	t.Helper()
	b, err := newTicketBox(bytes.Repeat([]byte{key}, 32), func() time.Time { return *now }, max)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestTicketOpen(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	box := newTestBox(t, 1, &now, 10)
	other := newTestBox(t, 2, &now, 10)
	good, err := box.mint("tok-en")
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := base64.RawURLEncoding.DecodeString(good)
	flip := func(i int) string {
		b := bytes.Clone(raw)
		b[i] ^= 1
		return base64.RawURLEncoding.EncodeToString(b)
	}
	foreign, _ := other.mint("tok-en")
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
	far, _ := box.mint("x")
	if _, _, _, err := skewed.open(far); !errors.Is(err, errTicketMalformed) {
		t.Errorf("open of a ticket expiring 90 s ahead = %v; want %v", err, errTicketMalformed)
	}
}

func TestTicketReplaySet(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	box := newTestBox(t, 1, &now, 3)
	peer := newTestBox(t, 1, &now, 3)
	a, _ := box.mint("a")
	b, _ := box.mint("b")
	fromPeer, _ := peer.mint("p")
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
	if _, err := box.mint("c"); !errors.Is(err, errTicketsFull) {
		t.Errorf("mint with 3 of 3 ids held = %v; want %v", err, errTicketsFull)
	}
	fromPeer2, _ := peer.mint("q")
	if _, err := box.redeem(fromPeer2); !errors.Is(err, errTicketsFull) {
		t.Errorf("redeem of a peer's ticket with a full set = %v; want %v", err, errTicketsFull)
	}
	now = now.Add(TicketTTL)
	if _, err := box.mint("d"); err != nil {
		t.Errorf("mint once every id expired = %v; want nil", err)
	}
	if len(box.seen) != 1 || len(box.order)-box.head != 1 {
		t.Errorf("after expiry the set holds %d ids, %d in order; want 1 and 1", len(box.seen), len(box.order)-box.head)
	}
}
