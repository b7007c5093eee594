package server

import (
	"bytes"
	"encoding/json"
	"net"
	"strings"
	"testing"
	"time"
)

// FuzzAppendEcho holds appendEcho to the bytes encoding/json writes for the
// same echoMsg without HTML escaping, and echoLen to their length, for any
// subject and any message, valid UTF-8 or not.
func FuzzAppendEcho(f *testing.F) {
	for _, s := range []string{
		"", "hello", `quote " and \ backslash`, "<script>&amp;</script>",
		"\x00\x01\b\f\n\r\t\x1f\x7f", "é, 世界, 🎉", "\u2028\u2029", "\xff\xfe bad \xc3", "\xe2\x80",
	} {
		f.Add("alice", []byte(s))
		f.Add(s, []byte("x"))
	}
	f.Fuzz(func(t *testing.T, sub string, msg []byte) {
		want := encodingJSON(t, echoMsg{Type: "echo", Sub: sub, Data: string(msg)})
		got := appendEcho(nil, sub, msg)
		if string(got) != string(want) {
			t.Errorf("appendEcho(%q, %q)\n got %s\nwant %s", sub, msg, got, want)
		}
		if n := echoLen(sub, msg); n != len(want) {
			t.Errorf("echoLen(%q, %q) = %d; want %d", sub, msg, n, len(want))
		}
	})
}

// encodingJSON is v as encoding/json writes it without HTML escaping.
func encodingJSON(t testing.TB, v any) []byte {
	t.Helper()
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		t.Fatal(err)
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n"))
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

// TestEchoInPieces: an echo larger than maxPooledFrame, here one that
// escaping makes six times its message, goes out as one frame written in
// pieces of at most maxPooledFrame bytes, so that a client that does not
// read holds the server to one piece; the pieces join to the frame
// encoding/json's bytes make, characters intact however the pieces cut
// the message; and they are of about equal size, never a large piece and
// a sliver.
func TestEchoInPieces(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		msg  string
	}{
		{"small", "hello"},
		{"just over one piece", strings.Repeat("x", 16<<10)},
		{"control bytes, six each", strings.Repeat("\x01", 64<<10-1)},
		{"four-byte characters", strings.Repeat("🎉", 16<<10-1)},
		{"mixed", strings.Repeat("a\x01é\u2028🎉<", 5000)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			nc := &recordConn{}
			c := &session{s: New(Config{Validator: noTokens{}}), nc: nc}
			c.a.p.Subject = "alice"
			if err := c.sendEcho([]byte(tc.msg)); err != nil {
				t.Fatal(err)
			}
			want := encodingJSON(t, echoMsg{Type: "echo", Sub: "alice", Data: tc.msg})
			want = append(appendFrameHeader(nil, opText, len(want)), want...)
			if got := bytes.Join(nc.writes, nil); !bytes.Equal(got, want) {
				t.Errorf("echo of %d bytes: frame of %d bytes differs from encoding/json's %d", len(tc.msg), len(got), len(want))
			}
			largest := 0
			for _, w := range nc.writes {
				largest = max(largest, len(w))
			}
			for i, w := range nc.writes {
				if len(w) > maxPooledFrame || 4*len(w) < largest {
					t.Errorf("write %d of %d is %d bytes; want at most %d, and at least a quarter of the largest (%d)",
						i+1, len(nc.writes), len(w), maxPooledFrame, largest)
				}
			}
			if len(want) <= maxPooledFrame && len(nc.writes) != 1 {
				t.Errorf("echo of %d bytes took %d writes; want 1", len(want), len(nc.writes))
			}
		})
	}
}

// recordConn is a net.Conn that records what is written to it.
type recordConn struct {
	net.Conn // nil: only the methods below are called
	writes   [][]byte
}

func (c *recordConn) Write(p []byte) (int, error) {
	c.writes = append(c.writes, bytes.Clone(p))
	return len(p), nil
}

func (c *recordConn) SetWriteDeadline(time.Time) error { return nil }
