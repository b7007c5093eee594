package server

import (
	"encoding/json"
	"testing"
)

// FuzzAppendEcho holds appendEcho to the bytes json.Marshal writes for the
// same echoMsg, for any subject and any message, valid UTF-8 or not.
func FuzzAppendEcho(f *testing.F) {
	for _, s := range []string{
		"", "hello", `quote " and \ backslash`, "<script>&amp;</script>",
		"\x00\x01\b\f\n\r\t\x1f\x7f", "é, 世界, 🎉", "\u2028\u2029", "\xff\xfe bad \xc3", "\xe2\x80",
	} {
		f.Add("alice", []byte(s))
		f.Add(s, []byte("x"))
	}
	f.Fuzz(func(t *testing.T, sub string, msg []byte) {
		want, err := json.Marshal(echoMsg{Type: "echo", Sub: sub, Data: string(msg)})
		if err != nil {
			t.Fatal(err)
		}
		if got := appendEcho(nil, sub, msg); string(got) != string(want) {
			t.Errorf("appendEcho(%q, %q)\n got %s\nwant %s", sub, msg, got, want)
		}
	})
}

// TestAppendEchoAllocs checks the point of appendEcho: with a buffer large
// enough, encoding an echo allocates nothing.
func TestAppendEchoAllocs(t *testing.T) {
	buf := make([]byte, 0, 256)
	msg := []byte("hello <world> é \u2028 \xff")
	if n := testing.AllocsPerRun(100, func() { buf = appendEcho(buf[:0], "alice", msg) }); n != 0 {
		t.Errorf("appendEcho allocates %v times per call; want 0", n)
	}
}
