package hub

import (
	"context"
	"hash/maphash"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/imhub/imhub/callback"
	"github.com/imhub/imhub/hub/auth"
	"github.com/imhub/imhub/hub/broker"
	"github.com/imhub/imhub/internal/textclip"
)

// Config configures a [Hub]. Zero fields take the defaults in brackets.
type Config struct {
	// Node names this node in "connected" frames [hostname].
	Node string
	// MaxConns is the most sessions this node holds; more are closed with
	// 4009 [100000].
	MaxConns int
	// MaxConnsPerIP is the most sessions of one client address (an IPv6
	// /64 counts as one address); more are closed with 4009 [1000]. The
	// address is the one internal/clientaddr found for the request, else
	// its peer's.
	MaxConnsPerIP int
	// ProxiesTrusted tells that client addresses may come from trusted
	// load balancers' X-Forwarded-For. Without it, a private address
	// refused for MaxConnsPerIP is logged with a hint that it may be a
	// load balancer's.
	ProxiesTrusted bool
	// MaxSubs is the most channels one session may subscribe to [256].
	MaxSubs int
	// MaxFrame is the largest client frame; larger closes with 1009 [64KiB].
	MaxFrame int64
	// SendQueue is how many frames may wait for a session; a session that
	// falls further behind is closed with 4008 [1024].
	SendQueue int
	// SendQueueBytes bounds the bytes waiting for a session, live frames
	// and replays alike: a frame to be queued while more wait closes the
	// session with 4008. A replay is let in whole once it starts, so one
	// replay larger than this is still sent [4MiB].
	SendQueueBytes int64
	// ClientRate is how many frames a second a client may send, its
	// WebSocket pings included, on average [50]. A frame past it is
	// refused with a rate_limited error (a ping, with no pong); a client
	// that goes on sending owes more and more, and is closed with 1008
	// once it owes a second's worth (at least 10 frames).
	ClientRate float64
	// ClientBurst is how many frames a client may send at once [MaxSubs
	// + 64: a client that resubscribes to all its channels on connecting
	// is not refused].
	ClientBurst int
	// PingInterval is how long a session may be silent before the hub
	// pings it [25s].
	PingInterval time.Duration
	// WriteTimeout bounds every write and ping [10s].
	WriteTimeout time.Duration
	// MaxLag, when set, bounds how far behind the live stream a session
	// may be served: a frame to be queued while the oldest one waiting was
	// queued longer ago than this closes the session with 4008, as a full
	// queue does, so that a client that cannot keep up with a busy channel
	// is let go (and catches up with since) rather than being served
	// seconds late [0: no bound but SendQueue and SendQueueBytes].
	MaxLag time.Duration
	// WriteDelay, when set, has a session's writer wait this long after
	// the first frame of a backlog before it writes, so that the frames
	// queued meanwhile leave in the same write: fewer system calls per
	// frame on busy channels, for up to this much more latency [0: write
	// at once].
	WriteDelay time.Duration
	// BrokerTimeout bounds a subscribe or history call to the broker [10s].
	BrokerTimeout time.Duration
	// AllowedOrigins are browser Origin patterns allowed besides the hub's
	// own host (path.Match syntax, in any case, against the Origin's host
	// or, for a pattern with "://", its scheme://host). A pattern that is
	// not path.Match syntax is logged by New and allows nothing; an Origin
	// with no host (null) is always refused.
	AllowedOrigins []string
	// Compression offers permessage-deflate to clients that ask for it.
	Compression bool
	// Presence is told of every session and subscription and answers the
	// presence op [none: nobody is present].
	Presence Presence
	// Revocations, when set, refuses revoked tokens at connect (4001) and
	// on refresh. A token they cannot check (Redis away) is let in and
	// checked again every RecheckEvery until they answer (RunRechecks),
	// unless RefuseUnchecked.
	Revocations Revocations
	// RefuseUnchecked refuses a connect whose token Revocations could not
	// check with 1013 (try again later), and such a refresh with an
	// unavailable error, instead of letting the token in unchecked.
	RefuseUnchecked bool
	// UserSigs, when set, admits clients with the IM's own UserSig of the
	// apps whose keys it holds (docs/protocol.md#credentials), besides the JWTs
	// of the Verifier [none: JWTs only].
	UserSigs *auth.UserSigVerifier
	// Membership, when set, holds the group subscriptions of the apps it
	// governs to the IM's own membership (docs/protocol.md#channels) [none:
	// credentials alone grant groups].
	Membership Membership
	// RecheckEvery is how often the sessions let in unchecked are checked
	// again while there are any [1s].
	RecheckEvery time.Duration
	Logger       *slog.Logger
	Metrics      *Metrics
}

