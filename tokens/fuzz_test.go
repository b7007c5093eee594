package tokens

import (
	"encoding/json"
	"errors"
	"testing"
	"time"
)

// FuzzParseIntrospection checks the decoder of the token system's replies:
// it never panics, every error is ErrInvalid or ErrUnavailable, and a reply
// is valid only if it says, with exactly these member names, "active": true,
// a non-empty "sub" and an "exp" after now.
func FuzzParseIntrospection(f *testing.F) {
	for _, s := range []string{
		`{"active":true,"sub":"alice","scope":"api ws","exp":1900000000,"client_id":"c"}`,
		`{"active":true,"sub":"alice"}`,
		`{"active":true,"sub":"alice","exp":1.9e9}`,
		`{"active":true,"sub":"alice","exp":"1900000000"}`,
		`{"active":true,"sub":"alice","exp":1000}`,
		`{"active":true,"sub":""}`,
		`{"active":false,"sub":"alice"}`,
		`{"active":false,"ACTIVE":true,"sub":"alice"}`,
		`{"active":true,"Sub":"alice","sub":""}`,
		`{"active":"true","sub":"alice"}`,
		`{"active":true,"active":false,"sub":"alice"}`,
		`{"sub":"alice"}`,
		`null`, `[]`, `{}`, `"active"`, `<html>502</html>`, ``,
	} {
		f.Add([]byte(s), int64(1_800_000_000))
	}
	f.Fuzz(func(t *testing.T, reply []byte, nowUnix int64) {
		now := time.Unix(nowUnix, 0)
		p, err := ParseIntrospection(reply, now)
		if err != nil {
			if !errors.Is(err, ErrInvalid) && !errors.Is(err, ErrUnavailable) {
				t.Fatalf("ParseIntrospection(%q) error %v wraps neither ErrInvalid nor ErrUnavailable", reply, err)
			}
			return
		}
		var m map[string]json.RawMessage
		if json.Unmarshal(reply, &m) != nil {
			t.Fatalf("ParseIntrospection(%q) is valid; the reply is not a JSON object", reply)
		}
		var active bool
		if json.Unmarshal(m["active"], &active) != nil || !active {
			t.Fatalf("ParseIntrospection(%q) is valid; its \"active\" is %s, not true", reply, m["active"])
		}
		var sub string
		if json.Unmarshal(m["sub"], &sub) != nil || sub == "" || p.Subject != sub {
			t.Fatalf("ParseIntrospection(%q) is valid with subject %q; its \"sub\" is %s", reply, p.Subject, m["sub"])
		}
		if !now.Before(p.Expiry) {
			t.Fatalf("ParseIntrospection(%q, now %v) is valid with expiry %v, not after now", reply, now, p.Expiry)
		}
		if _, hasExp := m["exp"]; !hasExp {
			t.Fatalf("ParseIntrospection(%q) is valid without \"exp\"", reply)
		}
		if n, dup := countMembers(t, reply); dup {
			t.Fatalf("ParseIntrospection(%q) is valid; the reply names a member twice (%d members)", reply, n)
		}
	})
}

// FuzzCheckFormat checks that the format check lets through only 1 to
// MaxTokenLen bytes of visible ASCII, and refuses with ErrInvalid.
func FuzzCheckFormat(f *testing.F) {
	for _, s := range []string{"abc", "", " ", "a b", "tok\x00en", "tökén", "\x7f", "~!"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, tok string) {
		err := CheckFormat(tok)
		ok := len(tok) >= 1 && len(tok) <= MaxTokenLen
		for i := 0; i < len(tok); i++ {
			if tok[i] < 0x21 || tok[i] > 0x7e {
				ok = false
			}
		}
		if ok != (err == nil) {
			t.Fatalf("CheckFormat(%q) = %v; want ok = %v", tok, err, ok)
		}
		if err != nil && !errors.Is(err, ErrInvalid) {
			t.Fatalf("CheckFormat(%q) = %v; want ErrInvalid", tok, err)
		}
	})
}
