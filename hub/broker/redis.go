package broker

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

var (
	//go:embed publish.lua
	publishLua    string
	publishScript = redis.NewScript(publishLua)

	//go:embed history.lua
	historyLua    string
	historyScript = redis.NewScript(historyLua)
)

// RedisConfig configures [NewRedis].
type RedisConfig struct {
	Config
	// URL is a redis://, rediss:// or unix:// URL as understood by
	// redis.ParseURL.
	URL string
	// Prefix starts every key and pub/sub channel name. Default "imhub".
	Prefix string
	// MetaTTL is how long a channel's offset counter outlives the channel's
	// last publication. After that its stream starts again with a new
	// epoch. Default 24h (and never less than HistoryTTL).
	MetaTTL time.Duration
	// PingInterval is how often connections are checked. Default 1s.
	PingInterval time.Duration
	// Logger receives state changes. Default slog.Default().
	Logger *slog.Logger
}

// Redis is a broker that joins hub nodes through one Redis server. Every
// channel is a Redis pub/sub channel; offsets, history and the dedupe set
// live in keys hash-tagged with their channel.
//
// Redis going away is survived: Publish fails with ErrUnavailable, Ready
// reports it, and when Redis is back the broker reconnects and subscribes
// to its channels again by itself.
type Redis struct {
	cfg    RedisConfig
	log    *slog.Logger
	client *redis.Client

	up     atomic.Bool // last ping of the command connection succeeded
	subsUp atomic.Bool // the subscription connection is live

	mu       sync.Mutex
	ps       *redis.PubSub
	channels map[string]struct{}      // pub/sub names subscribed, to renew a dead connection with
	pongs    map[string]chan struct{} // PING payload -> Subscribe call awaiting it
}

