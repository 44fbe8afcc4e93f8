package main

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/imhub/imhub/hub/auth"
	"github.com/imhub/imhub/internal/hubtest"
	"github.com/imhub/imhub/internal/imstub"
	"github.com/imhub/imhub/internal/redistest"
	"github.com/imhub/imhub/internal/ssetest"
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

// BenchmarkIdleSSEStream measures, as BenchmarkIdleConnection does, the
// hub process's resident memory per idle SSE stream of its user channel
// and one group. b.N is the number of streams; run it with a fixed count:
//
//	go test -run '^$' -bench IdleSSEStream -benchtime 5000x ./cmd/hub
func BenchmarkIdleSSEStream(b *testing.B) {
	if b.N > 15000 {
		b.Fatalf("%d streams would pass the open-file limit; use -benchtime Nx with N <= 15000", b.N)
	}
	p := hubtest.Start(b, []string{"-dev", "-jwt-secret", clusterSecret, "-max-conns-per-ip", "100000"})
	tok := mint(b, "1400000000", "idle", false, "G")
	url := p.URL("/sse?channel=user:idle&channel=group:G&token=" + tok)
	warm := ssetest.Open(b, url, nil)
	warm.Read()
	time.Sleep(200 * time.Millisecond)
	before := p.RSS()
	b.ResetTimer()
	streams := make([]*ssetest.Stream, 0, b.N)
	for range b.N {
		s := ssetest.Open(b, url, nil)
		s.ReadEvent("subscribed") // user:idle
		s.ReadEvent("subscribed") // group:G
		streams = append(streams, s)
	}
	b.StopTimer()
	time.Sleep(500 * time.Millisecond)
	after := p.RSS()
	b.ReportMetric(float64(after-before)/float64(b.N)/1024, "KiB/stream")
	b.ReportMetric(float64(after)/(1<<20), "MiB-rss")
	runtime.KeepAlive(streams)
	fmt.Fprintf(b.Output(), "hub RSS %d MiB before, %d MiB with %d idle streams\n", before>>20, after>>20, b.N)
}

// BenchmarkIMRemovalAcrossNodes measures, over b.N exits, the time from
// the answer to a Group.CallbackAfterMemberExit posted to node A to the
// removed member's session on node B reading its unsubscribed frame: two
// hub processes on one Redis, the IM a stand-in. Each exit is of a group
// of its own, which the member subscribed to on B first. Run it with a
// fixed count:
//
//	go test -run '^$' -bench IMRemovalAcrossNodes -benchtime 200x ./cmd/hub
//
// It reports the median and the 99th percentile, in milliseconds.
func BenchmarkIMRemovalAcrossNodes(b *testing.B) {
	stub := imstub.New(map[string][]byte{imApp: []byte(imKey)}, "administrator")
	im := httptest.NewServer(stub)
	b.Cleanup(im.Close)
	srv := redistest.Start(b)
	var nodes []*hubtest.Process
	for _, name := range []string{"hub-a", "hub-b"} {
		nodes = append(nodes, hubtest.Start(b, append(imArgs(im.URL), "-node", name, "-redis", srv.URL())))
	}
	for _, p := range nodes {
		p.WaitReady(200)
	}
	a, node := nodes[0], nodes[1]
	sig, err := auth.SignUserSig([]byte(imKey), imApp, "jared", time.Now(), time.Hour)
	if err != nil {
		b.Fatal(err)
	}
	c := wstest.Dial(b, "ws://"+node.Addr+"/ws?sdkappid="+imApp+"&userid=jared&usersig="+url.QueryEscape(sig), "")
	c.Read() // connected
	c.Read() // subscribed user:jared
	took := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := range b.N {
		group := fmt.Sprintf("B%d", i)
		stub.CreateGroup(imApp, group, "Public", "leckie", "jared")
		c.Send(map[string]any{"op": "subscribe", "channel": "group:" + group})
		for { // past user:jared's copy of the last exit
			f := c.Read()
			if f.Channel != "group:"+group {
				continue
			}
			if f.Op != "subscribed" {
				b.Fatalf("subscribe %s: %s", group, f.Raw)
			}
			break
		}
		resp, err := http.Post(a.URL("/im/callback?SdkAppid="+imApp+"&CallbackCommand=Group.CallbackAfterMemberExit"), "application/json",
			strings.NewReader(fmt.Sprintf(`{"GroupId":%q,"Type":"Public","ExitType":"Kicked","Operator_Account":"leckie","ExitMemberList":[{"Member_Account":"jared"}]}`, group)))
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		answered := time.Now()
		for {
			f := c.Read()
			if f.Op == "unsubscribed" && f.Channel == "group:"+group {
				took = append(took, time.Since(answered))
				break
			}
		}
	}
	b.StopTimer()
	slices.Sort(took)
	ms := func(q float64) float64 { return float64(took[int(q*float64(len(took)-1))]) / float64(time.Millisecond) }
	b.ReportMetric(ms(0.5), "p50-ms")
	b.ReportMetric(ms(0.99), "p99-ms")
	b.ReportMetric(0, "ns/op")
}
