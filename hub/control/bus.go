package control

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// Orders a [Command] carries.
const (
	OpDisconnect = "disconnect"
	OpRevoke     = "revoke"
)

// Command is one order for every node.
type Command struct {
	Op   string `json:"op"`
	App  string `json:"app"`
	User string `json:"user"`
	// Before is the revocation's issued_before, unix seconds.
	Before int64 `json:"before,omitempty"`
	// Reply, set by [Bus.Gather], is the Redis list each node pushes
	// its handler's count to.
	Reply string `json:"reply,omitempty"`
}

// BusConfig configures a [Bus].
type BusConfig struct {
	// Client is the Redis that joins the nodes; nil delivers in process.
	Client redis.UniversalClient
	// Prefix starts the pub/sub channel's name, as the broker's keys do
	// ["imhub"]. The name, "<prefix>:control", has no '{': every client
	// channel's pub/sub name is "<prefix>:{app:channel}", so no client
	// can subscribe to it or publish on it.
	Prefix string
	// Logger receives state changes [slog.Default()].
	Logger *slog.Logger
	// Subscribed, when set, is called after each subscription takes
	// effect, the first included: commands sent while this node was not
	// subscribed (before the first, or while it was lost) never reached
	// it. It runs on a goroutine of Run's own, never on the path that
	// receives commands. When it fails it is called again, after
	// retryFirst and then up to retryMax apart, until it succeeds, the
	// subscription is made again, or Run ends.
	Subscribed func(ctx context.Context) error
}

// The pauses between calls of a Subscribed that failed.
const (
	retryFirst = time.Second
	retryMax   = 30 * time.Second
)

// Bounds of [Bus.Gather]: how long it waits for the nodes' counts at
// most, and how long a node's count is kept for it. A node pushes its
// count within replyWrite.
const (
	gatherWait = 3 * time.Second
	replyTTL   = 30 * time.Second
	replyWrite = 2 * time.Second
)

// Bus delivers commands to every node's handler.
type Bus struct {
	cfg     BusConfig
	channel string
	handle  func(Command) int
	// ready is closed once the subscription is in effect.
	ready chan struct{}
	// up is whether the subscription is in effect now.
	up atomic.Bool
}

// NewBus returns a bus that delivers to handle, which acts on a command
// and returns how many sessions it closed. With Redis, Run must run.
func NewBus(cfg BusConfig, handle func(Command) int) *Bus {
	if cfg.Prefix == "" {
		cfg.Prefix = "imhub"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	b := &Bus{cfg: cfg, channel: cfg.Prefix + ":control", handle: handle, ready: make(chan struct{})}
	if cfg.Client == nil {
		close(b.ready)
		b.up.Store(true)
	}
	return b
}

// Publish sends c to every node, this one included. Without Redis it is
// handled before Publish returns; with Redis, when each node reads it.
func (b *Bus) Publish(ctx context.Context, c Command) error {
	if b.cfg.Client == nil {
		b.handle(c)
		return nil
	}
	_, err := b.send(ctx, b.cfg.Client, c)
	return err
}

// send publishes c on the control channel through via and returns how
// many subscribers received it.
func (b *Bus) send(ctx context.Context, via redis.Cmdable, c Command) (int64, error) {
	data, err := json.Marshal(c)
	if err != nil {
		return 0, fmt.Errorf("control %s: %w", c.Op, err)
	}
	n, err := via.Publish(ctx, b.channel, data).Result()
	if err != nil {
		return 0, fmt.Errorf("control %s: publish: %w", c.Op, err)
	}
	return n, nil
}

// Gather sends c to every node, as Publish does, and returns the sum of
// the counts their handlers return. It waits for as many counts as
// Redis says nodes received c, until ctx is done or for gatherWait at
// most; a node that answers later is not counted, though it acted all
// the same. An error means c could not be sent.
func (b *Bus) Gather(ctx context.Context, c Command) (int, error) {
	if b.cfg.Client == nil {
		return b.handle(c), nil
	}
	var id [12]byte
	_, _ = rand.Read(id[:])
	// No '{' in the name: no client channel's keys are named like it.
	c.Reply = b.channel + ":reply:" + hex.EncodeToString(id[:])
	receivers, err := b.send(ctx, b.receivers(ctx), c)
	if err != nil {
		return 0, err
	}
	ctx, cancel := context.WithTimeout(ctx, gatherWait)
	defer cancel()
	sum, answered := 0, int64(0)
	for answered < receivers {
		// BLPOP waits whole seconds here; ctx ends a longer wait.
		wait := max(time.Second, time.Until(deadline(ctx)).Truncate(time.Second))
		kv, err := b.cfg.Client.BLPop(ctx, wait, c.Reply).Result()
		if err != nil {
			if ctx.Err() == nil && !errors.Is(err, redis.Nil) {
				b.cfg.Logger.Warn("control channel: the nodes' counts unreadable", "op", c.Op, "err", err)
			}
			break
		}
		answered++
		n, err := strconv.Atoi(kv[1])
		if err != nil || n < 0 {
			b.cfg.Logger.Warn("control channel: a node's count is not a number", "op", c.Op, "count", kv[1])
			continue
		}
		sum += n
	}
	if answered < receivers {
		b.cfg.Logger.Warn("control channel: not every node counted in time; the sum leaves them out",
			"op", c.Op, "nodes", receivers, "counted", answered)
	}
	dctx, dcancel := context.WithTimeout(context.WithoutCancel(ctx), replyWrite)
	defer dcancel()
	_ = b.cfg.Client.Del(dctx, c.Reply).Err()
	return sum, nil
}

// deadline is ctx's deadline; Gather's contexts always have one.
func deadline(ctx context.Context) time.Time {
	d, _ := ctx.Deadline()
	return d
}

// receivers is the Redis to publish on for a count of the nodes that
// received a command. On a Redis Cluster, PUBLISH counts the subscribers
// of the cluster node it is sent to alone: the nodes subscribe on the
// primary of the control channel's slot, so Gather publishes there.
func (b *Bus) receivers(ctx context.Context) redis.Cmdable {
	if cc, ok := b.cfg.Client.(*redis.ClusterClient); ok {
		if primary, err := cc.MasterForKey(ctx, b.channel); err == nil {
			return primary
		}
	}
	return b.cfg.Client
}

// reply pushes this node's count for a command sent by Gather.
func (b *Bus) reply(ctx context.Context, c Command, n int) {
	ctx, cancel := context.WithTimeout(ctx, replyWrite)
	defer cancel()
	_, err := b.cfg.Client.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.RPush(ctx, c.Reply, n)
		p.Expire(ctx, c.Reply, replyTTL)
		return nil
	})
	if err != nil {
		b.cfg.Logger.Warn("control channel: this node's count not sent", "op", c.Op, "err", err)
	}
}

