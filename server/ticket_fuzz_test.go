package server

import (
	"bytes"
	"encoding/base64"
	"errors"
	"testing"
	"time"

	"wsauth/tokens"
)

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
