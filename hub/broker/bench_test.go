package broker_test

import (
	"context"
	"strconv"
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
