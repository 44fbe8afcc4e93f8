package broker_test

import (
	"context"
	"log/slog"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/imhub/imhub/hub/broker"
	"github.com/imhub/imhub/internal/redistest"
)

// event is a typical encoded group message, about 500 bytes.
var event = []byte(`{"id":"eef24da2794b48ef6e38843428b490cd","type":"group.message.sent","app":"1400000000","time":1490686222000,"group_id":"@TGS#2J4SZEAEL","group_type":"Public","from":"jared","operator":"admin","messages":[{"seq":123,"random":123456}],"body":[{"MsgType":"TIMTextElem","MsgContent":{"Text":"red packet"}}],"cloud_custom_data":"your cloud custom data","online_only":true,"platform":"Web","client_ip":"127.0.0.1","command":"Group.CallbackAfterSendMsg","received":1700000000123}`)

var benchConfig = broker.Config{DedupeWindow: 10 * time.Minute, HistorySize: 100, HistoryTTL: 10 * time.Minute}

// benchPublish publishes distinct events to a group channel and the app
// channel, as a group message callback does, with dedupe and history on.
func benchPublish(b *testing.B, br broker.Broker) {
	ctx := context.Background()
	b.ReportAllocs()
	b.SetBytes(int64(len(event)))
	i := 0
	for b.Loop() {
		i++
		m := broker.Message{App: "1400000000", ID: strconv.Itoa(i), Channels: []string{"group:G" + strconv.Itoa(i%100), "app"}, Data: event}
		if _, err := br.Publish(ctx, m); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkPublishMemory(b *testing.B) {
	benchPublish(b, broker.NewMemory(benchConfig))
}

// BenchmarkPublishRedis measures one publish round trip to a local
// redis-server over a unix socket: sequential, so it shows latency; the
// parallel variant shows what concurrent callbacks get through.
func BenchmarkPublishRedis(b *testing.B) {
	srv := redistest.Start(b)
	br, err := broker.NewRedis(broker.RedisConfig{Config: benchConfig, URL: srv.URL()})
	if err != nil {
		b.Fatal(err)
	}
	defer br.Close()
	benchPublish(b, br)
	reportServerCost(b, srv)
}

// reportServerCost reports the server's own time per publication (the
// scripts of its channels): steadier than the round trip on a shared
// machine.
func reportServerCost(b *testing.B, srv *redistest.Server) {
	usec, _ := redistest.CommandMicros(b, srv, "evalsha")
	b.ReportMetric(float64(usec)/float64(b.N), "server-us/op")
}

// BenchmarkPublishRedisHold is BenchmarkPublishRedis with -history-hold 10s:
// the app channel, which gets every publication, is held at ten
// times its history size, and each publication also checks the oldest
// entries' age.
func BenchmarkPublishRedisHold(b *testing.B) {
	srv := redistest.Start(b)
	cfg := benchConfig
	cfg.HistoryHold = 10 * time.Second
	br, err := broker.NewRedis(broker.RedisConfig{Config: cfg, URL: srv.URL()})
	if err != nil {
		b.Fatal(err)
	}
	defer br.Close()
	benchPublish(b, br)
	reportServerCost(b, srv)
}

func BenchmarkPublishRedisParallel(b *testing.B) {
	srv := redistest.Start(b)
	br, err := broker.NewRedis(broker.RedisConfig{Config: benchConfig, URL: srv.URL()})
	if err != nil {
		b.Fatal(err)
	}
	defer br.Close()
	b.ReportAllocs()
	b.SetParallelism(8)
	var n atomicCounter
	b.RunParallel(func(pb *testing.PB) {
		ctx := context.Background()
		for pb.Next() {
			i := n.next()
			m := broker.Message{App: "1400000000", ID: strconv.FormatUint(i, 10), Channels: []string{"group:G" + strconv.FormatUint(i%100, 10), "app"}, Data: event}
			if _, err := br.Publish(ctx, m); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

type atomicCounter struct{ n atomic.Uint64 }

func (c *atomicCounter) next() uint64 { return c.n.Add(1) }

// BenchmarkPublishMemorySteady publishes at steady state: the dedupe window
// is full and expiring (a fake clock advances 1ms a publish, the window is
// 1s) and every history ring is full.
func BenchmarkPublishMemorySteady(b *testing.B) {
	m := broker.NewMemory(broker.Config{DedupeWindow: time.Second, HistorySize: 100, HistoryTTL: time.Minute})
	now := time.Unix(0, 0)
	broker.SetClockForTest(m, func() time.Time { return now })
	ctx := context.Background()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		now = now.Add(time.Millisecond)
		msg := broker.Message{App: "1", ID: strconv.Itoa(i), Channels: []string{"group:G" + strconv.Itoa(i%10), "app"}, Data: event}
		if _, err := m.Publish(ctx, msg); err != nil {
			b.Fatal(err)
		}
	}
}

// subscribeEmpty subscribes to n distinct channels that have no
// publication, reads each one's position as a subscribe does, and leaves
// them again: what a client naming many channels costs afterwards.
func subscribeEmpty(b *testing.B, br broker.Broker, n int) {
	ctx := context.Background()
	for i := range n {
		ch := "group:empty-" + strconv.Itoa(i)
		if err := br.Subscribe(ctx, "1400000000", ch); err != nil {
			b.Fatal(err)
		}
		if _, err := br.History(ctx, "1400000000", ch, nil); err != nil {
			b.Fatal(err)
		}
		if err := br.Unsubscribe(ctx, "1400000000", ch); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEmptyChannelsMemory reports the heap the in-process broker still
// holds after 200,000 empty channels came and went. Run with -benchtime=1x.
func BenchmarkEmptyChannelsMemory(b *testing.B) {
	for b.Loop() {
		m := broker.NewMemory(benchConfig)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { _ = m.Run(ctx, nopHandler{}); close(done) }()
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		subscribeEmpty(b, m, 200_000)
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(int64(after.HeapAlloc)-int64(before.HeapAlloc))/(1<<20), "MB-kept")
		b.ReportMetric(float64(len(broker.ChannelsForTest(m))), "channels-kept")
		runtime.KeepAlive(m)
		cancel()
		<-done
	}
}

// BenchmarkEmptyChannelsRedis reports the keys and memory a Redis still
// holds after 20,000 empty channels came and went. Run with -benchtime=1x.
func BenchmarkEmptyChannelsRedis(b *testing.B) {
	srv := redistest.Start(b)
	for b.Loop() {
		br, err := broker.NewRedis(broker.RedisConfig{Config: benchConfig, URL: srv.URL(), Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { _ = br.Run(ctx, nopHandler{}); close(done) }()
		c := srv.Client()
		if err := c.FlushAll(ctx).Err(); err != nil {
			b.Fatal(err)
		}
		before := usedMemory(b, srv)
		subscribeEmpty(b, br, 20_000)
		keys, err := c.DBSize(ctx).Result()
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(keys), "keys-kept")
		b.ReportMetric(float64(usedMemory(b, srv)-before)/(1<<20), "MB-kept")
		cancel()
		<-done
		_ = br.Close()
	}
}

func usedMemory(b *testing.B, srv *redistest.Server) int64 {
	info, err := srv.Client().Info(context.Background(), "memory").Result()
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(info, "\r\n") {
		if v, ok := strings.CutPrefix(line, "used_memory:"); ok {
			n, _ := strconv.ParseInt(v, 10, 64)
			return n
		}
	}
	b.Fatal("no used_memory in INFO")
	return 0
}

type nopHandler struct{}

func (nopHandler) HandlePublication(broker.Publication) {}
func (nopHandler) HandleReconnect()                     {}
