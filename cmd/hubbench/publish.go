package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"

	"github.com/imhub/imhub/callback"
)

// publisher posts signed callbacks: group messages to G<seq mod
// Channels>, and with UserChannels every other one a one-to-one message to
// user u<…>. Each carries its send time, "t=<unix ns>", in its text.
// lastSeq numbers callbacks across every publisher of the run, from a base
// of its start time, so that neither another step nor another run within
// the hub's dedupe window repeats a message identity: the hub drops a
// repeat as a retry of the IM backend.
var lastSeq = func() *atomic.Int64 {
	var n atomic.Int64
	n.Store(time.Now().UnixMilli() * 1000)
	return &n
}()

type publisher struct {
	cfg      Config
	base     string
	client   *http.Client
	acked    atomic.Int64
	refused  atomic.Int64
	expected atomic.Int64 // deliveries the acknowledged callbacks should make
	subsOf   []int64      // subscribers of each group channel
	pad      string
	// backend, if the hub forwards, is told of each accepted callback.
	backend *backend
	// onAck, when set, is told of each callback the hub acknowledged: its
	// message number and the channel its event goes to.
	onAck func(seq int64, channel string, sent time.Time)
	// answered is how long each acknowledged callback took to be
	// answered, in microseconds.
	answeredMu sync.Mutex
	answered   *hdrhistogram.Histogram
}

func newPublisher(cfg Config, base string) *publisher {
	p := &publisher{cfg: cfg, base: base, client: &http.Client{
		Timeout:   10 * time.Second,
		Transport: &http.Transport{MaxIdleConnsPerHost: cfg.Publishers * 2},
	}, answered: hdrhistogram.New(1, int64(time.Minute/time.Microsecond), 3)}
	if cfg.Channels > 0 {
		p.subsOf = make([]int64, cfg.Channels)
		for i := range cfg.Conns {
			p.subsOf[i%cfg.Channels]++
		}
	}
	if cfg.Payload > 24 {
		p.pad = strings.Repeat("x", cfg.Payload-24)
	}
	return p
}

// run posts at cfg.Rate (or as fast as it can at rate 0) until ctx ends.
func (p *publisher) run(ctx context.Context) {
	work := make(chan struct{}, p.cfg.Publishers)
	var wg sync.WaitGroup
	for range p.cfg.Publishers {
		wg.Go(func() {
			if p.cfg.Target == targetFloor {
				p.runFloor(ctx, work)
				return
			}
			for range work {
				p.post(ctx)
			}
		})
	}
	defer func() { close(work); wg.Wait() }()
	if p.cfg.Rate == 0 {
		for ctx.Err() == nil {
			select {
			case work <- struct{}{}:
			case <-ctx.Done():
			}
		}
		return
	}
	// A ticker at up to 1kHz, with as many posts per tick as the rate
	// asks; a tick whose posts cannot be handed over is skipped, and shows
	// as a lower rate achieved.
	interval := max(time.Second/time.Duration(max(p.cfg.Rate, 1)), time.Millisecond)
	perTick := p.cfg.Rate * interval.Seconds()
	t := time.NewTicker(interval)
	defer t.Stop()
	owed := 0.0
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		owed += perTick
		for ; owed >= 1; owed-- {
			select {
			case work <- struct{}{}:
				continue
			default:
			}
			owed = 0 // the senders are behind: do not pile up
			break
		}
	}
}

// runFloor is one sender to the floor, on a connection of its own.
func (p *publisher) runFloor(ctx context.Context, work <-chan struct{}) {
	fp, err := dialFloorPublisher(ctx, strings.TrimPrefix(p.base, "floor://"))
	if err == nil {
		defer fp.conn.Close()
	}
	for range work {
		seq := lastSeq.Add(1)
		g := int64(0)
		if p.cfg.Channels > 0 {
			g = seq % int64(p.cfg.Channels)
		}
		if fp == nil || fp.publish(uint32(g), time.Now()) != nil {
			p.refused.Add(1)
			continue
		}
		p.acked.Add(1)
		if p.subsOf != nil {
			p.expected.Add(p.subsOf[g])
		}
	}
}

