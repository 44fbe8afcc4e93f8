package broker

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/imhub/imhub/internal/retry"
)

// errConnClosed says a subscription connection was closed while a call
// waited on it: a cluster's channels moved away from it.
var errConnClosed = errors.New("subscription connection closed")

// subConn is one pub/sub connection to one Redis node and the channels it
// carries. A single server or a Sentinel-managed primary has one; a Redis
// Cluster has one per primary, each holding the sharded subscriptions
// (SSUBSCRIBE) of the slots that primary serves.
type subConn struct {
	r       *Redis
	client  *redis.Client
	addr    string // "" for the only connection of a non-cluster Redis
	sharded bool
	up      atomic.Bool // the connection is live and its channels subscribed
	// repairWhenUp asks for HandleReconnect when the connection is first
	// up: it was given channels moved from another shard before it was.
	// Every later restoration repairs anyway.
	repairWhenUp atomic.Bool
	// repairNow asks receive for HandleReconnect now: the channels moved
	// here that a shard was slow to confirm are all confirmed.
	repairNow atomic.Bool
	// writeFailed: a command could not be written. go-redis then connects
	// again by itself, and receive must subscribe everything again.
	writeFailed atomic.Bool

	// sendMu orders the (un)subscribe commands written on the connection
	// with the record of what it should carry: see send.
	sendMu sync.Mutex

	mu sync.Mutex
	ps *redis.PubSub
	// channels are the pub/sub names the connection should carry, with
	// when each was asked for; confirmed those the server has confirmed on
	// the current connection. A name asked for and not confirmed was
	// refused (a slot that moved, a missing permission) or is on its way.
	channels  map[string]time.Time
	confirmed map[string]bool
	// unconfirmedMoves are channels moved here and not yet confirmed when
	// the move gave up waiting: once they all are, repairNow is set.
	unconfirmedMoves map[string]bool
	pongs            map[string]chan struct{} // PING payload -> sync call awaiting it
	shut             bool

	closed chan struct{}      // closed by close
	stop   context.CancelFunc // ends receive; nil until started
	done   chan struct{}      // closed when receive has returned
}

func newSubConn(r *Redis, client *redis.Client, addr string, sharded bool) *subConn {
	sc := &subConn{
		r: r, client: client, addr: addr, sharded: sharded,
		channels:         make(map[string]time.Time),
		confirmed:        make(map[string]bool),
		unconfirmedMoves: make(map[string]bool),
		pongs:            make(map[string]chan struct{}),
		closed:           make(chan struct{}),
		done:             make(chan struct{}),
	}
	sc.ps = sc.open()
	return sc
}

func (sc *subConn) open() *redis.PubSub {
	if sc.sharded {
		return sc.client.SSubscribe(context.Background())
	}
	return sc.client.Subscribe(context.Background())
}

// start runs receive until the connection is closed or ctx is done.
func (sc *subConn) start(ctx context.Context, h Handler) {
	ctx, sc.stop = context.WithCancel(ctx)
	go func() {
		defer close(sc.done)
		sc.receive(ctx, h)
	}()
}

// close stops receive, if started, and closes the connection. Calls
// waiting in sync return errConnClosed.
func (sc *subConn) close() error {
	sc.mu.Lock()
	if sc.shut {
		sc.mu.Unlock()
		return nil
	}
	sc.shut = true
	close(sc.closed)
	sc.mu.Unlock()
	if sc.stop != nil {
		sc.stop()
		<-sc.done
	}
	return sc.ps.Close()
}

// syncPending reports whether a sync call waits on the connection.
func (sc *subConn) syncPending() bool {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	return len(sc.pongs) > 0
}

// send writes name's SUBSCRIBE (SSUBSCRIBE) or UNSUBSCRIBE without waiting:
// sync does. It makes the server agree with the record: a subscribe is
// sent only while name is recorded, an unsubscribe only while it is not,
// both checked under sendMu, so that an Unsubscribe racing a move never
// leaves the channel subscribed behind it.
//
// An error of the command itself means the connection broke: go-redis
// connects again, and receive subscribes again what is recorded.
func (sc *subConn) send(ctx context.Context, name string, subscribe bool) {
	sc.sendMu.Lock()
	defer sc.sendMu.Unlock()
	sc.mu.Lock()
	_, recorded := sc.channels[name]
	ps := sc.ps
	sc.mu.Unlock()
	if recorded != subscribe {
		return
	}
	var err error
	switch {
	case subscribe && sc.sharded:
		err = ps.SSubscribe(ctx, name)
	case subscribe:
		err = ps.Subscribe(ctx, name)
	case sc.sharded:
		err = ps.SUnsubscribe(ctx, name)
	default:
		err = ps.Unsubscribe(ctx, name)
	}
	if err != nil && ctx.Err() == nil {
		sc.writeFailed.Store(true)
	}
}

