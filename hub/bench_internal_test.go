package hub

import (
	"fmt"
	"testing"
	"time"

	"github.com/imhub/imhub/hub/auth"
	"github.com/imhub/imhub/hub/broker"
)

// BenchmarkFanout measures the node's fan-out of one publication to n
// local sessions: the frame is encoded once and its bytes queued to each.
// Allocations per publication must not grow with n (beyond the amortized
// queue growth, which the benchmark keeps warm).
func BenchmarkFanout(b *testing.B) {
	for _, n := range []int{1, 100, 10000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			h := New(Config{SendQueue: 1 << 20}, broker.NewMemory(broker.Config{}), nil)
			sessions := make([]*Session, n)
			k := chanKey{"1", "group:G"}
			ch := &hubChannel{subs: make(map[*Session]*subscription, n), live: true}
			h.shard(k).channels[k] = ch
			for i := range sessions {
				s := newSession(h, nil, nil, &auth.Identity{User: fmt.Sprint(i), App: "1", Expires: time.Now().Add(time.Hour)})
				s.expires.Stop()
				s.pinger.Stop()
				s.writing = true // as if its writer were busy: frames stay queued
				s.queue = make([][]byte, 0, 64)
				sessions[i] = s
				ch.subs[s] = &subscription{channel: "group:G", sent: broker.Position{Epoch: "e"}}
			}
			pub := broker.Publication{App: "1", Channel: "group:G", Position: broker.Position{Epoch: "e"},
				Data: []byte(`{"id":"eef24da2794b48ef6e38843428b490cd","type":"group.message.sent","app":"1","time":1490686222000,"group_id":"G","body":[{"MsgType":"TIMTextElem","MsgContent":{"Text":"red packet"}}]}`)}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				pub.Offset = uint64(i + 1)
				h.HandlePublication(pub)
				if i%64 == 63 { // the writers' work, kept out of the way
					b.StopTimer()
					for _, s := range sessions {
						s.queue = s.queue[:0]
					}
					b.StartTimer()
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/delivery")
			if got := len(sessions[0].queue); got == 0 && b.N%64 != 0 {
				b.Fatalf("frames were not queued: the benchmark measures the wrong path")
			}
			if sessions[0].subs == nil || len(ch.subs[sessions[0]].pending) > 0 {
				b.Fatalf("frames were held back, not queued")
			}
		})
	}
}
