package hubload

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/imhub/imhub/callback"
)

// lastSeq numbers messages across every publisher of the process, from a
// base of its start time, so that neither another step nor another run
// within the hub's dedupe window repeats a message identity: the hub
// drops a repeat as a retry of the IM backend.
var lastSeq = func() *atomic.Int64 {
	var n atomic.Int64
	n.Store(time.Now().UnixMilli() * 1000)
	return &n
}()

// NextSeq is the process's next message number, for a message sent
// outside a Publisher; it is the MsgSeq (and Random) of the callback.
func NextSeq() int64 { return lastSeq.Add(1) }

// A Sender sends one message to the server under test: message seq, its
// send time now. It says whether the server accepted the message, and
// then how many deliveries it should make.
type Sender interface {
	Send(ctx context.Context, seq int64, now time.Time) (deliveries int64, ok bool)
}

// Publisher sends messages at Rate a second (at 0, as fast as its
// senders go) from Senders goroutines until the context given to Run
// ends, and counts what the server accepted. Its counters may be read
// while it runs.
type Publisher struct {
	Rate    float64
	Senders int
	// NewSender gives each sending goroutine its Sender, and what to call
	// once the goroutine is done with it. A Sender given to more than one
	// goroutine must be safe for concurrent use.
	NewSender func(ctx context.Context) (s Sender, done func())
	// OnAck, when set, is told of each message the server accepted, on
	// the goroutine that sent it.
	OnAck func(seq int64, sent time.Time)

	Acked    atomic.Int64 // messages the server accepted
	Refused  atomic.Int64 // messages it refused, or that did not reach it
	Expected atomic.Int64 // deliveries the accepted messages should make
}