// postCentrifugo publishes the message through Centrifugo's HTTP API.
func (p *publisher) postCentrifugo(ctx context.Context) {
	seq := lastSeq.Add(1)
	sent := time.Now()
	_, _, channel, deliveries := p.callback(seq)
	text := fmt.Sprintf("t=%d %s", sent.UnixNano(), p.pad)
	group, _ := strings.CutPrefix(channel, "group:")
	if strings.HasPrefix(channel, "user:") {
		group = ""
	}
	body := cfPublishBody(cfChannel(channel), group, seq, text, sent)
	req, err := http.NewRequestWithContext(context.WithoutCancel(ctx), http.MethodPost, p.base+"/api/publish", bytes.NewReader(body))
	if err != nil {
		return
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-API-Key", centrifugoAPIKey)
	resp, err := p.client.Do(req)
	if err != nil {
		p.refused.Add(1)
		return
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || cfPublishOK(b) != nil {
		p.refused.Add(1)
		return
	}
	p.acked.Add(1)
	p.expected.Add(deliveries)
	if p.onAck != nil {
		p.onAck(seq, channel, sent)
	}
}

func (p *publisher) post(ctx context.Context) {
	if p.cfg.Target == targetCentrifugo {
		p.postCentrifugo(ctx)
		return
	}
	seq := lastSeq.Add(1)
	sent := time.Now()
	cmd, body, channel, deliveries := p.callback(seq)
	rt := strconv.FormatInt(time.Now().Unix(), 10)
	u := p.base + "/im/callback?SdkAppid=" + p.cfg.App + "&CallbackCommand=" + cmd +
		"&RequestTime=" + rt + "&Sign=" + callback.Sign(p.cfg.CallbackToken, rt)
	// A callback sent is let finish even when the run ends, so that what
	// the hub published is counted as acknowledged.
	req, err := http.NewRequestWithContext(context.WithoutCancel(ctx), http.MethodPost, u, strings.NewReader(body))
	if err != nil {
		return
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := p.client.Do(req)
	if err != nil {
		p.refused.Add(1)
		return
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode == http.StatusOK {
		p.answeredMu.Lock()
		_ = p.answered.RecordValue(max(time.Since(sent).Microseconds(), 1))
		p.answeredMu.Unlock()
		if p.backend != nil {
			p.backend.expect(seq)
		}
		p.acked.Add(1)
		p.expected.Add(deliveries)
		if p.onAck != nil {
			p.onAck(seq, channel, sent)
		}
	} else {
		p.refused.Add(1)
	}
}

func (p *publisher) callback(seq int64) (cmd, body, channel string, deliveries int64) {
	text := fmt.Sprintf("t=%d %s", time.Now().UnixNano(), p.pad)
	if p.cfg.UserChannels && p.cfg.Conns > 0 && (seq%2 == 0 || p.cfg.Channels == 0) {
		to := "u" + strconv.FormatInt(seq/2%int64(p.cfg.Conns), 10)
		return "C2C.CallbackAfterSendMsg", fmt.Sprintf(
			`{"From_Account":"bench","To_Account":%q,"MsgKey":"k%d","MsgSeq":%d,"MsgBody":[{"MsgType":"TIMTextElem","MsgContent":{"Text":%q}}]}`,
			to, seq, seq, text), "user:" + to, 1
	}
	g := int64(0)
	if p.cfg.Channels > 0 {
		g = seq % int64(p.cfg.Channels)
	}
	var subs int64
	if p.subsOf != nil {
		subs = p.subsOf[g]
	}
	return "Group.CallbackAfterSendMsg", fmt.Sprintf(
		`{"GroupId":"G%d","From_Account":"bench","MsgSeq":%d,"Random":%d,"MsgBody":[{"MsgType":"TIMTextElem","MsgContent":{"Text":%q}}]}`,
		g, seq, seq, text), "group:G" + strconv.FormatInt(g, 10), subs
}

// answerQuantiles are the p50 and p99 of the time the hub took to answer
// the acknowledged callbacks, in milliseconds.
func (p *publisher) answerQuantiles() (p50, p99 float64) {
	p.answeredMu.Lock()
	defer p.answeredMu.Unlock()
	return ms(p.answered.ValueAtQuantile(50)), ms(p.answered.ValueAtQuantile(99))
}
