package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/imhub/imhub/hub/membership"
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

// imBenchNodes starts the stand-in IM and two hub processes on one Redis
// whose app imApp follows it, with extra flags, and returns them ready.
func imBenchNodes(b *testing.B, extra ...string) (*imstub.Server, []*hubtest.Process) {
	stub, imURL := startIM(b)
	srv := redistest.Start(b)
	var nodes []*hubtest.Process
	for _, name := range []string{"hub-a", "hub-b"} {
		args := append(imArgs(imURL), "-node", name, "-redis", srv.URL())
		nodes = append(nodes, hubtest.Start(b, append(args, extra...)))
	}
	for _, p := range nodes {
		p.WaitReady(200)
	}
	return stub, nodes
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
	stub, nodes := imBenchNodes(b)
	a, node := nodes[0], nodes[1]
	sig := userSig(b, "jared")
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

// BenchmarkIMReconnectStorm counts the IM's get_role_in_group calls of a
// reconnect storm: clients users, each a member of every one of groups
// groups, connect at once with their UserSigs to two hub processes on one
// Redis (every other one to each) and subscribe to all their groups; then
// they all go and do it again, within the membership TTL. The IM is a
// stand-in that counts the calls and the accounts they name. Each of b.N
// storms is of groups of its own, which no node has asked about yet:
//
//	go test -run '^$' -bench IMReconnectStorm -benchtime 5x ./cmd/hub
//
// It reports, of the first storms: the calls per group, the most one group
// took, the calls per group per batch window the storm lasted (the hub
// gathers a group's users for membership.DefaultWindow before it asks),
// how long a storm took from the first dial to the last subscription, and
// the accounts a group's calls named over its members (1: no user asked
// about twice); and the calls of the second storms in all.
func BenchmarkIMReconnectStorm(b *testing.B) {
	for _, size := range []struct{ clients, groups int }{{200, 10}, {1000, 4}} {
		b.Run(fmt.Sprintf("%dx%d", size.clients, size.groups), func(b *testing.B) {
			imReconnectStorm(b, size.clients, size.groups)
		})
	}
}

func imReconnectStorm(b *testing.B, clients, groups int) {
	// Every client comes from loopback: one client address.
	stub, nodes := imBenchNodes(b, "-max-conns-per-ip", "100000")
	users := make([]string, clients)
	sigs := make([]string, clients)
	for i := range users {
		users[i] = fmt.Sprint("u", i)
		sigs[i] = userSig(b, users[i])
	}
	var (
		first, most, asked, second int
		windows                    float64 // the batch windows the first storms lasted
	)
	b.ResetTimer()
	for n := range b.N {
		names := make([]string, groups)
		for g := range names {
			names[g] = fmt.Sprintf("S%dG%d", n, g)
			stub.CreateGroup(imApp, names[g], "Public", users[0], users[1:]...)
		}
		// count is what the IM was asked about names so far: the calls, the
		// accounts they named, and the most calls of one group.
		count := func() (calls, accounts, top int) {
			for _, g := range names {
				c, a := stub.Calls(imApp, g)
				calls, accounts, top = calls+c, accounts+a, max(top, c)
			}
			return calls, accounts, top
		}
		took, err := imStorm(nodes, users, sigs, names)
		if err != nil {
			b.Fatalf("first storm: %v", err)
		}
		windows += float64(took) / float64(membership.DefaultWindow)
		made, accounts, top := count()
		first, asked, most = first+made, asked+accounts, max(most, top)
		if _, err := imStorm(nodes, users, sigs, names); err != nil {
			b.Fatalf("second storm: %v", err)
		}
		again, _, _ := count()
		second += again - made
	}
	b.StopTimer()
	b.ReportMetric(float64(first)/float64(b.N*groups), "calls/group")
	b.ReportMetric(float64(most), "max-calls/group")
	b.ReportMetric(float64(first)/(float64(groups)*windows), "calls/group/window")
	b.ReportMetric(windows*float64(membership.DefaultWindow)/float64(b.N)/float64(time.Millisecond), "storm-ms")
	b.ReportMetric(float64(asked)/float64(b.N*groups*clients), "asks/member")
	b.ReportMetric(float64(second), "calls-2nd-storm")
	b.ReportMetric(0, "ns/op")
}

// imStorm connects every user at once, each to one of nodes in turn with
// its UserSig, subscribes it to every group of names, and waits for every
// subscription; then it closes them all. It returns the first thing that
// went wrong, a refused subscribe included, and how long it took from
// the first dial to the last subscription.
func imStorm(nodes []*hubtest.Process, users, sigs, names []string) (time.Duration, error) {
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
		conns = make([]*websocket.Conn, len(users))
	)
	fail := func(err error) {
		mu.Lock()
		defer mu.Unlock()
		if first == nil {
			first = err
		}
	}
	start := time.Now()
	for i, u := range users {
		wg.Go(func() {
			c, err := stormClient(nodes[i%len(nodes)], u, sigs[i], names)
			conns[i] = c
			if err != nil {
				fail(fmt.Errorf("%s: %w", u, err))
			}
		})
	}
	wg.Wait()
	took := time.Since(start)
	for _, c := range conns {
		if c != nil {
			_ = c.CloseNow()
		}
	}
	return took, first
}

// stormClient is one client of a storm: it connects as user and
// subscribes to every group of names, and returns once each is
// subscribed.
func stormClient(p *hubtest.Process, user, sig string, names []string) (*websocket.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	q := url.Values{"sdkappid": {imApp}, "userid": {user}, "usersig": {sig}}
	c, _, err := websocket.Dial(ctx, "ws://"+p.Addr+"/ws?"+q.Encode(), nil)
	if err != nil {
		return nil, err
	}
	for _, g := range names {
		frame, _ := json.Marshal(map[string]any{"op": "subscribe", "channel": "group:" + g})
		if err := c.Write(ctx, websocket.MessageText, frame); err != nil {
			return c, err
		}
	}
	for left := len(names); left > 0; {
		_, b, err := c.Read(ctx)
		if err != nil {
			return c, err
		}
		var f wstest.Frame
		if err := json.Unmarshal(b, &f); err != nil {
			return c, err
		}
		switch {
		case f.Op == "error":
			return c, fmt.Errorf("refused: %s", b)
		case f.Op == "subscribed" && strings.HasPrefix(f.Channel, "group:"):
			left--
		}
	}
	return c, nil
}