// Run delivers the commands of other nodes (and this one's) until ctx is
// done. go-redis subscribes again by itself after a lost connection.
func (b *Bus) Run(ctx context.Context) error {
	if b.cfg.Client == nil {
		return nil
	}
	ps := b.cfg.Client.Subscribe(ctx, b.channel)
	// A blocked Receive does not see ctx end; closing ps ends it.
	stopped := make(chan struct{})
	defer func() { <-stopped }()
	go func() {
		defer close(stopped)
		<-ctx.Done()
		_ = ps.Close()
	}()
	// Each subscription kicks catchUp, which owns the calls of Subscribed.
	kick := make(chan struct{}, 1)
	caught := make(chan struct{})
	defer func() { <-caught }()
	go func() {
		defer close(caught)
		b.catchUp(ctx, kick)
	}()
	first := true
	for {
		msg, err := ps.Receive(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			b.up.Store(false)
			// go-redis reconnects on the next Receive; wait a little so
			// that a Redis that is down is not asked in a tight loop.
			b.cfg.Logger.Debug("control channel: receive failed", "err", err)
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(250 * time.Millisecond):
			}
			continue
		}
		switch m := msg.(type) {
		case *redis.Subscription:
			b.up.Store(true)
			if first {
				first = false
				close(b.ready)
			} else {
				b.cfg.Logger.Info("control channel subscribed again; commands sent meanwhile were missed")
			}
			select {
			case kick <- struct{}{}:
			default:
			}
		case *redis.Message:
			var c Command
			if err := json.Unmarshal([]byte(m.Payload), &c); err != nil || c.Op == "" {
				b.cfg.Logger.Warn("control channel: unreadable command dropped", "err", err)
				continue
			}
			n := b.handle(c)
			if c.Reply != "" {
				b.reply(ctx, c, n)
			}
		}
	}
}

// catchUp calls Subscribed after each kick, and again after a failure,
// until ctx is done.
func (b *Bus) catchUp(ctx context.Context, kick <-chan struct{}) {
	if b.cfg.Subscribed == nil {
		return
	}
	retry := time.NewTimer(0)
	if !retry.Stop() {
		<-retry.C
	}
	defer retry.Stop()
	pause := retryFirst
	for {
		select {
		case <-ctx.Done():
			return
		case <-kick:
			pause = retryFirst
		case <-retry.C:
		}
		retry.Stop()
		err := b.cfg.Subscribed(ctx)
		if err == nil || ctx.Err() != nil {
			continue
		}
		b.cfg.Logger.Warn("control channel: catching up on what was missed failed; trying again", "in", pause, "err", err)
		retry.Reset(pause)
		pause = min(2*pause, retryMax)
	}
}

// Subscribed reports whether the bus receives commands now: a node that
// does not is not told to disconnect its clients, and should get none.
func (b *Bus) Subscribed() bool { return b.up.Load() }

// Ready waits until the bus receives commands, or ctx is done.
func (b *Bus) Ready(ctx context.Context) error {
	select {
	case <-b.ready:
		return nil
	case <-ctx.Done():
		return errors.New("control channel: not subscribed yet")
	}
}