// Run sends until ctx ends and the senders have finished the messages in
// hand.
func (p *Publisher) Run(ctx context.Context) {
	work := make(chan struct{}, p.Senders)
	var wg sync.WaitGroup
	for range p.Senders {
		wg.Go(func() { p.send(ctx, work) })
	}
	defer func() { close(work); wg.Wait() }()
	if p.Rate == 0 {
		for ctx.Err() == nil {
			select {
			case work <- struct{}{}:
			case <-ctx.Done():
			}
		}
		return
	}
	// A ticker at up to 1kHz, with as many messages per tick as the rate
	// asks; a tick whose messages cannot be handed over is skipped, and
	// shows as a lower rate achieved.
	interval := max(time.Second/time.Duration(max(p.Rate, 1)), time.Millisecond)
	perTick := p.Rate * interval.Seconds()
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

// Shared gives every sending goroutine s, which must be safe for
// concurrent use: a NewSender for a Publisher.
func Shared(s Sender) func(context.Context) (Sender, func()) {
	return func(context.Context) (Sender, func()) { return s, func() {} }
}

// send is one sending goroutine: a message for each piece of work.
func (p *Publisher) send(ctx context.Context, work <-chan struct{}) {
	s, done := p.NewSender(ctx)
	defer done()
	for range work {
		seq := NextSeq()
		sent := time.Now()
		deliveries, ok := s.Send(ctx, seq, sent)
		if !ok {
			p.Refused.Add(1)
			continue
		}
		p.Acked.Add(1)
		p.Expected.Add(deliveries)
		if p.OnAck != nil {
			p.OnAck(seq, sent)
		}
	}
}

// Traffic is what each message of a run is: a group message to
// group:G<seq mod groups>, and with user channels every other one a
// one-to-one message to user:u<seq/2 mod users>. Users u0… are the run's
// clients, client i subscribed to its user channel and to
// group:G<i mod groups>: that is whom a message is delivered to. Each
// message's text carries its send time, "t=<unix ns>", and is padded to
// about the payload size.
type Traffic struct {
	users, groups int
	userChannels  bool
	subsOf        []int64 // subscribers of each group channel
	pad           string
}

// NewTraffic is the traffic to users clients over groups group channels
// (0: none), payload bytes of text a message.
func NewTraffic(users, groups int, userChannels bool, payload int) *Traffic {
	t := &Traffic{users: users, groups: groups, userChannels: userChannels}
	if groups > 0 {
		t.subsOf = make([]int64, groups)
		for i := range users {
			t.subsOf[i%groups]++
		}
	}
	if payload > 24 {
		t.pad = strings.Repeat("x", payload-24)
	}
	return t
}

// Group is n of the channel group:G<n> that a group message seq goes to.
func (t *Traffic) Group(seq int64) int64 {
	if t.groups == 0 {
		return 0
	}
	return seq % int64(t.groups)
}

// Subscribers is the clients subscribed to group:G<group>.
func (t *Traffic) Subscribers(group int64) int64 {
	if t.subsOf == nil {
		return 0
	}
	return t.subsOf[group]
}

// user is the user message seq goes to one-to-one, if it is a one-to-one
// message.
func (t *Traffic) user(seq int64) (string, bool) {
	if !t.userChannels || t.users == 0 || (seq%2 != 0 && t.groups != 0) {
		return "", false
	}
	return "u" + strconv.FormatInt(seq/2%int64(t.users), 10), true
}

// Channel is the channel message seq's event goes to.
func (t *Traffic) Channel(seq int64) string {
	if to, ok := t.user(seq); ok {
		return "user:" + to
	}
	return "group:G" + strconv.FormatInt(t.Group(seq), 10)
}

// Message is one message as the IM's callback of it.
type Message struct {
	Command    string // its CallbackCommand
	Text       string // its text: the send time, "t=<unix ns>", and padding
	Body       string
	Channel    string // the channel its event goes to
	Deliveries int64  // the clients subscribed to that channel
}

// Message is message seq, sent at now.
func (t *Traffic) Message(seq int64, now time.Time) Message {
	text := fmt.Sprintf("t=%d %s", now.UnixNano(), t.pad)
	if to, ok := t.user(seq); ok {
		return Message{Command: "C2C.CallbackAfterSendMsg", Text: text, Body: fmt.Sprintf(
			`{"From_Account":"bench","To_Account":%q,"MsgKey":"k%d","MsgSeq":%d,"MsgBody":[{"MsgType":"TIMTextElem","MsgContent":{"Text":%q}}]}`,
			to, seq, seq, text), Channel: "user:" + to, Deliveries: 1}
	}
	g := t.Group(seq)
	return Message{Command: "Group.CallbackAfterSendMsg", Text: text, Body: fmt.Sprintf(
		`{"GroupId":"G%d","From_Account":"bench","MsgSeq":%d,"Random":%d,"MsgBody":[{"MsgType":"TIMTextElem","MsgContent":{"Text":%q}}]}`,
		g, seq, seq, text), Channel: "group:G" + strconv.FormatInt(g, 10), Deliveries: t.Subscribers(g)}
}

// CallbackQuery is the query of an IM callback of command for app, signed
// now with the app's callback token.
func CallbackQuery(app, token, command string) string {
	rt := strconv.FormatInt(time.Now().Unix(), 10)
	return "SdkAppid=" + app + "&CallbackCommand=" + command + "&RequestTime=" + rt + "&Sign=" + callback.Sign(token, rt)
}

// SenderClient is an HTTP client for senders concurrent senders: a 10 s
// timeout, and a kept-alive connection for each sender and as many spare.
func SenderClient(senders int) *http.Client {
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: senders * 2}}
}

// HubCallbacks is the Sender for a hub: it posts each message to the
// hub's /im/callback as the signed callback of the message's command, and
// the hub's 200 is its acceptance. It is safe for concurrent use.
type HubCallbacks struct {
	client           *http.Client
	base, app, token string
	traffic          *Traffic
}

// NewHubCallbacks sends the traffic's messages with client to the hub at
// base, as app's callbacks signed with its callback token.
func NewHubCallbacks(client *http.Client, base, app, token string, t *Traffic) *HubCallbacks {
	return &HubCallbacks{client: client, base: base, app: app, token: token, traffic: t}
}

// Send posts message seq. A callback sent is let finish even when ctx
// ends, so that what the hub published is counted as accepted.
func (h *HubCallbacks) Send(ctx context.Context, seq int64, now time.Time) (int64, bool) {
	m := h.traffic.Message(seq, now)
	u := h.base + "/im/callback?" + CallbackQuery(h.app, h.token, m.Command)
	req, err := http.NewRequestWithContext(context.WithoutCancel(ctx), http.MethodPost, u, strings.NewReader(m.Body))
	if err != nil {
		return 0, false
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := h.client.Do(req)
	if err != nil {
		return 0, false
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return m.Deliveries, resp.StatusCode == http.StatusOK
}