// DefaultConfig returns the settings New gives the zero fields of a
// Config, for a caller that shows or starts from them (the hub command's
// flags do both). Node and ClientBurst are left zero: New derives them,
// from the host name and from MaxSubs.
func DefaultConfig() Config {
	return Config{
		MaxConns:       100000,
		MaxConnsPerIP:  1000,
		MaxSubs:        256,
		MaxFrame:       64 << 10,
		SendQueue:      1024,
		SendQueueBytes: 4 << 20,
		ClientRate:     50,
		PingInterval:   25 * time.Second,
		WriteTimeout:   10 * time.Second,
		BrokerTimeout:  10 * time.Second,
		RecheckEvery:   time.Second,
	}
}

func (c *Config) setDefaults() {
	d := DefaultConfig()
	if c.Node == "" {
		c.Node, _ = os.Hostname()
	}
	if c.MaxConns <= 0 {
		c.MaxConns = d.MaxConns
	}
	if c.MaxConnsPerIP <= 0 {
		c.MaxConnsPerIP = d.MaxConnsPerIP
	}
	if c.MaxSubs <= 0 {
		c.MaxSubs = d.MaxSubs
	}
	if c.MaxFrame <= 0 {
		c.MaxFrame = d.MaxFrame
	}
	if c.SendQueue <= 0 {
		c.SendQueue = d.SendQueue
	}
	if c.SendQueueBytes <= 0 {
		c.SendQueueBytes = d.SendQueueBytes
	}
	if c.ClientRate <= 0 {
		c.ClientRate = d.ClientRate
	}
	if c.ClientBurst <= 0 {
		c.ClientBurst = c.MaxSubs + 64
	}
	if c.PingInterval <= 0 {
		c.PingInterval = d.PingInterval
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = d.WriteTimeout
	}
	if c.RecheckEvery <= 0 {
		c.RecheckEvery = d.RecheckEvery
	}
	if c.BrokerTimeout <= 0 {
		c.BrokerTimeout = d.BrokerTimeout
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Metrics == nil {
		c.Metrics = nopMetrics()
	}
	if c.Presence == nil {
		c.Presence = nopPresence{}
	}
	c.Presence = newCachedPresence(c.Presence)
}

// nShards spreads channels over independently locked maps, so fan-out on
// one channel never waits for subscription changes on another.
const nShards = 64

// Hub is one node's sessions and subscriptions.
type Hub struct {
	cfg    Config
	broker broker.Broker
	auth   *auth.Verifier
	// origins decides which pages may connect, from AllowedOrigins.
	origins *originPolicy
	log     *slog.Logger
	m       *Metrics
	seed    maphash.Seed
	shards  [nShards]shard

	conns    atomic.Int64
	perAddr  addrLimit
	refusals *refusalLog // of perAddr
	draining atomic.Bool
	repairs  repairQueue
	replays  replayFrames

	sessMu   sync.Mutex
	sessions map[*Session]struct{}
	users    map[userKey][]*Session // the sessions by user, for Disconnect
	wg       sync.WaitGroup         // one per session
	// left is signalled each time a session leaves sessions, for a drain
	// to see that none remain without waiting out its steps.
	left chan struct{}

	// unchecked are the sessions let in with a token Revocations could
	// not check, and that token, until they answer about it (sessMu).
	unchecked map[*Session]*auth.Identity

	// streamAdmitted, when set (only tests set it), runs in the handler
	// of an SSE stream once the stream is admitted and before it opens:
	// what the hub does then (a drain, a revocation) a stream may meet
	// between its admission and the takeover of its connection.
	streamAdmitted atomic.Pointer[func()]
}

type chanKey struct{ app, channel string }

type shard struct {
	// op serializes the broker calls for this shard's channels, so that a
	// subscribe and an unsubscribe of one channel cannot cross.
	op sync.Mutex

	mu       sync.RWMutex
	channels map[chanKey]*hubChannel
}

// hubChannel is a channel some local session subscribes to.
type hubChannel struct {
	subs map[*Session]*subscription
	live bool // the broker subscription is in effect
}

// New returns a hub that subscribes through b and admits the tokens v
// accepts (none when v is nil: Config.UserSigs alone). Run b with the hub
// as its handler.
func New(cfg Config, b broker.Broker, v *auth.Verifier) *Hub {
	cfg.setDefaults()
	h := &Hub{
		cfg:       cfg,
		broker:    b,
		auth:      v,
		origins:   newOriginPolicy(cfg.AllowedOrigins, cfg.Logger),
		log:       cfg.Logger,
		m:         cfg.Metrics,
		seed:      maphash.MakeSeed(),
		sessions:  make(map[*Session]struct{}),
		users:     make(map[userKey][]*Session),
		left:      make(chan struct{}, 1),
		perAddr:   addrLimit{max: cfg.MaxConnsPerIP},
		refusals:  newRefusalLog(cfg.Logger, cfg.MaxConnsPerIP, cfg.ProxiesTrusted),
		unchecked: make(map[*Session]*auth.Identity),
	}
	for i := range h.shards {
		h.shards[i].channels = make(map[chanKey]*hubChannel)
	}
	return h
}

func (h *Hub) shard(k chanKey) *shard {
	var mh maphash.Hash
	mh.SetSeed(h.seed)
	mh.WriteString(k.app)
	mh.WriteByte(0)
	mh.WriteString(k.channel)
	return &h.shards[mh.Sum64()%nShards]
}

// HandlePublication implements broker.Handler: it encodes the frame once
// and queues the same bytes to every local session of the channel.
func (h *Hub) HandlePublication(p broker.Publication) {
	start := time.Now()
	k := chanKey{p.App, p.Channel}
	sh := h.shard(k)
	sh.mu.RLock()
	ch := sh.channels[k]
	if ch == nil || len(ch.subs) == 0 {
		sh.mu.RUnlock()
		return
	}
	frame := eventFrame(p)
	var rm *callback.MemberChange // what the event takes out of the group
	if c, ok := h.memberChange(k, p.Data); ok {
		// Before any session is sent it: a subscribe that asks after
		// this answers by it (see Session.subscribe).
		h.cfg.Membership.Saw(k.app, c)
		if c.Kind != callback.ChangeJoined {
			rm = &c
		}
	}
	n := 0
	for s, sub := range ch.subs {
		if s.deliver(sub, frame, p.Position, p.Prev, rm) {
			n++
		}
	}
	sh.mu.RUnlock()
	h.m.delivered.Add(float64(n))
	h.m.fanout.Observe(time.Since(start).Seconds())
}

// HandleReconnect implements broker.Handler. Publications made while the
// broker connection was down did not reach this node: every channel in use
// is repaired from history, so that a channel with no further traffic is
// brought up to date too.
func (h *Hub) HandleReconnect() {
	var keys []chanKey
	for i := range h.shards {
		sh := &h.shards[i]
		sh.mu.RLock()
		for k, ch := range sh.channels {
			for s, sub := range ch.subs {
				s.repairAfterReconnect(sub)
			}
			keys = append(keys, k)
		}
		sh.mu.RUnlock()
	}
	for _, k := range keys {
		h.enqueueRepair(k)
	}
	h.log.Info("broker subscriptions restored; filling gaps from history", "channels", len(keys))
}

// join adds sub of s to its channel, subscribing the node at the broker if
// it is the channel's first local session.
func (h *Hub) join(ctx context.Context, s *Session, sub *subscription) error {
	k := chanKey{s.app, sub.channel}
	sh := h.shard(k)
	sh.op.Lock()
	defer sh.op.Unlock()
	sh.mu.Lock()
	ch := sh.channels[k]
	if ch == nil {
		ch = &hubChannel{subs: make(map[*Session]*subscription)}
		sh.channels[k] = ch
	}
	// A subscription the session lost to a removal may not be taken out
	// yet (see Session.endLocked): this one takes its place, and what it
	// counted, and its own leave finds it gone.
	_, replaced := ch.subs[s]
	ch.subs[s] = sub
	live := ch.live
	sh.mu.Unlock()
	if replaced && live {
		return nil
	}
	h.m.subscriptions.Inc()
	if live {
		h.cfg.Presence.Join(k.app, k.channel, s.user)
		return nil
	}
	err := h.broker.Subscribe(ctx, k.app, k.channel)
	sh.mu.Lock()
	if err == nil {
		ch.live = true
		sh.mu.Unlock()
		h.m.channels.Inc()
		h.cfg.Presence.Join(k.app, k.channel, s.user)
		return nil
	}
	sh.mu.Unlock()
	if _, empty := h.remove(sh, k, s, sub); empty {
		// The broker may still complete the subscription later.
		h.unsubscribeBroker(k)
	}
	return err
}

// remove takes sub of s out of channel k, and the channel out of the shard
// when it was the last. The caller holds sh.op.
func (h *Hub) remove(sh *shard, k chanKey, s *Session, sub *subscription) (ch *hubChannel, empty bool) {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	ch = sh.channels[k]
	if ch == nil || ch.subs[s] != sub {
		return nil, false
	}
	delete(ch.subs, s)
	h.m.subscriptions.Dec()
	if empty = len(ch.subs) == 0; empty {
		delete(sh.channels, k)
	}
	return ch, empty
}

// leave removes sub of s from its channel, unsubscribing the node at the
// broker when no local session is left on it.
func (h *Hub) leave(s *Session, sub *subscription) {
	k := chanKey{s.app, sub.channel}
	sh := h.shard(k)
	sh.op.Lock()
	defer sh.op.Unlock()
	ch, empty := h.remove(sh, k, s, sub)
	if ch != nil {
		h.cfg.Presence.Leave(k.app, k.channel, s.user)
	}
	if empty && ch.live {
		h.m.channels.Dec()
		h.unsubscribeBroker(k)
	}
}

func (h *Hub) unsubscribeBroker(k chanKey) {
	ctx, cancel := context.WithTimeout(context.Background(), h.cfg.BrokerTimeout)
	defer cancel()
	if err := h.broker.Unsubscribe(ctx, k.app, k.channel); err != nil {
		h.log.Warn("broker unsubscribe failed", "app", k.app, "channel", textclip.Cut(k.channel, maxEcho), "err", err)
	}
}

// Drain closes every session with 1012, spread evenly over period so that
// clients do not all reconnect to the other nodes at once, and waits for
// them to end or ctx to be done. New connections are refused from the
// start. A session that ends by itself meanwhile gives up its turn, and
// the drain returns as soon as the last one has ended, however much of
// period is left.
func (h *Hub) Drain(ctx context.Context, period time.Duration) {
	h.draining.Store(true)
	h.sessMu.Lock()
	list := make([]*Session, 0, len(h.sessions))
	for s := range h.sessions {
		list = append(list, s)
	}
	h.sessMu.Unlock()
	if len(list) > 0 {
		h.log.Info("draining sessions", "sessions", len(list), "period", period)
	}
	// The first close waits one step too: readiness has failed, and the
	// load balancer gets that long to stop sending new clients here.
	step := period / time.Duration(max(len(list), 1))
	t := time.NewTimer(step)
	defer t.Stop()
	for _, s := range list {
		if ctx.Err() == nil { // past the deadline the rest go at once
			t.Reset(step)
			if !h.awaitTurn(ctx, s, t.C) {
				continue // it ended by itself
			}
		}
		s.close(CloseShuttingDown, "node shutting down, reconnect")
	}
	done := make(chan struct{})
	go func() { h.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		h.log.Warn("drain deadline passed with sessions still closing")
	}
	h.stopRepairs()
}

// awaitTurn waits for s's turn to be closed in a drain: the step (turn)
// or ctx. It reports false, at once, if s has already ended, as it does
// when s ends while it waits.
func (h *Hub) awaitTurn(ctx context.Context, s *Session, turn <-chan time.Time) bool {
	for h.holds(s) {
		select {
		case <-turn:
			return true
		case <-ctx.Done():
			return true
		case <-h.left:
		}
	}
	return false
}

// holds reports whether s is still one of the node's sessions.
func (h *Hub) holds(s *Session) bool {
	h.sessMu.Lock()
	defer h.sessMu.Unlock()
	_, ok := h.sessions[s]
	return ok
}

// sessionLeft tells a drain that a session has left the index.
func (h *Hub) sessionLeft() {
	select {
	case h.left <- struct{}{}:
	default: // one signal pending is enough: the drain looks again
	}
}

// Sessions returns how many sessions the node holds.
func (h *Hub) Sessions() int { return int(h.conns.Load()) }
