// Package client is a Go client for the imhub WebSocket. It keeps a
// connection to one of the hub's nodes, subscribes to its channels, and
// after any disconnect (a node drained or killed, a network change) it
// reconnects and subscribes again with the last offset it saw, so that the
// handler gets every event once, in order, or is told plainly that history
// did not reach back far enough.
//
//	c := client.New(client.Config{
//		URLs:     []string{"ws://hub-a:8080/ws", "ws://hub-b:8080/ws"},
//		Token:    func(context.Context) (string, error) { return token, nil },
//		Channels: []string{"group:@TGS#2J4SZEAEL"},
//	})
//	err := c.Run(ctx, func(e client.Event) { … })
//
// For an app whose IM secret key the hub holds, Config.UserSig connects
// with the user's IM login instead of a token, handed over afresh in band
// before each UserSig ends.
package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"

	"github.com/imhub/imhub/internal/retry"
)

// Event is one event frame.
type Event struct {
	Channel string
	// Offset is the event's position in its channel, as the hub gave it.
	Offset string
	// Data is the normalized event JSON.
	Data json.RawMessage
}

// Config configures a Client.
type Config struct {
	// URLs of the hub's /ws endpoint; each reconnect tries the next.
	URLs []string
	// Token returns the JWT for a connection; it is called for each one,
	// so a token that expired (close 4002) is replaced. Exactly one of
	// Token and UserSig is set.
	Token func(ctx context.Context) (string, error)
	// UserSig connects with the user's IM login instead of a JWT; a fresh
	// UserSig is handed to the hub in band ahead of the end each states.
	UserSig *UserSig
	// RefreshAhead is how long before a UserSig's end its successor is
	// handed over; default a minute (half the life of a shorter one).
	RefreshAhead time.Duration
	// Channels to subscribe to besides the user's own, which the hub
	// subscribes at once.
	Channels []string
	// OnReset is called when history did not reach back to the last event
	// seen on channel: events between were missed. offset is where the
	// stream goes on from.
	OnReset func(channel, offset string)
	// OnError is called for "error" frames, such as a refused subscription.
	OnError func(code, message, channel string)
	// OnRemoved is called when the hub ends a subscription on its own,
	// right after the event that says why: reason "removed" (the IM says
	// the user left the group) or "destroyed" (the group was disbanded).
	// The Client does not subscribe to the channel again, after a
	// reconnect either, and forgets its offset.
	OnRemoved func(channel, reason string)
	// MinBackoff and MaxBackoff bound the wait between reconnects;
	// defaults 100ms and 5s.
	MinBackoff, MaxBackoff time.Duration
	Logger                 *slog.Logger
}

// Client is one logical subscriber across reconnects.
type Client struct {
	cfg          Config
	log          *slog.Logger
	refreshRetry time.Duration // how long after a failed refresh it is tried again

	mu      sync.Mutex
	offsets map[string]position // channel -> last event (or starting point) seen
	removed map[string]bool     // channels the hub ended: not subscribed again
	conn    *websocket.Conn
	node    string
}

type position struct {
	offset uint64
	epoch  string
	raw    string
}

// parsePosition reads an offset, "n:epoch:tag" or the older "n:epoch".
// The tag is the hub's to check: within an epoch, offsets order events.
func parsePosition(s string) (position, bool) {
	off, rest, ok := strings.Cut(s, ":")
	epoch, _, _ := strings.Cut(rest, ":")
	n, err := strconv.ParseUint(off, 10, 64)
	if !ok || err != nil {
		return position{}, false
	}
	return position{n, epoch, s}, true
}

// ErrUnauthorized is returned by Run when the hub refuses the credential
// (close 4001), or a UserSig is of another user or app than
// Config.UserSig names: retrying with the same cannot help.
var ErrUnauthorized = errors.New("hub refused the credential")

// ErrDisconnected is returned by Run when the app's backend disconnected
// the user or revoked the token through the server API (close 4010): the
// client is not wanted, and must not reconnect.
var ErrDisconnected = errors.New("disconnected by the server")

// New returns a client; Run connects it.
func New(cfg Config) *Client {
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = 100 * time.Millisecond
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = 5 * time.Second
	}
	if cfg.RefreshAhead <= 0 {
		cfg.RefreshAhead = time.Minute
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Client{cfg: cfg, log: cfg.Logger, offsets: make(map[string]position), removed: make(map[string]bool), refreshRetry: refreshRetry}
}

// Offsets returns the last offset seen per channel.
func (c *Client) Offsets() map[string]string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]string, len(c.offsets))
	for ch, p := range c.offsets {
		out[ch] = p.raw
	}
	return out
}

// Node returns the node the client is connected to now, if any.
func (c *Client) Node() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.node
}

