package server

import (
	"bytes"
	"runtime"
	"testing"
	"time"
)

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
