package tokens

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strconv"
	"time"
	"unicode/utf8"
)

// Why the strict decoder refused its input.
var (
	errJSONNotUTF8   = errors.New("not UTF-8")
	errJSONNotObject = errors.New("not a JSON object")
	errJSONDuplicate = errors.New("a JSON object names a member twice")
	errJSONTooDeep   = errors.New("JSON nested too deeply")
)

// maxJSONDepth bounds the nesting of objects and arrays in anything decoded
// strictly. Claims, introspection replies and key sets need two or three.
const maxJSONDepth = 32

// parseObject decodes data, a JSON object, into its members by exact name,
// refusing input that two readers could understand differently:
//
//   - not UTF-8 (RFC 8259 §8.1; encoding/json would replace the bad bytes
//     with U+FFFD, so the claims read would not be the bytes signed);
//   - any object, at any depth, with a duplicate member name (RFC 8259 §4
//     leaves the meaning open; encoding/json keeps the last, other parsers
//     the first, RFC 7515 §5.2 asks for a refusal);
//   - anything but one object.
//
// Members are then looked up by exact, case-sensitive name in the map:
// decoding straight into a struct would match "SUB" for "sub".
func parseObject(data []byte) (map[string]json.RawMessage, error) {
	if !utf8.Valid(data) {
		return nil, errJSONNotUTF8
	}
	if err := checkNames(data); err != nil {
		return nil, err
	}
	var members map[string]json.RawMessage
	if err := json.Unmarshal(data, &members); err != nil || members == nil {
		return nil, errJSONNotObject
	}
	return members, nil
}

// checkNames walks data token by token and refuses an object that names a
// member twice, or nesting deeper than maxJSONDepth. Other syntax errors are
// left to json.Unmarshal.
func checkNames(data []byte) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	// One entry per open object or array; an array's entry is nil. An
	// object's next token is a member name exactly when the value of its
	// previous member (or nothing) has been read, which expectName tracks.
	var open []map[string]bool
	expectName := false
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return errJSONNotObject
		}
		if expectName {
			if tok == json.Delim('}') {
				open = open[:len(open)-1]
				expectName = len(open) > 0 && open[len(open)-1] != nil
				continue
			}
			name, _ := tok.(string)
			names := open[len(open)-1]
			if names[name] {
				return errJSONDuplicate
			}
			names[name] = true
			expectName = false
			continue
		}
		switch tok {
		case json.Delim('{'):
			open = append(open, make(map[string]bool))
			expectName = true
		case json.Delim('['):
			open = append(open, nil)
		case json.Delim(']'):
			open = open[:len(open)-1]
			expectName = len(open) > 0 && open[len(open)-1] != nil
		default: // a scalar value
			expectName = len(open) > 0 && open[len(open)-1] != nil
		}
		if len(open) > maxJSONDepth {
			return errJSONTooDeep
		}
	}
}

// jsonString decodes a JSON string. Unlike json.Unmarshal into a string,
// it refuses null, which would otherwise leave "" and no error.
func jsonString(raw json.RawMessage) (string, bool) {
	var s string
	if len(raw) == 0 || raw[0] != '"' || json.Unmarshal(raw, &s) != nil {
		return "", false
	}
	return s, true
}

// optString returns m's member name as a string: "" when m has no such
// member, and false when it has one that is not a string.
func optString(m map[string]json.RawMessage, name string) (string, bool) {
	raw, present := m[name]
	if !present {
		return "", true
	}
	return jsonString(raw)
}

// stringOrList decodes a JSON string or array of strings, the two forms
// "aud" (RFC 7519 §4.1.3) and "scp" take.
func stringOrList(raw json.RawMessage) ([]string, bool) {
	if s, ok := jsonString(raw); ok {
		return []string{s}, true
	}
	var items []json.RawMessage
	if len(raw) == 0 || raw[0] != '[' || json.Unmarshal(raw, &items) != nil {
		return nil, false
	}
	list := make([]string, len(items))
	for i, item := range items {
		s, ok := jsonString(item)
		if !ok {
			return nil, false
		}
		list[i] = s
	}
	return list, true
}

// numericDate decodes an RFC 7519 §2 NumericDate: seconds since the epoch,
// an integer or not, from 0 to 2^40 (about the year 36812).
func numericDate(raw json.RawMessage) (time.Time, bool) {
	var n json.Number
	if len(raw) == 0 || raw[0] == '"' || json.Unmarshal(raw, &n) != nil {
		return time.Time{}, false
	}
	sec, err := strconv.ParseFloat(string(n), 64)
	if err != nil || sec < 0 || sec > 1<<40 {
		return time.Time{}, false
	}
	return time.Unix(int64(sec), 0), true
}