// record and forget change what the connection should carry. The caller
// holds r.mu, so that they agree with r.home.
func (sc *subConn) record(name string) {
	sc.mu.Lock()
	sc.channels[name] = time.Now()
	sc.mu.Unlock()
}

func (sc *subConn) forget(name string) {
	sc.mu.Lock()
	delete(sc.channels, name)
	delete(sc.confirmed, name)
	sc.settleMoveLocked(name)
	sc.mu.Unlock()
}

// repairOnceConfirmed notes the names moved here that the shard has not
// confirmed yet: once it has confirmed them all, receive repairs from
// history.
func (sc *subConn) repairOnceConfirmed(names []string) {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	for _, n := range names {
		if _, ok := sc.channels[n]; ok && !sc.confirmed[n] {
			sc.unconfirmedMoves[n] = true
		}
	}
}

// settleMoveLocked takes name off unconfirmedMoves, confirmed or no longer
// wanted; the last one off asks for the repair now.
func (sc *subConn) settleMoveLocked(name string) {
	if sc.unconfirmedMoves[name] {
		delete(sc.unconfirmedMoves, name)
		if len(sc.unconfirmedMoves) == 0 {
			sc.repairNow.Store(true)
		}
	}
}

// state reports whether name is recorded and confirmed, and how many
// names are recorded.
func (sc *subConn) state(name string) (recorded, confirmed bool, n int) {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	_, recorded = sc.channels[name]
	return recorded, sc.confirmed[name], len(sc.channels)
}

// stale returns the recorded names that are still not confirmed after
// wait, on a connection that is up: their subscribe was refused.
func (sc *subConn) stale(wait time.Duration) []string {
	if !sc.up.Load() {
		return nil // restoring the connection subscribes them all
	}
	sc.mu.Lock()
	defer sc.mu.Unlock()
	var out []string
	for n, at := range sc.channels {
		if !sc.confirmed[n] && time.Since(at) > wait {
			out = append(out, n)
		}
	}
	return out
}

// sync waits until the connection has processed every command sent on it
// so far: it sends a PING with a payload of its own and waits for its PONG,
// which Redis answers in order. If the connection is replaced meanwhile,
// it calls fn again (to resend its command) and tries again, until ctx is
// done or the connection is closed.
func (sc *subConn) sync(ctx context.Context, fn func()) error {
	for {
		fn()
		token := "sync-" + newEpoch()
		done := make(chan struct{})
		sc.mu.Lock()
		if sc.shut {
			sc.mu.Unlock()
			return errConnClosed
		}
		sc.pongs[token] = done
		ps := sc.ps
		sc.mu.Unlock()
		_ = ps.Ping(ctx, token)
		t := time.NewTimer(2*sc.r.cfg.PingInterval + time.Second)
		select {
		case <-done:
			t.Stop()
			return nil
		case <-ctx.Done():
			t.Stop()
			sc.dropPong(token)
			return ctx.Err()
		case <-sc.closed:
			t.Stop()
			return errConnClosed
		case <-t.C:
			sc.dropPong(token)
		}
	}
}

func (sc *subConn) dropPong(token string) {
	sc.mu.Lock()
	delete(sc.pongs, token)
	sc.mu.Unlock()
}

func (sc *subConn) pong(payload string) {
	sc.mu.Lock()
	done := sc.pongs[payload]
	delete(sc.pongs, payload)
	sc.mu.Unlock()
	if done != nil {
		close(done)
	}
}

// renew replaces a connection that stopped answering with a new one. go-redis
// replaces a connection that fails, but not one that merely goes silent (a
// dead host, a moved address): that one only the unanswered PING reveals.
// The new connection subscribes when it connects, see resubscribe.
func (sc *subConn) renew() {
	sc.mu.Lock()
	old := sc.ps
	sc.ps = sc.open()
	sc.mu.Unlock()
	_ = old.Close()
}

// resubscribe sends SUBSCRIBE for what the connection should carry, at
// (re)connection. go-redis renews a lost connection's subscriptions itself,
// but only those it was given on that PubSub, and in one SSUBSCRIBE, which
// a cluster refuses (CROSSSLOT) when the channels are in different slots,
// as they usually are: each channel here has a hash tag of its own.
func (sc *subConn) resubscribe(ctx context.Context, ps *redis.PubSub) error {
	sc.sendMu.Lock()
	defer sc.sendMu.Unlock()
	sc.mu.Lock()
	names := make([]string, 0, len(sc.channels))
	for n := range sc.channels {
		names = append(names, n)
	}
	clear(sc.confirmed) // a new connection confirms again
	sc.mu.Unlock()
	if !sc.sharded {
		if len(names) == 0 {
			return nil
		}
		return ps.Subscribe(ctx, names...)
	}
	for _, n := range names {
		if err := ps.SSubscribe(ctx, n); err != nil {
			return err
		}
	}
	return nil
}

