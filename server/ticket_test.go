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
