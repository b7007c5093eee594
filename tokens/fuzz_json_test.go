package tokens

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"
	"unicode/utf8"
)

// countMembers is an oracle for the strict decoder, written apart from it:
// a recursive descent over json.Decoder's tokens that reports the number of
// top-level members of the object data and whether any object in it, at any
// depth, names a member twice.
func countMembers(t *testing.T, data []byte) (n int, dup bool) {
	dec := json.NewDecoder(bytes.NewReader(data))
	var value func() (int, bool)
	value = func() (int, bool) {
		tok, err := dec.Token()
		if err != nil {
			t.Fatalf("oracle: %q: %v", data, err)
		}
		switch tok {
		case json.Delim('{'):
			seen := map[string]bool{}
			dup := false
			for dec.More() {
				name, _ := dec.Token()
				if seen[name.(string)] {
					dup = true
				}
				seen[name.(string)] = true
				if _, d := value(); d {
					dup = true
				}
			}
			dec.Token() // '}'
			return len(seen), dup
		case json.Delim('['):
			dup := false
			for dec.More() {
				if _, d := value(); d {
					dup = true
				}
			}
			dec.Token() // ']'
			return 0, dup
		}
		return 0, false
	}
	return value()
}

// FuzzParseObject checks the strict decoder against encoding/json and the
// oracle: it accepts exactly the UTF-8 JSON objects, nested at most
// maxJSONDepth deep, in which no object names a member twice, and then
// returns the members encoding/json sees.
func FuzzParseObject(f *testing.F) {
	for _, s := range []string{
		`{}`, `{"a":1}`, `{"a":1,"a":2}`, `{"a":{"b":1,"b":2}}`, `{"a":[{"b":1},{"b":1}]}`,
		`{"a":1,"A":2}`, `{"s\u0075b":1,"sub":2}`, `{"a":"\xff"}`, `[]`, `null`, `{"a":1} {}`,
		`{"a":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}`, `{"a":}`, ``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := parseObject(data)
		var want map[string]json.RawMessage
		isObject := utf8.Valid(data) && json.Unmarshal(data, &want) == nil && want != nil
		if !isObject {
			if err == nil {
				t.Fatalf("parseObject(%q) accepted what is not a UTF-8 JSON object", data)
			}
			return
		}
		n, dup := countMembers(t, data)
		if dup != errors.Is(err, errJSONDuplicate) {
			t.Fatalf("parseObject(%q) = %v; the oracle says duplicate = %v", data, err, dup)
		}
		if err != nil {
			if !dup && !errors.Is(err, errJSONTooDeep) {
				t.Fatalf("parseObject(%q) = %v for a UTF-8 JSON object without duplicates", data, err)
			}
			return
		}
		if len(m) != n || len(m) != len(want) {
			t.Fatalf("parseObject(%q) has %d members; the oracle counts %d, encoding/json %d", data, len(m), n, len(want))
		}
		for name, raw := range want {
			if !bytes.Equal(m[name], raw) {
				t.Fatalf("parseObject(%q)[%q] = %s; encoding/json says %s", data, name, m[name], raw)
			}
		}
	})
}