// refused reports whether err is a Redis error reply to a subscription
// command rather than a failed connection: the command's channel is then
// not confirmed and the rehome loop deals with it.
func refused(err error) bool {
	for _, p := range []string{"MOVED", "ASK", "CROSSSLOT", "NOPERM", "TRYAGAIN"} {
		if redis.HasErrorPrefix(err, p) {
			return true
		}
	}
	return false
}

// notServing reports whether err is a Redis error reply that says the
// server is there but does not serve yet: loading its data set after a
// restart, or a cluster node that has not rejoined (Redis keeps a restarted
// primary out for about two seconds). The connection is fine; the command
// is tried again shortly, with no backoff that would outlast the wait.
func notServing(err error) bool {
	for _, p := range []string{"LOADING", "CLUSTERDOWN", "MASTERDOWN", "BUSY"} {
		if redis.HasErrorPrefix(err, p) {
			return true
		}
	}
	return false
}

// servingPoll is how often a restored connection's node is asked whether
// it serves again: the repair waits for that, so the poll is what the
// clients wait beyond the node's own delay.
const servingPoll = 20 * time.Millisecond

// serves reports whether the node behind the connection serves reads and
// writes: a cluster node whose cluster state is ok, or a server that
// answers a read (it refuses one while loading). It goes through the
// command connections, which must be back too: publications and history
// reads take them.
func (sc *subConn) serves(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	if !sc.sharded {
		return sc.client.Exists(ctx, sc.r.cfg.Prefix+":serves").Err()
	}
	info, err := sc.client.ClusterInfo(ctx).Result()
	if err != nil {
		return err
	}
	if !strings.Contains(info, "cluster_state:ok") {
		return errors.New("cluster state is not ok")
	}
	return nil
}

// receive reads the connection until ctx is done, and moves its subLink
// on with what it reads.
//
// After the connection is lost, go-redis dials again on the next call and
// resubscribe subscribes every channel. The PING sent after that is
// answered only after all those SUBSCRIBEs, so its PONG marks the moment
// every channel is live again and the handler can repair what it missed.
// If the node does not serve reads yet at that moment (a cluster primary
// that has just restarted), the repair is asked for again once it does.
func (sc *subConn) receive(ctx context.Context, h Handler) {
	rc := &receiver{sc: sc, h: h, log: sc.r.log.With("node", sc.addr), link: newSubLink()}
	for ctx.Err() == nil {
		if sc.repairNow.Swap(false) {
			h.HandleReconnect()
		}
		if sc.writeFailed.Swap(false) {
			rc.lose(errors.New("a command could not be written"))
		}
		sc.mu.Lock()
		ps := sc.ps
		sc.mu.Unlock()
		if rc.link.phase == linkDown && !rc.sendBatch(ctx, ps) {
			continue
		}
		msg, err := ps.ReceiveTimeout(ctx, rc.link.readWait(sc.r.cfg.PingInterval))
		switch {
		case err == nil:
			rc.received(ctx, msg)
		case refused(err):
			rc.log.Debug("redis subscription command refused", "err", err)
			sc.r.poke()
		case notServing(err):
			// The server is back but not serving yet: see
			// linkRefusedForNow.
			rc.log.Debug("redis subscription command refused for now", "err", err)
			rc.link.refusedForNow()
		case ctx.Err() != nil:
			return
		default:
			rc.readFailed(ctx, ps, err)
		}
	}
}

// receiver is one run of receive: what it acts on, and where the
// connection stands.
type receiver struct {
	sc   *subConn
	h    Handler
	log  *slog.Logger
	link subLink
}

// sendBatch sends what restores the connection: every channel, then a
// PING. It reports whether that went out; if not, it has waited a backoff.
func (rc *receiver) sendBatch(ctx context.Context, ps *redis.PubSub) bool {
	rc.link.redialing()
	err := rc.sc.resubscribe(ctx, ps)
	if err == nil {
		err = ps.Ping(ctx, healthPing)
	}
	if err != nil {
		rc.sc.r.poke()
		retry.Sleep(ctx, rc.link.backOff())
		return false
	}
	rc.link.resubscribed(time.Now(), rc.sc.count())
	return true
}