// Run connects and calls handle for each event, from one goroutine, until
// ctx is done (it returns nil then), the credential is refused
// (ErrUnauthorized) or the server disconnects the client (ErrDisconnected).
// OnReset, OnError and OnRemoved are called from the same goroutine, in
// the order of the frames.
func (c *Client) Run(ctx context.Context, handle func(Event)) error {
	if err := c.cfg.validate(); err != nil {
		return err
	}
	backoff := time.Duration(0)
	for i := 0; ; i++ {
		url := c.cfg.URLs[i%len(c.cfg.URLs)]
		start := time.Now()
		err := c.session(ctx, url, handle)
		if ctx.Err() != nil {
			return nil
		}
		if errors.Is(err, ErrUnauthorized) {
			return err
		}
		code := websocket.CloseStatus(err)
		switch code {
		case 4001:
			return fmt.Errorf("%w: %v", ErrUnauthorized, err)
		case 4010:
			return fmt.Errorf("%w: %v", ErrDisconnected, err)
		}
		c.log.Info("hub connection ended; reconnecting", "url", url, "code", int(code), "err", err)
		switch {
		case time.Since(start) > 10*time.Second || code == websocket.StatusServiceRestart:
			// A connection that lived, or a node that is draining:
			// reconnect at once, elsewhere.
			backoff = 0
		default:
			backoff = retry.Next(backoff, c.cfg.MinBackoff, c.cfg.MaxBackoff)
		}
		retry.Sleep(ctx, retry.Jitter(backoff))
		if ctx.Err() != nil {
			return nil
		}
	}
}

// frame is every frame the client reads.
type frame struct {
	Op        string          `json:"op"`
	User      string          `json:"user"`
	Node      string          `json:"node"`
	Channel   string          `json:"channel"`
	Offset    string          `json:"offset"`
	Recovered *bool           `json:"recovered"`
	Code      string          `json:"code"`
	Reason    string          `json:"reason"`
	Message   string          `json:"message"`
	Event     json.RawMessage `json:"event"`
	ID        json.RawMessage `json:"id"`
}

// session runs one connection until it ends.
func (c *Client) session(ctx context.Context, url string, handle func(Event)) error {
	cred, err := c.credential(ctx)
	if err != nil {
		return err
	}
	dial, err := cred.dialURL(url)
	if err != nil {
		return err
	}
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	conn, _, err := websocket.Dial(dctx, dial, &websocket.DialOptions{
		HTTPHeader: http.Header{"Authorization": {cred.authorization}},
	})
	cancel()
	if err != nil {
		return err
	}
	defer conn.CloseNow()
	conn.SetReadLimit(16 << 20)

	var hello frame
	if err := readFrame(ctx, conn, &hello); err != nil {
		return err
	}
	if hello.Op != "connected" {
		return fmt.Errorf("client: first frame is %q, not connected", hello.Op)
	}
	c.log.Debug("connected", "url", url, "node", hello.Node)
	c.mu.Lock()
	c.conn, c.node = conn, hello.Node
	// The user's own channel is subscribed by the hub; asking again with
	// since recovers what it missed while away.
	channels := append([]string{"user:" + hello.User}, c.cfg.Channels...)
	subs := make([]map[string]any, 0, len(channels))
	for i, ch := range channels {
		if c.removed[ch] {
			continue
		}
		f := map[string]any{"op": "subscribe", "channel": ch, "id": i + 1}
		if p, ok := c.offsets[ch]; ok {
			f["since"] = p.raw
		} else if i == 0 {
			continue // first connection: the hub's own subscription will do
		}
		subs = append(subs, f)
	}
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		c.conn, c.node = nil, ""
		c.mu.Unlock()
	}()
	// A channel resubscribed with since may still deliver live events of
	// the old subscription before its answer; the replay that follows the
	// answer covers them, in order, so they are skipped until then.
	// The answer is told by its id: the hub's own subscription of the
	// user's channel is answered too, without one.
	awaiting := map[string]string{} // channel -> id of the since subscribe
	for _, f := range subs {
		if _, ok := f["since"]; ok {
			awaiting[f["channel"].(string)] = fmt.Sprint(f["id"])
		}
		if err := write(ctx, conn, f); err != nil {
			return err
		}
	}
	nextID := len(channels) + 1
	var retries sync.WaitGroup
	defer retries.Wait()
	rctx, stopRetries := context.WithCancel(ctx)
	defer stopRetries()
	// The refresh in band runs beside the reads, which hand it the hub's
	// answers; a stale answer left in the buffer is skipped by its id.
	refreshAnswers := make(chan frame, 4)
	if !cred.due.IsZero() {
		retries.Go(func() { c.keepFresh(rctx, conn, cred.due, refreshAnswers) })
	}
	for {
		var f frame
		if err := readFrame(ctx, conn, &f); err != nil {
			return err
		}
		switch f.Op {
		case "event":
			if _, wait := awaiting[f.Channel]; wait {
				c.log.Debug("event skipped: the replay after the answer brings it", "channel", f.Channel, "offset", f.Offset)
				continue
			}
			if c.advance(f.Channel, f.Offset) {
				handle(Event{Channel: f.Channel, Offset: f.Offset, Data: f.Event})
			} else {
				c.log.Debug("event skipped: its offset was seen", "channel", f.Channel, "offset", f.Offset)
			}
		case "subscribed":
			if id, wait := awaiting[f.Channel]; wait && id != string(f.ID) {
				continue // the answer to an earlier subscribe
			}
			delete(awaiting, f.Channel)
			c.subscribed(f)
		case "refreshed":
			answerRefresh(refreshAnswers, f)
		case "unsubscribed":
			// Unasked, with a reason: the hub ended the subscription.
			if f.Reason == "" || len(f.ID) > 0 || f.Channel == "" {
				continue
			}
			delete(awaiting, f.Channel)
			c.remove(f.Channel)
			if c.cfg.OnRemoved != nil {
				c.cfg.OnRemoved(f.Channel, f.Reason)
			}
		case "error":
			if isRefreshAnswer(f) {
				answerRefresh(refreshAnswers, f)
			}
			if id, wait := awaiting[f.Channel]; wait && id == string(f.ID) {
				delete(awaiting, f.Channel)
			}
			if c.cfg.OnError != nil {
				c.cfg.OnError(f.Code, f.Message, f.Channel)
			}
			if f.Code == "unavailable" && f.Channel != "" {
				// The hub could not reach its broker: ask again shortly.
				ch, id := f.Channel, nextID
				nextID++
				sub := map[string]any{"op": "subscribe", "channel": ch, "id": id}
				if p, ok := c.position(ch); ok {
					sub["since"] = p
					awaiting[ch] = fmt.Sprint(id)
				}
				retries.Go(func() {
					select {
					case <-rctx.Done():
						return
					case <-time.After(c.cfg.MinBackoff + rand.N(time.Second)):
					}
					if !c.isRemoved(ch) {
						_ = write(rctx, conn, sub)
					}
				})
			}
		}
	}
}

