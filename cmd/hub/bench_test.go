package main

import (
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/imhub/imhub/internal/hubtest"
	"github.com/imhub/imhub/internal/wstest"
)

// BenchmarkIdleConnection measures the hub process's resident memory per
// idle, authenticated connection subscribed to its user channel and one
// group. b.N is the number of connections; run it with a fixed count:
//
//	go test -run '^$' -bench IdleConnection -benchtime 5000x ./cmd/hub
//
// The figure is the growth of the hub's RSS from before the connections to
// after, divided by their number; the clients live in the test process.
func BenchmarkIdleConnection(b *testing.B) {
	if b.N > 15000 {
		b.Fatalf("%d connections would pass the open-file limit; use -benchtime Nx with N <= 15000", b.N)
	}
	// Every connection comes from loopback: one client address.
	p := hubtest.Start(b, []string{"-dev", "-jwt-secret", clusterSecret, "-max-conns-per-ip", "100000"})
	tok := mint(b, "1400000000", "idle", false, "G")
	url := "ws://" + p.Addr + "/ws"
	warm := wstest.Dial(b, url, tok)
	warm.Read()
	time.Sleep(200 * time.Millisecond)
	before := p.RSS()
	b.ResetTimer()
	conns := make([]*wstest.Conn, 0, b.N)
	for range b.N {
		c := wstest.Dial(b, url, tok)
		c.Read() // connected
		c.Read() // subscribed user:idle
		c.Send(map[string]any{"op": "subscribe", "channel": "group:G"})
		c.Read()
		conns = append(conns, c)
	}
	b.StopTimer()
	time.Sleep(500 * time.Millisecond)
	after := p.RSS()
	b.ReportMetric(float64(after-before)/float64(b.N)/1024, "KiB/conn")
	b.ReportMetric(float64(after)/(1<<20), "MiB-rss")
	runtime.KeepAlive(conns)
	fmt.Fprintf(b.Output(), "hub RSS %d MiB before, %d MiB with %d idle connections\n", before>>20, after>>20, b.N)
}