// received handles what the connection brought.
func (rc *receiver) received(ctx context.Context, msg any) {
	rc.link.heard(time.Now())
	// Publications may flow on other channels before the node serves
	// reads: the check does not wait for a quiet moment.
	rc.checkServing(ctx)
	switch m := msg.(type) {
	case *redis.Pong:
		if m.Payload != healthPing {
			rc.sc.pong(m.Payload)
			return
		}
		switch rc.link.healthPong() {
		case pongRestored:
			rc.restore(ctx)
		case pongBatchAgain:
			retry.Sleep(ctx, rc.link.batchAgain())
		}
	case *redis.Message:
		if pub, ok := rc.sc.r.parse(m); ok {
			rc.h.HandlePublication(pub)
		} else {
			rc.log.Error("malformed publication", "channel", m.Channel)
		}
	case *redis.Subscription:
		rc.sc.confirm(ctx, m)
	}
}

// readFailed handles a read that failed with err, a timeout included.
func (rc *receiver) readFailed(ctx context.Context, ps *redis.PubSub, err error) {
	rc.checkServing(ctx)
	var nerr interface{ Timeout() bool }
	if errors.As(err, &nerr) && nerr.Timeout() {
		switch rc.link.timedOut(time.Now(), rc.sc.r.cfg.PingInterval) {
		case silenceBatchDone:
			retry.Sleep(ctx, rc.link.batchAgain())
			return
		case silenceShort:
			return
		case silencePingDue:
			if ps.Ping(ctx, healthPing) == nil {
				rc.link.pingSent(time.Now())
				return
			}
		case silenceUnanswered:
			err = errors.New("PING unanswered")
			rc.sc.renew()
		}
	}
	rc.lose(err)
	retry.Sleep(ctx, rc.link.backOff())
}

// lose marks the connection lost through err, and tells the cluster's
// rehome loop, as its channels may be served elsewhere now.
func (rc *receiver) lose(err error) {
	if rc.link.lost(time.Now()) {
		rc.log.Warn("redis subscription connection lost", "err", err)
		rc.sc.up.Store(false)
	}
	rc.sc.r.poke()
}

// restore marks the connection up again and asks the handler to repair
// what it missed: after a loss, or on a first connection made for
// channels moved to it. The repair starts now, and again once the node
// serves if it does not yet.
func (rc *receiver) restore(ctx context.Context) {
	again := rc.link.restored(time.Now())
	rc.sc.up.Store(true)
	if again || rc.sc.repairWhenUp.Swap(false) {
		rc.h.HandleReconnect()
		rc.link.servingAnswered(rc.sc.serves(ctx) == nil)
	}
	if again {
		t := rc.link.times
		rc.log.Info("redis subscription connection restored",
			"down", t.restored.Sub(t.lost).Round(time.Millisecond).String(),
			"redials", t.attempts,
			"resubscribe", t.restored.Sub(t.redialed).Round(time.Millisecond).String(),
			"channels", t.channels,
			"serving", rc.link.serving)
	}
}

// checkServing asks the node, when it is due, whether it serves again;
// when it does, the repair is asked for again.
func (rc *receiver) checkServing(ctx context.Context) {
	if !rc.link.servingCheckDue(time.Now()) || rc.sc.serves(ctx) != nil {
		return
	}
	rc.link.servingAnswered(true)
	rc.log.Info("redis node serves again; filling gaps from history", "after_restored", time.Since(rc.link.times.restored).Round(time.Millisecond).String())
	rc.h.HandleReconnect()
}

// count is how many channels the connection should carry.
func (sc *subConn) count() int {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	return len(sc.channels)
}

// confirm records a (un)subscribe confirmation. A cluster unsubscribes a
// sharded channel by itself when its slot moves to another primary: a
// channel still wanted here is then homed again. A channel confirmed that
// is no longer wanted (go-redis subscribes again, after a reconnect, names
// it was given) is unsubscribed.
func (sc *subConn) confirm(ctx context.Context, m *redis.Subscription) {
	sc.mu.Lock()
	_, wanted := sc.channels[m.Channel]
	subscribed := m.Kind == "subscribe" || m.Kind == "ssubscribe"
	switch {
	case subscribed && wanted:
		sc.confirmed[m.Channel] = true
		sc.settleMoveLocked(m.Channel)
	case !subscribed:
		delete(sc.confirmed, m.Channel)
	}
	sc.mu.Unlock()
	switch {
	case subscribed && !wanted:
		sc.send(ctx, m.Channel, false)
	case !subscribed && wanted && m.Kind == "sunsubscribe":
		sc.r.poke()
	}
}

// healthPing is the payload of the receive loop's own PINGs.
const healthPing = "health"