// answerRefresh hands f to the refresh waiting for it, if there is room:
// the reads never wait for the refresh.
func answerRefresh(answers chan<- frame, f frame) {
	select {
	case answers <- f:
	default:
	}
}

// remove forgets channel, which the hub ended: it is not subscribed again.
func (c *Client) remove(channel string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.removed[channel] = true
	delete(c.offsets, channel)
}

func (c *Client) isRemoved(channel string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.removed[channel]
}

func write(ctx context.Context, conn *websocket.Conn, f map[string]any) error {
	b, _ := json.Marshal(f)
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return conn.Write(wctx, websocket.MessageText, b)
}

func (c *Client) position(channel string) (string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	p, ok := c.offsets[channel]
	return p.raw, ok
}

func readFrame(ctx context.Context, conn *websocket.Conn, f *frame) error {
	_, b, err := conn.Read(ctx)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, f)
}

// advance records an event's offset and reports whether it is new: a
// resubscription with since may replay events this client already has.
func (c *Client) advance(channel, offset string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.removed[channel] {
		return false // nothing should come after its end; nothing is taken
	}
	p, ok := parsePosition(offset)
	if !ok {
		return true
	}
	last, seen := c.offsets[channel]
	if seen && last.epoch == p.epoch && p.offset <= last.offset {
		return false
	}
	c.offsets[channel] = p
	return true
}

// subscribed records where a channel starts, and reports a reset.
func (c *Client) subscribed(f frame) {
	p, ok := parsePosition(f.Offset)
	if !ok {
		return
	}
	c.mu.Lock()
	if c.removed[f.Channel] {
		c.mu.Unlock()
		return
	}
	last, seen := c.offsets[f.Channel]
	lost := f.Recovered != nil && !*f.Recovered
	if !seen || lost {
		c.offsets[f.Channel] = p
	}
	c.mu.Unlock()
	c.log.Debug("subscribed", "channel", f.Channel, "offset", f.Offset, "recovered", recoveredText(f.Recovered), "since", last.raw)
	if lost && seen && c.cfg.OnReset != nil {
		c.cfg.OnReset(f.Channel, f.Offset)
	}
}

// recoveredText is a subscribed frame's recovered for the log: absent
// when the subscribe named no offset.
func recoveredText(r *bool) string {
	if r == nil {
		return "absent"
	}
	return strconv.FormatBool(*r)
}
