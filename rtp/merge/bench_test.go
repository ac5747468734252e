package merge

import (
	"encoding/binary"
	"log/slog"
	"testing"
)

// BenchmarkMerger: two legs carrying the same 1200-byte packets 10 µs
// apart, leg B two packets behind A and losing one packet in 100, A one in
// 97;
// Tick runs when a deadline is due, as an owner's timer would. One op = one
// sequence number, i.e. two Pushes (the copy of the first, the duplicate
// check of the second).
func BenchmarkMerger(b *testing.B) {
	var out int
	m := New(Config{
		Skew:   ClassA,
		Logger: slog.New(slog.DiscardHandler),
		Out:    func([]byte) { out++ },
	})
	pkt, late := mkRTP(1, 0, 0, 1200), mkRTP(1, 0, 0, 1200)
	b.SetBytes(int64(len(pkt)))
	b.ReportAllocs()
	var now int64
	for i := 0; b.Loop(); i++ {
		now += 10_000
		binary.BigEndian.PutUint16(pkt[2:], uint16(i))
		if i%97 != 0 {
			m.Push(0, pkt, now)
		}
		if j := i - 2; j >= 0 && j%100 != 0 {
			binary.BigEndian.PutUint16(late[2:], uint16(j))
			m.Push(1, late, now)
		}
		if at, ok := m.NextDeadline(); ok && at <= now {
			m.Tick(now)
		}
	}
	b.StopTimer()
	m.Close()
	checkNoLeak(b, m)
	if out == 0 {
		b.Fatal("nothing merged")
	}
}
