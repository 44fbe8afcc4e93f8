package broker

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

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

	mu       sync.Mutex
	ps       *redis.PubSub
	channels map[string]struct{}      // pub/sub names, to renew a dead connection with
	pongs    map[string]chan struct{} // PING payload -> sync call awaiting it

	stop context.CancelFunc // ends receive; nil until started
	done chan struct{}      // closed when receive has returned
}

func newSubConn(r *Redis, client *redis.Client, addr string, sharded bool) *subConn {
	sc := &subConn{
		r: r, client: client, addr: addr, sharded: sharded,
		channels: make(map[string]struct{}),
		pongs:    make(map[string]chan struct{}),
		done:     make(chan struct{}),
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

// start runs receive until stop is called.
func (sc *subConn) start(ctx context.Context, h Handler) {
	ctx, sc.stop = context.WithCancel(ctx)
	go func() {
		defer close(sc.done)
		sc.receive(ctx, h)
	}()
}

// close stops receive, if started, and closes the connection.
func (sc *subConn) close() error {
	if sc.stop != nil {
		sc.stop()
		<-sc.done
	}
	sc.mu.Lock()
	defer sc.mu.Unlock()
	return sc.ps.Close()
}

// add records name and sends its SUBSCRIBE; remove forgets it and sends
// UNSUBSCRIBE. Neither waits: sync does. Errors of the command itself mean
// the connection broke, and a new connection subscribes to what is
// recorded.
func (sc *subConn) add(ctx context.Context, name string) {
	sc.mu.Lock()
	sc.channels[name] = struct{}{}
	ps := sc.ps
	sc.mu.Unlock()
	if sc.sharded {
		_ = ps.SSubscribe(ctx, name)
	} else {
		_ = ps.Subscribe(ctx, name)
	}
}

func (sc *subConn) remove(ctx context.Context, name string) {
	sc.mu.Lock()
	delete(sc.channels, name)
	ps := sc.ps
	sc.mu.Unlock()
	if sc.sharded {
		_ = ps.SUnsubscribe(ctx, name)
	} else {
		_ = ps.Unsubscribe(ctx, name)
	}
}

// forget forgets name without telling the server.
func (sc *subConn) forget(name string) {
	sc.mu.Lock()
	delete(sc.channels, name)
	sc.mu.Unlock()
}

// has reports whether name is recorded, and how many names are.
func (sc *subConn) has(name string) (bool, int) {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	_, ok := sc.channels[name]
	return ok, len(sc.channels)
}

// sync waits until the connection has processed every command sent on it
// so far: it sends a PING with a payload of its own and waits for its PONG,
// which Redis answers in order. If the connection is replaced meanwhile,
// it resends fn's command on the new one and tries again, until ctx is
// done.
func (sc *subConn) sync(ctx context.Context, fn func()) error {
	for {
		fn()
		token := "sync-" + newEpoch()
		done := make(chan struct{})
		sc.mu.Lock()
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

// renew replaces a connection that stopped answering with a new one
// subscribed to every channel (a sharded one subscribes when it connects,
// see resubscribe). go-redis replaces a connection that fails,
// but not one that merely goes silent (a dead host, a moved address): that
// one only the unanswered PING reveals.
func (sc *subConn) renew(ctx context.Context) {
	sc.mu.Lock()
	old := sc.ps
	sc.ps = sc.open()
	names := make([]string, 0, len(sc.channels))
	for n := range sc.channels {
		names = append(names, n)
	}
	ps := sc.ps
	sc.mu.Unlock()
	_ = old.Close()
	if len(names) > 0 && !sc.sharded {
		// Records the channels even if Redis is unreachable now; they are
		// subscribed when the connection is made.
		sctx, cancel := context.WithTimeout(ctx, sc.r.cfg.PingInterval)
		if sc.sharded {
			_ = ps.SSubscribe(sctx, names...)
		} else {
			_ = ps.Subscribe(sctx, names...)
		}
		cancel()
	}
}

// receive reads the connection until ctx is done.
//
// After the connection is lost, go-redis dials again and re-subscribes
// every channel on the next call. The PING sent after that is answered only
// after all those SUBSCRIBEs, so its PONG marks the moment every channel is
// live again and the handler can repair what it missed.
func (sc *subConn) receive(ctx context.Context, h Handler) {
	log := sc.r.log.With("node", sc.addr)
	lost, backoff := true, time.Duration(0)
	first := true
	awaiting := false // a health PING is unanswered
	for ctx.Err() == nil {
		sc.mu.Lock()
		ps := sc.ps
		sc.mu.Unlock()
		if lost {
			err := sc.resubscribe(ctx, ps)
			if err == nil {
				err = ps.Ping(ctx, healthPing)
			}
			if err != nil {
				sc.r.lost(sc)
				backoff = nextBackoff(backoff)
				sleep(ctx, backoff)
				continue
			}
			awaiting = true
		}
		msg, err := ps.ReceiveTimeout(ctx, sc.r.cfg.PingInterval)
		var rerr redis.Error
		if errors.As(err, &rerr) {
			// An error reply, not a broken connection: a bulk SSUBSCRIBE
			// across slots (CROSSSLOT) that resubscribe makes up for, or a
			// slot that moved (MOVED), which the rehome loop follows.
			log.Debug("redis subscription command refused", "err", err)
			sc.r.moved(sc)
			continue
		}
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			var nerr interface{ Timeout() bool }
			timeout := errors.As(err, &nerr) && nerr.Timeout()
			switch {
			case timeout && !awaiting:
				// Quiet connection: prove it alive.
				if err := ps.Ping(ctx, healthPing); err == nil {
					awaiting = true
					continue
				}
			case timeout:
				err = errors.New("PING unanswered")
				sc.renew(ctx)
			}
			if !lost {
				log.Warn("redis subscription connection lost", "err", err)
				sc.up.Store(false)
			}
			sc.r.lost(sc)
			lost, awaiting = true, false
			backoff = nextBackoff(backoff)
			sleep(ctx, backoff)
			continue
		}
		awaiting = false // anything received proves the connection alive
		switch m := msg.(type) {
		case *redis.Pong:
			if m.Payload != healthPing {
				sc.pong(m.Payload)
			}
			if lost {
				lost, backoff = false, 0
				sc.up.Store(true)
				if !first {
					log.Info("redis subscription connection restored")
					h.HandleReconnect()
				}
				first = false
			}
		case *redis.Message:
			if pub, ok := sc.r.parse(m); ok {
				h.HandlePublication(pub)
			} else {
				log.Error("malformed publication", "channel", m.Channel)
			}
		case *redis.Subscription:
			// A cluster unsubscribes a sharded channel by itself when its
			// slot moves to another primary.
			if m.Kind == "sunsubscribe" {
				if ok, _ := sc.has(m.Channel); ok {
					sc.r.moved(sc)
				}
			}
		}
	}
}

// resubscribe sends SSUBSCRIBE for each channel of a sharded connection
// that is not yet known to be live. go-redis renews a lost connection's
// subscriptions itself, but in one SSUBSCRIBE, which a cluster refuses
// (CROSSSLOT) when the channels are in different slots, as they usually
// are: each channel here has a hash tag of its own.
func (sc *subConn) resubscribe(ctx context.Context, ps *redis.PubSub) error {
	if !sc.sharded {
		return nil
	}
	sc.mu.Lock()
	names := make([]string, 0, len(sc.channels))
	for n := range sc.channels {
		names = append(names, n)
	}
	sc.mu.Unlock()
	for _, n := range names {
		if err := ps.SSubscribe(ctx, n); err != nil {
			return err
		}
	}
	return nil
}

// healthPing is the payload of the receive loop's own PINGs.
const healthPing = "health"
