package hub

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
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
				s := newSession(h, nil, &auth.Identity{User: fmt.Sprint(i), App: "1", Expires: time.Now().Add(time.Hour)})
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
						// As a writer would: the frames and their bytes
						// gone, so that the byte budget never closes it.
						s.queue, s.queued = s.queue[:0], 0
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

// BenchmarkReplayMemory measures what ten clients that read nothing cost
// the hub when each asks for 40 replays of a channel of 100 events of
// 12 KiB (the most that the bound of 4096 replayed frames lets wait): the
// heap their queues hold, and the bytes queued, shared or not. Run with
// -benchtime=1x.
func BenchmarkReplayMemory(b *testing.B) {
	for _, tc := range []struct {
		name   string
		budget int64
	}{{"budget=default", 0}, {"budget=none", 1 << 40}} {
		b.Run(tc.name, func(b *testing.B) {
			ctx := context.Background()
			br := broker.NewMemory(broker.Config{HistorySize: 100, HistoryTTL: time.Hour})
			h := New(Config{SendQueueBytes: tc.budget}, br, nil)
			pad := strings.Repeat("x", 12<<10)
			for i := range 100 {
				if _, err := br.Publish(ctx, broker.Message{App: "1", ID: fmt.Sprint(i), Channels: []string{"group:G"}, Data: fmt.Appendf(nil, `{"n":%d,"pad":%q}`, i, pad)}); err != nil {
					b.Fatal(err)
				}
			}
			hist, _ := br.History(ctx, "1", "group:G", nil)
			since := "0:" + hist.Latest.Epoch
			var before, after runtime.MemStats
			for b.Loop() {
				runtime.GC()
				runtime.ReadMemStats(&before)
				sessions := make([]*Session, 10)
				for i := range sessions {
					s := stuckSession(h, fmt.Sprint(i))
					s.subs["group:G"] = &subscription{channel: "group:G"}
					for range 40 {
						s.subscribe(ctx, clientFrame{Op: "subscribe", Channel: "group:G", Since: &since})
					}
					sessions[i] = s
				}
				runtime.GC()
				runtime.ReadMemStats(&after)
				queued, closed := 0, 0
				for _, s := range sessions {
					for _, f := range s.queue {
						queued += len(f)
					}
					if s.closed {
						closed++
					}
				}
				b.ReportMetric(float64(closed), "closed")
				b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/(1<<20), "heapMB")
				b.ReportMetric(float64(queued)/(1<<20), "queuedMB")
				runtime.KeepAlive(sessions)
			}
		})
	}
}

// BenchmarkHandshakeCheck measures the checks of an opening handshake
// before the upgrade: one a browser sends from an allowed page, and one
// refused for its Origin.
func BenchmarkHandshakeCheck(b *testing.B) {
	origins := newOriginPolicy([]string{"dash.example.com", "https://*.example.org"}, slog.Default())
	req := func(origin string) *http.Request {
		r := httptest.NewRequest(http.MethodGet, "http://hub.example.com/ws?token=t", nil)
		r.Header.Set("Upgrade", "websocket")
		r.Header.Set("Connection", "keep-alive, Upgrade")
		r.Header.Set("Sec-WebSocket-Version", "13")
		r.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
		r.Header.Set("Origin", origin)
		return r
	}
	for _, tc := range []struct {
		name, origin string
		ok           bool
	}{{"allowed", "https://app.example.org", true}, {"foreign", "https://evil.example", false}} {
		b.Run(tc.name, func(b *testing.B) {
			r := req(tc.origin)
			b.ReportAllocs()
			for b.Loop() {
				w := httptest.NewRecorder()
				if err := admitHandshake(w, r, origins); (err == nil) != tc.ok {
					b.Fatalf("checked %v: %v", tc.ok, err)
				}
			}
		})
	}
}

// BenchmarkUserSigConnect measures what a connect with a UserSig costs
// the hub before the session is made: reading the credential from the
// request and verifying the UserSig.
//
//	go test -run '^$' -bench UserSigConnect -benchmem ./hub
func BenchmarkUserSigConnect(b *testing.B) {
	key := []byte("the-app-s-im-secret-key-0123456789")
	sig, err := auth.SignUserSig(key, "1400000000", "jared", time.Now(), 24*time.Hour)
	if err != nil {
		b.Fatal(err)
	}
	h := New(Config{UserSigs: auth.NewUserSigVerifier(map[string][]byte{"1400000000": key})}, broker.NewMemory(broker.Config{}), nil)
	r := httptest.NewRequest("GET", "/ws?sdkappid=1400000000&userid=jared&usersig="+sig, nil)
	b.ReportAllocs()
	for b.Loop() {
		c, err := credentialOf(r)
		if err == nil {
			_, err = h.verify(c)
		}
		if err != nil {
			b.Fatal(err)
		}
	}
}
