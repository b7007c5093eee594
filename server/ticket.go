package server

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"sync"
	"time"

	"wsauth/tokens"
)

// One-time tickets keep long-lived tokens out of URLs. A browser cannot set
// headers on new WebSocket(url), so a page that holds no cookie would put its
// token in the query string, where access logs, history and Referer headers
// keep it. Instead it asks POST /api/ws-ticket (by cookie or bearer header)
// for a ticket and opens /ws?ticket=…: the ticket is good once, for
// TicketTTL, and whoever reads it in a log learns nothing.
//
// A ticket is the token sealed with AES-256-GCM (NIST SP 800-38D) under
// Config.TicketKey, together with a random 16-byte id and its expiry:
//
//	base64url( version(1) | nonce(12) | GCM(id(16) | expiry unix ms(8) | token) )
//
// The version byte is authenticated as additional data. Carrying the token
// itself, not a reference, lets any instance that shares the key redeem it,
// and lets the connection that it opens be rechecked and expire like any
// other. Single use is enforced per instance by the replay set below.

// TicketTTL is how long a ticket stays redeemable.
const TicketTTL = 30 * time.Second

const (
	ticketVersion = 1
	ticketIDLen   = 16
	// ticketSkew is how far past now+TicketTTL a ticket's expiry may lie,
	// for instances whose clocks disagree a little. A ticket that claims
	// more was not minted by this code and is refused.
	ticketSkew = 5 * time.Second
	// maxTicketLen bounds what is decoded: a ticket of the longest token.
	maxTicketLen = (1+12+ticketIDLen+8+tokens.MaxTokenLen+16)*4/3 + 4
)

var ticketAD = []byte{ticketVersion}

// Reasons a ticket is refused. They wrap tokens.ErrInvalid, so a client gets
// 401 invalid_token (or close 3000) whatever the reason; the reason itself
// goes to the log line only.
var (
	errTicketMalformed = fmt.Errorf("ticket malformed: %w", tokens.ErrInvalid)
	errTicketForged    = fmt.Errorf("ticket not sealed by this server's key: %w", tokens.ErrInvalid)
	errTicketExpired   = fmt.Errorf("ticket expired: %w", tokens.ErrInvalid)
	errTicketReplayed  = fmt.Errorf("ticket already used: %w", tokens.ErrInvalid)
	// errTicketsFull is a replay set that cannot take another id: 503
	// rather than a ticket whose single use could not be enforced.
	errTicketsFull = errors.New("ticket replay set is full")
	// errSubjectTickets is a subject that holds Config.TicketsPerSubject
	// unexpired tickets already: 429.
	errSubjectTickets = errors.New("this subject holds as many unexpired tickets as it may")
)

// ticketBox seals and opens tickets and remembers the ids it has seen.
//
// The replay set holds the id of every ticket this instance minted or
// redeemed, until the ticket expires, and never more than max ids. It never
// forgets an id that has not expired, since that would let a ticket be used
// twice. When it is full, minting answers 503 and so does redeeming a ticket
// minted by another instance; a ticket minted here already holds its slot.
// With the default of 100,000 ids (a few MB), one instance mints at most
// about 3,300 tickets a second, sustained.
//
// So that no one subject can fill it and lock every other user out of
// tickets, a subject may hold at most perSubject ids of tickets minted
// here at a time (Config.TicketsPerSubject); past that, minting answers
// 429. An id counts until its ticket expires, used or not: a used id keeps
// its slot until then, and a subject that minted and spent tickets in a
// loop would otherwise fill the set as surely as one that hoards them.
type ticketBox struct {
	aead       cipher.AEAD
	now        func() time.Time
	max        int
	perSubject int // negative: no bound

	mu       sync.Mutex
	seen     map[[ticketIDLen]byte]ticketState
	subjects map[string]int // ids held per subject, of tickets minted here
	order    []ticketEntry  // ids in insertion order, to forget them when they expire
	head     int            // order[:head] are forgotten
}

type ticketState struct {
	exp      time.Time
	redeemed bool
	sub      string // who minted it here; "" for another instance's ticket
}

type ticketEntry struct {
	id  [ticketIDLen]byte
	exp time.Time
}

