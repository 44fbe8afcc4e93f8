package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"

	"github.com/imhub/imhub/internal/hubload"
)

// publisher sends a run's messages to the target at the run's rate: the
// hub's signed callbacks (hubload.Traffic), or the same messages through
// Centrifugo's publish API or to the floor. The HTTP targets' senders
// share one client.
type publisher struct {
	hubload.Publisher
	client *http.Client
}

func newPublisher(cfg Config, base string) *publisher {
	p := &publisher{client: hubload.SenderClient(cfg.Publishers)}
	p.Rate, p.Senders = cfg.Rate, cfg.Publishers
	traffic := hubload.NewTraffic(cfg.Conns, cfg.Channels, cfg.UserChannels, cfg.Payload)
	var s hubload.Sender
	switch cfg.Target {
	case targetFloor:
		// One connection to the floor for each sender.
		p.NewSender = func(ctx context.Context) (hubload.Sender, func()) {
			return newFloorSender(ctx, base, traffic)
		}
		return p
	case targetCentrifugo:
		s = &centrifugoSender{client: p.client, base: base, traffic: traffic}
	default:
		s = hubload.NewHubCallbacks(p.client, base, cfg.App, cfg.CallbackToken, traffic)
	}
	p.NewSender = hubload.Shared(s)
	return p
}

// answerTimes is how long the server took to answer each message it
// accepted, from the send to the answer: for the hub, how long an IM
// backend waits for its callback's acknowledgement. Its senders record
// into it at once.
type answerTimes struct {
	mu sync.Mutex
	h  *hdrhistogram.Histogram
}

func newAnswerTimes() *answerTimes { return &answerTimes{h: newLatencyHistogram()} }

// record is of a message answered took after it was sent.
func (a *answerTimes) record(took time.Duration) {
	us := max(took.Microseconds(), 1)
	a.mu.Lock()
	_ = a.h.RecordValue(us) // not beyond a minute: the senders give up after 10 s
	a.mu.Unlock()
}

// quantiles are the p50 and p99 of what was recorded, in milliseconds;
// 0 for none.
func (a *answerTimes) quantiles() (p50, p99 float64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return ms(a.h.ValueAtQuantile(50)), ms(a.h.ValueAtQuantile(99))
}

// floorSender is one sender to the floor, on a connection of its own.
type floorSender struct {
	fp      *floorPublisher // nil: the floor could not be reached
	traffic *hubload.Traffic
}

func newFloorSender(ctx context.Context, base string, t *hubload.Traffic) (hubload.Sender, func()) {
	fp, err := dialFloorPublisher(ctx, strings.TrimPrefix(base, "floor://"))
	if err != nil {
		return floorSender{traffic: t}, func() {}
	}
	return floorSender{fp: fp, traffic: t}, func() { fp.conn.Close() }
}

// Send publishes message seq to its group and waits for the floor to
// have written it to every subscriber.
func (s floorSender) Send(_ context.Context, seq int64, now time.Time) (int64, bool) {
	g := s.traffic.Group(seq)
	if s.fp == nil || s.fp.publish(uint32(g), now) != nil {
		return 0, false
	}
	return s.traffic.Subscribers(g), true
}

// centrifugoSender publishes each message through Centrifugo's HTTP API.
type centrifugoSender struct {
	client  *http.Client
	base    string
	traffic *hubload.Traffic
}

func (s *centrifugoSender) Send(ctx context.Context, seq int64, now time.Time) (int64, bool) {
	m := s.traffic.Message(seq, now)
	group, _ := strings.CutPrefix(m.Channel, "group:")
	if strings.HasPrefix(m.Channel, "user:") {
		group = ""
	}
	body := cfPublishBody(cfChannel(m.Channel), group, seq, m.Text, now)
	req, err := http.NewRequestWithContext(context.WithoutCancel(ctx), http.MethodPost, s.base+"/api/publish", bytes.NewReader(body))
	if err != nil {
		return 0, false
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-API-Key", centrifugoAPIKey)
	resp, err := s.client.Do(req)
	if err != nil {
		return 0, false
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || cfPublishOK(b) != nil {
		return 0, false
	}
	return m.Deliveries, true
}