// NewRedis returns a Redis broker for cfg.URL. It does not connect yet:
// Run does, and keeps trying while Redis is unreachable.
func NewRedis(cfg RedisConfig) (*Redis, error) {
	opts, err := redis.ParseURL(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("redis url: %w", err)
	}
	if cfg.Prefix == "" {
		cfg.Prefix = "imhub"
	}
	if cfg.MetaTTL <= 0 {
		cfg.MetaTTL = 24 * time.Hour
	}
	cfg.MetaTTL = max(cfg.MetaTTL, cfg.HistoryTTL)
	if cfg.PingInterval <= 0 {
		cfg.PingInterval = time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	// Fail fast while Redis is down: callers answer 503 and the IM backend
	// retries, which beats holding callbacks for the default timeouts.
	opts.DialTimeout = 2 * time.Second
	opts.ReadTimeout = 3 * time.Second
	opts.WriteTimeout = 3 * time.Second
	opts.MaxRetries = 1
	client := redis.NewClient(opts)
	r := &Redis{
		cfg:      cfg,
		log:      cfg.Logger,
		client:   client,
		ps:       client.Subscribe(context.Background()),
		channels: make(map[string]struct{}),
		pongs:    make(map[string]chan struct{}),
	}
	return r, nil
}

// streamKey is the hash tag shared by every key of one channel, so that on
// Redis Cluster all of them live in one slot.
func (r *Redis) streamKey(app, channel string) string {
	return r.cfg.Prefix + ":{" + app + ":" + channel + "}"
}

// splitStreamKey undoes streamKey. App ids contain no ':' (they are
// validated numbers), so the first ':' after the app ends it.
func (r *Redis) splitStreamKey(name string) (app, channel string, ok bool) {
	rest, ok := strings.CutPrefix(name, r.cfg.Prefix+":{")
	if !ok || !strings.HasSuffix(rest, "}") {
		return "", "", false
	}
	app, channel, ok = strings.Cut(rest[:len(rest)-1], ":")
	return app, channel, ok
}

// Publish implements [Broker] with one script call: one round trip however
// many channels the message names.
func (r *Redis) Publish(ctx context.Context, m Message) (Result, error) {
	keys := make([]string, 0, 1+2*len(m.Channels))
	args := make([]any, 0, 7+len(m.Channels))
	keys = append(keys, r.cfg.Prefix+":{"+m.App+"}:seen:"+m.ID)
	args = append(args,
		r.cfg.DedupeWindow.Milliseconds(),
		m.Data,
		r.cfg.HistorySize,
		max(r.cfg.HistoryTTL.Milliseconds(), 1),
		r.cfg.MetaTTL.Milliseconds(),
		newEpoch(),
		time.Now().UnixMilli(),
	)
	for _, ch := range m.Channels {
		sk := r.streamKey(m.App, ch)
		keys = append(keys, sk+":meta", sk+":hist")
		args = append(args, sk)
	}
	reply, err := publishScript.Run(ctx, r.client, keys, args...).Slice()
	if errors.Is(err, redis.Nil) {
		return Result{Duplicate: true}, nil
	}
	if err != nil {
		return Result{}, fmt.Errorf("%w: publish %s: %w", ErrUnavailable, m.ID, err)
	}
	if len(reply) != 2*len(m.Channels) {
		return Result{}, fmt.Errorf("%w: publish %s: script returned %d values for %d channels", ErrUnavailable, m.ID, len(reply), len(m.Channels))
	}
	res := Result{Positions: make([]Position, len(m.Channels))}
	for i := range m.Channels {
		off, _ := reply[2*i].(int64)
		epoch, _ := reply[2*i+1].(string)
		res.Positions[i] = Position{Offset: uint64(off), Epoch: epoch}
	}
	return res, nil
}

// History implements [Broker]. Position and history are read in one
// script, so they agree with each other.
func (r *Redis) History(ctx context.Context, app, channel string, since *Position) (History, error) {
	sk := r.streamKey(app, channel)
	want := "0"
	if since != nil {
		want = "1"
	}
	reply, err := historyScript.Run(ctx, r.client, []string{sk + ":meta", sk + ":hist"},
		newEpoch(), r.cfg.MetaTTL.Milliseconds(), want).Slice()
	if err != nil {
		return History{}, fmt.Errorf("%w: history %s: %w", ErrUnavailable, channel, err)
	}
	if len(reply) != 3 {
		return History{}, fmt.Errorf("%w: history %s: script returned %d values", ErrUnavailable, channel, len(reply))
	}
	epoch, _ := reply[0].(string)
	off, _ := reply[1].(int64)
	h := History{Latest: Position{Offset: uint64(off), Epoch: epoch}}
	if since == nil {
		return h, nil
	}
	entries, _ := reply[2].([]any)
	held := make([]Publication, 0, len(entries))
	// Entries older than the history TTL are not history any more, as
	// with the in-process broker; they leave from the front.
	oldest := time.Now().Add(-r.cfg.HistoryTTL).UnixMilli()
	for _, e := range entries {
		p, at, ok := parseEntry(e)
		if !ok {
			return History{}, fmt.Errorf("%w: history %s: malformed entry", ErrUnavailable, channel)
		}
		if len(held) == 0 && r.cfg.HistoryTTL > 0 && at < oldest {
			continue
		}
		p.App, p.Channel, p.Epoch = app, channel, epoch
		held = append(held, p)
	}
	h.Publications, h.Recovered = replayAfter(*since, h.Latest, held)
	return h, nil
}

// parseEntry reads one XRANGE entry, [id, [field, value, ...]], written by
// publish.lua with id "<offset>-0" and fields "d" (the data) and "t" (the
// publish time, unix ms).
func parseEntry(e any) (Publication, int64, bool) {
	pair, ok := e.([]any)
	if !ok || len(pair) != 2 {
		return Publication{}, 0, false
	}
	id, _ := pair[0].(string)
	fields, _ := pair[1].([]any)
	off, _, _ := strings.Cut(id, "-")
	n, err := strconv.ParseUint(off, 10, 64)
	if err != nil || len(fields)%2 != 0 {
		return Publication{}, 0, false
	}
	var p Publication
	var at int64
	for i := 0; i < len(fields); i += 2 {
		k, _ := fields[i].(string)
		v, _ := fields[i+1].(string)
		switch k {
		case "d":
			p.Data = []byte(v)
		case "t":
			at, _ = strconv.ParseInt(v, 10, 64)
		}
	}
	p.Position = Position{Offset: n}
	return p, at, p.Data != nil
}

func newEpoch() string { return strconv.FormatUint(rand.Uint64(), 36) }

// Subscribe implements [Broker]. It sends SUBSCRIBE and then waits until
// the subscription connection has processed it (see sync). Run must be
// running.
func (r *Redis) Subscribe(ctx context.Context, app, channel string) error {
	name := r.streamKey(app, channel)
	r.mu.Lock()
	r.channels[name] = struct{}{}
	r.mu.Unlock()
	// Errors of the command itself mean the connection broke; the channel
	// is in go-redis's set and in ours, and a new connection has it.
	err := r.sync(ctx, func(ps *redis.PubSub) { _ = ps.Subscribe(ctx, name) })
	if err != nil {
		return fmt.Errorf("%w: subscribe %s: %w", ErrUnavailable, channel, err)
	}
	return nil
}

// Unsubscribe implements [Broker]. When it returns, no publication of the
// channel is delivered any more.
func (r *Redis) Unsubscribe(ctx context.Context, app, channel string) error {
	name := r.streamKey(app, channel)
	r.mu.Lock()
	delete(r.channels, name)
	r.mu.Unlock()
	err := r.sync(ctx, func(ps *redis.PubSub) { _ = ps.Unsubscribe(ctx, name) })
	if err != nil {
		// Forgotten even so: a replaced connection does not have it.
		return fmt.Errorf("%w: unsubscribe %s: %w", ErrUnavailable, channel, err)
	}
	return nil
}

// sync runs cmd on the subscription connection, then sends a PING with a
// payload of its own and waits for its PONG: Redis answers in order, so the
// PONG proves cmd processed. If the connection is replaced meanwhile, it
// tries again on the new one until ctx is done.
func (r *Redis) sync(ctx context.Context, cmd func(*redis.PubSub)) error {
	for {
		token := "sync-" + newEpoch()
		done := make(chan struct{})
		r.mu.Lock()
		r.pongs[token] = done
		ps := r.ps
		r.mu.Unlock()
		cmd(ps)
		_ = ps.Ping(ctx, token)
		t := time.NewTimer(2*r.cfg.PingInterval + time.Second)
		select {
		case <-done:
			t.Stop()
			return nil
		case <-ctx.Done():
			t.Stop()
			r.dropPong(token)
			return ctx.Err()
		case <-t.C:
			r.dropPong(token)
		}
	}
}

func (r *Redis) dropPong(token string) {
	r.mu.Lock()
	delete(r.pongs, token)
	r.mu.Unlock()
}

func (r *Redis) pong(payload string) {
	r.mu.Lock()
	done := r.pongs[payload]
	delete(r.pongs, payload)
	r.mu.Unlock()
	if done != nil {
		close(done)
	}
}

// renew replaces a subscription connection that stopped answering with a
// new one subscribed to every channel. go-redis replaces a connection that
// fails, but not one that merely goes silent (a dead host, a moved
// address): that one only the unanswered PING reveals.
func (r *Redis) renew(ctx context.Context) {
	r.mu.Lock()
	old := r.ps
	r.ps = r.client.Subscribe(context.Background())
	names := make([]string, 0, len(r.channels))
	for n := range r.channels {
		names = append(names, n)
	}
	ps := r.ps
	r.mu.Unlock()
	_ = old.Close()
	if len(names) > 0 {
		// Records the channels even if Redis is unreachable now; they are
		// subscribed when the connection is made.
		sctx, cancel := context.WithTimeout(ctx, r.cfg.PingInterval)
		_ = ps.Subscribe(sctx, names...)
		cancel()
	}
}

// Run implements [Broker]: it checks the command connection every
// PingInterval and reads the subscription connection, reconnecting both
// with backoff while Redis is away.
func (r *Redis) Run(ctx context.Context, h Handler) error {
	var wg sync.WaitGroup
	wg.Go(func() { r.watch(ctx) })
	r.receive(ctx, h)
	wg.Wait()
	return nil
}

// watch keeps r.up current.
func (r *Redis) watch(ctx context.Context) {
	t := time.NewTicker(r.cfg.PingInterval)
	defer t.Stop()
	for {
		pctx, cancel := context.WithTimeout(ctx, r.cfg.PingInterval)
		err := r.client.Ping(pctx).Err()
		cancel()
		if ctx.Err() != nil {
			return
		}
		switch was := r.up.Swap(err == nil); {
		case err == nil && !was:
			r.log.Info("redis is up", "addr", r.client.Options().Addr)
		case err != nil && was:
			r.log.Warn("redis is down", "addr", r.client.Options().Addr, "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// receive reads the subscription connection until ctx is done.
//
// After the connection is lost, go-redis dials again and re-subscribes
// every channel on the next call. The PING sent after that is answered only
// after all those SUBSCRIBEs, so its PONG marks the moment every channel is
// live again and the handler can repair what it missed.
func (r *Redis) receive(ctx context.Context, h Handler) {
	lost, backoff := true, time.Duration(0)
	first := true
	awaiting := false // a health PING is unanswered
	for ctx.Err() == nil {
		r.mu.Lock()
		ps := r.ps
		r.mu.Unlock()
		if lost {
			if err := ps.Ping(ctx, healthPing); err != nil {
				backoff = nextBackoff(backoff)
				sleep(ctx, backoff)
				continue
			}
			awaiting = true
		}
		msg, err := ps.ReceiveTimeout(ctx, r.cfg.PingInterval)
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
				r.renew(ctx)
			}
			if !lost {
				r.log.Warn("redis subscription connection lost", "err", err)
				r.subsUp.Store(false)
			}
			lost, awaiting = true, false
			backoff = nextBackoff(backoff)
			sleep(ctx, backoff)
			continue
		}
		awaiting = false // anything received proves the connection alive
		switch m := msg.(type) {
		case *redis.Pong:
			if m.Payload != healthPing {
				r.pong(m.Payload)
			}
			if lost {
				lost, backoff = false, 0
				r.subsUp.Store(true)
				if !first {
					r.log.Info("redis subscription connection restored")
					h.HandleReconnect()
				}
				first = false
			}
		case *redis.Message:
			if pub, ok := r.parse(m); ok {
				h.HandlePublication(pub)
			} else {
				r.log.Error("malformed publication", "channel", m.Channel)
			}
		}
	}
}

// healthPing is the payload of the receive loop's own PINGs.
const healthPing = "health"

// parse decodes "offset epoch data" as written by publish.lua.
func (r *Redis) parse(m *redis.Message) (Publication, bool) {
	app, channel, ok := r.splitStreamKey(m.Channel)
	if !ok {
		return Publication{}, false
	}
	off, rest, ok1 := strings.Cut(m.Payload, " ")
	epoch, data, ok2 := strings.Cut(rest, " ")
	n, err := strconv.ParseUint(off, 10, 64)
	if !ok1 || !ok2 || err != nil {
		return Publication{}, false
	}
	return Publication{
		App:      app,
		Channel:  channel,
		Position: Position{Offset: n, Epoch: epoch},
		Data:     []byte(data),
	}, true
}

// Ready implements [Broker].
func (r *Redis) Ready() error {
	switch {
	case !r.up.Load():
		return fmt.Errorf("%w: redis at %s does not answer", ErrUnavailable, r.client.Options().Addr)
	case !r.subsUp.Load():
		return fmt.Errorf("%w: redis subscription connection is down", ErrUnavailable)
	}
	return nil
}

// Close implements [Broker].
func (r *Redis) Close() error {
	r.mu.Lock()
	ps := r.ps
	r.mu.Unlock()
	return errors.Join(ps.Close(), r.client.Close())
}

func nextBackoff(d time.Duration) time.Duration {
	const lo, hi = 50 * time.Millisecond, 5 * time.Second
	d = min(max(2*d, lo), hi)
	// Jitter keeps a fleet of nodes from reconnecting in lockstep.
	return d/2 + rand.N(d/2+1)
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