// newTicketBox returns a ticketBox sealing with key, which must be 32 bytes
// (AES-256), remembering at most max ids, perSubject of them (negative: no
// bound) for one subject's tickets.
func newTicketBox(key []byte, now func() time.Time, max, perSubject int) (*ticketBox, error) {
	if len(key) != 32 {
		return nil, fmt.Errorf("ticket key is %d bytes; want 32", len(key))
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &ticketBox{aead: aead, now: now, max: max, perSubject: perSubject,
		seen: make(map[[ticketIDLen]byte]ticketState), subjects: make(map[string]int)}, nil
}

// mint seals token, of subject sub, into a ticket redeemable once until
// now+TicketTTL.
func (b *ticketBox) mint(token, sub string) (string, error) {
	var id [ticketIDLen]byte
	rand.Read(id[:]) // crypto/rand.Read never returns an error (Go 1.24+).
	exp := b.now().Add(TicketTTL)

	b.mu.Lock()
	err := b.remember(id, ticketState{exp: exp, sub: sub})
	b.mu.Unlock()
	if err != nil {
		return "", err
	}

	plain := make([]byte, 0, ticketIDLen+8+len(token))
	plain = append(plain, id[:]...)
	plain = binary.BigEndian.AppendUint64(plain, uint64(exp.UnixMilli()))
	plain = append(plain, token...)
	nonce := make([]byte, b.aead.NonceSize())
	rand.Read(nonce) // random 96-bit nonces: safe for 2^32 tickets per key (SP 800-38D §8.3)
	out := make([]byte, 0, 1+len(nonce)+len(plain)+b.aead.Overhead())
	out = append(append(out, ticketVersion), nonce...)
	out = b.aead.Seal(out, nonce, plain, ticketAD)
	return base64.RawURLEncoding.EncodeToString(out), nil
}

// redeem opens ticket and spends it: the token inside, or an error wrapping
// tokens.ErrInvalid (or errTicketsFull). A ticket is spent by its first use
// even if that use then fails, say because the token system is down: the
// client asks for another.
func (b *ticketBox) redeem(ticket string) (string, error) {
	id, exp, token, err := b.open(ticket)
	if err != nil {
		return "", err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	st, ok := b.seen[id]
	switch {
	case ok && st.redeemed:
		return "", errTicketReplayed
	case ok:
		st.redeemed = true
		b.seen[id] = st
	default:
		if err := b.remember(id, ticketState{exp: exp, redeemed: true}); err != nil {
			return "", err
		}
	}
	return token, nil
}

// open checks a ticket's seal and expiry, without spending it. It is pure
// but for the clock: the fuzzing target of the ticket format.
func (b *ticketBox) open(ticket string) (id [ticketIDLen]byte, exp time.Time, token string, err error) {
	if ticket == "" || len(ticket) > maxTicketLen {
		return id, exp, "", errTicketMalformed
	}
	raw, err := base64.RawURLEncoding.DecodeString(ticket)
	ns := b.aead.NonceSize()
	if err != nil || len(raw) < 1+ns+b.aead.Overhead() || raw[0] != ticketVersion {
		return id, exp, "", errTicketMalformed
	}
	plain, err := b.aead.Open(nil, raw[1:1+ns], raw[1+ns:], ticketAD)
	if err != nil {
		return id, exp, "", errTicketForged
	}
	if len(plain) < ticketIDLen+8+1 {
		return id, exp, "", errTicketMalformed // sealed by this key, so a bug, not an attack
	}
	copy(id[:], plain)
	exp = time.UnixMilli(int64(binary.BigEndian.Uint64(plain[ticketIDLen:])))
	now := b.now()
	if !now.Before(exp) {
		return id, exp, "", errTicketExpired
	}
	if exp.Sub(now) > TicketTTL+ticketSkew {
		return id, exp, "", errTicketMalformed
	}
	return id, exp, string(plain[ticketIDLen+8:]), nil
}

// remember adds id to the replay set, first forgetting expired ids; b.mu
// must be held.
func (b *ticketBox) remember(id [ticketIDLen]byte, st ticketState) error {
	// Tickets of this instance expire in the order they were minted; one
	// from another instance may expire earlier than the ids before it and
	// is then forgotten late, by at most TicketTTL.
	now := b.now()
	for ; b.head < len(b.order) && !now.Before(b.order[b.head].exp); b.head++ {
		old := b.order[b.head].id
		if sub := b.seen[old].sub; sub != "" {
			if b.subjects[sub]--; b.subjects[sub] <= 0 {
				delete(b.subjects, sub)
			}
		}
		delete(b.seen, old)
	}
	if b.head > len(b.order)/2 {
		b.order = append(b.order[:0], b.order[b.head:]...)
		b.head = 0
	}
	switch {
	case st.sub != "" && b.perSubject >= 0 && b.subjects[st.sub] >= b.perSubject:
		return errSubjectTickets
	case len(b.seen) >= b.max:
		return errTicketsFull
	}
	b.seen[id] = st
	if st.sub != "" {
		b.subjects[st.sub]++
	}
	b.order = append(b.order, ticketEntry{id: id, exp: st.exp})
	return nil
}

// ticketMsg is POST /api/ws-ticket's answer.
type ticketMsg struct {
	Ticket    string `json:"ticket"`
	ExpiresIn int    `json:"expires_in"` // seconds, as in RFC 6749 §5.1
}

// handleTicket mints a ticket for the token that authorized the request.
func (s *Server) handleTicket() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d, ok := decisionFrom(r.Context())
		if !ok || d.refused != nil {
			s.writeError(w, r, errors.New("ticket handler reached without a principal"))
			return
		}
		t, err := s.tickets.mint(d.token, d.p.Subject)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, ticketMsg{Ticket: t, ExpiresIn: int(TicketTTL / time.Second)})
	})
}

var errNotScripted = badRequest("send Content-Type: application/json or an X-Requested-With header")

// scripted refuses requests that a cross-site HTML form could send, before
// any credential is looked at: POST endpoints that act on the ambient
// cookie (minting a ticket, signing in) must not be drivable by another
// site's page (CSRF). A form can send neither a JSON Content-Type nor a
// custom header, and a script on another origin cannot send them without a
// CORS preflight, which this server never grants. An Origin, when sent,
// must also pass the WebSocket origin policy.
func (s *Server) scripted(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := s.checkScripted(r); err != nil {
			s.writeError(w, r, err)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// checkScripted is scripted's decision.
func (s *Server) checkScripted(r *http.Request) error {
	if !s.originAllowed(r) {
		return errOriginRefused
	}
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if (err != nil || mt != "application/json") && r.Header.Get("X-Requested-With") == "" {
		return errNotScripted
	}
	return nil
}
