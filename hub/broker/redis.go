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

	"github.com/imhub/imhub/internal/retry"
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
	// URL names the Redis to use:
	//
	//   - redis://, rediss:// or unix:// for one server, as read by
	//     redis.ParseURL;
	//   - redis+cluster:// or rediss+cluster:// for a Redis Cluster: the URL
	//     names one node, ?addr=host:port adds more (redis.ParseClusterURL).
	//     Channels then use sharded pub/sub, so that each publication goes to
	//     one shard rather than to every node;
	//   - redis+sentinel:// or rediss+sentinel:// for a primary watched by
	//     Sentinel: the URL names a sentinel, ?addr=host:port adds more,
	//     ?master_name= names the primary, and ?username= and ?password=
	//     are the primary's (the URL's own user part is the sentinels').
	URL string
	// CAFile is a PEM file of the certificate authorities a rediss:// server
	// is checked against, instead of the system's.
	CAFile string
	// Prefix starts every key and pub/sub channel name. Default "imhub".
	Prefix string
	// MetaTTL is how long a channel's offset counter outlives the channel's
	// last publication. After that its stream starts again with a new
	// epoch. Default 24h (and never less than HistoryTTL).
	//
	// It is longer than the history TTL on purpose: a client that saw the
	// last event of a channel that has gone quiet, whether still connected
	// or coming back, goes on from its offset without being told that
	// events may be lost. Only a publication makes the counter: reading or
	// subscribing to a channel that has none makes no key.
	MetaTTL time.Duration
	// PingInterval is how often connections are checked. Default 1s.
	PingInterval time.Duration
	// Wait makes each publication wait until replicas hold it before it
	// is acknowledged (see ReplicaWait); the zero value waits for none.
	Wait WaitConfig
	// Logger receives state changes. Default slog.Default().
	Logger *slog.Logger
}

// Redis is a broker that joins hub nodes through Redis: one server, a
// primary managed by Sentinel, or a Redis Cluster. Every channel is a Redis
// pub/sub channel (a sharded one on a cluster); its offsets, history and
// dedupe keys are hash-tagged with the channel, so on a cluster everything
// about one channel lives on one shard and a publication is one script on
// that shard (on one server, one script for up to 64 of a message's
// channels).
//
// Only publications make a channel's keys: its meta hash (epoch, offset,
// start of the stream) lives MetaTTL after the last publication, its
// history the history TTL, each message ID the dedupe window. Subscribing
// and reading make none. Besides those, one key per cluster slot (one on a
// single server) holds the data set's id, without a TTL: there are at most
// 16384, and losing it is how a data set that lost its keys is told from
// the one an empty channel's position was read from.
//
// Redis going away is survived: Publish fails with ErrUnavailable, Ready
// reports it, and when Redis is back the broker reconnects and subscribes
// to its channels again by itself.
type Redis struct {
	cfg     RedisConfig
	log     *slog.Logger
	client  redis.UniversalClient
	cluster *redis.ClusterClient // nil unless a cluster
	desc    string
	pubCmd  string // PUBLISH, or SPUBLISH on a cluster

	batch batcher // publications in flight share round trips
	// pubArgs are publish.lua's ARGV but for the event, epoch, time and
	// message ID, made once: an integer made an interface value allocates.
	pubArgs [pubArgc]any
	wait    *ReplicaWait

	up     atomic.Bool   // last ping of the command connection(s) succeeded
	rehome chan struct{} // a cluster's subscriptions may have moved

	mu      sync.Mutex
	subs    map[string]*subConn // by node address; "" on a non-cluster Redis
	home    map[string]*subConn // pub/sub name -> the connection that should carry it
	runCtx  context.Context     // set while Run runs; subscription connections live in it
	handler Handler
	closed  bool
}

// NewRedis returns a Redis broker for cfg.URL. It does not connect yet:
// Run does, and keeps trying while Redis is unreachable.
func NewRedis(cfg RedisConfig) (*Redis, error) {
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
	target, err := newRedisTarget(cfg)
	if err != nil {
		return nil, err
	}
	r := &Redis{
		cfg:     cfg,
		log:     cfg.Logger,
		client:  target.client,
		cluster: target.cluster,
		desc:    target.desc,
		pubCmd:  "PUBLISH",
		rehome:  make(chan struct{}, 1),
		subs:    make(map[string]*subConn),
		home:    make(map[string]*subConn),
	}
	r.batch = batcher{max: publishBatches, size: publishBatchSize, exec: r.publishBatch}
	r.wait = NewReplicaWait(target.client, cfg.Wait)
	if r.cluster != nil {
		r.pubCmd = "SPUBLISH"
	}
	r.pubArgs = [pubArgc]any{
		cfg.DedupeWindow.Milliseconds(),
		nil, // the event
		cfg.HistorySize,
		max(cfg.HistoryTTL.Milliseconds(), 1),
		cfg.MetaTTL.Milliseconds(),
		nil, // epoch
		nil, // time
		r.pubCmd,
		cfg.HistoryHold.Milliseconds(),
		cfg.historyCap(),
		nil, // message ID
	}
	if r.cluster == nil {
		// One connection, there from the start: readiness includes it.
		r.subs[""] = newSubConn(r, target.client.(*redis.Client), "", false)
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

// Publish implements [Broker]. A script dedupes, assigns the offset,
// appends to history and publishes, each channel in turn on its own keys:
// one script call per 64 channels of a message on one server, one per
// channel on a cluster (each on the shard of its channel). The calls of
// one message go out in one pipeline, and so do those of publications
// made at the same time (see batcher): one round trip per shard touched,
// shared.
//
// Deduplication is per channel: if a publish fails part way, its retry
// publishes to the channels that missed it and not again to the others.
func (r *Redis) Publish(ctx context.Context, m Message) (Result, error) {
	if err := ctx.Err(); err != nil {
		return Result{}, fmt.Errorf("%w: publish %s: %w", ErrUnavailable, m.ID, err)
	}
	q := pubReqPool.Get().(*pubReq)
	q.m = m
	r.batch.do(ctx, q)
	res, err := q.res, q.err
	if err != nil && !errors.Is(err, ErrUnavailable) {
		// Left while waiting for a batch: ctx ended, nothing was sent.
		err = fmt.Errorf("%w: publish %s: %w", ErrUnavailable, m.ID, err)
	}
	*q = pubReq{done: q.done}
	pubReqPool.Put(q)
	return res, err
}

// pubArgc is how many of publish.lua's ARGV come before the channels.
const pubArgc = 11

// publishCall is the script call that publishes m to chans, some of its
// channels: up to publishChannelsPerCall on one server, one on a cluster
// (see publishCalls).
func (r *Redis) publishCall(m *Message, chans []string, epoch string, now int64) ([]string, []any) {
	keys := make([]string, 0, 3*len(chans))
	args := make([]any, pubArgc, pubArgc+len(chans))
	copy(args, r.pubArgs[:])
	args[1], args[5], args[6], args[10] = m.Data, epoch, now, m.ID
	for _, ch := range chans {
		sk := r.streamKey(m.App, ch)
		keys = append(keys, sk+":seen:"+m.ID, sk+":meta", sk+":hist")
		args = append(args, sk)
	}
	return keys, args
}

// publishChannelsPerCall is the most channels of one script call. Redis
// runs nothing else while a script runs: a call for each few dozen
// channels keeps a large fan-out (a big group's join) from holding every
// other client, and still saves most of the calls.
const publishChannelsPerCall = 64

// pubCall is one script call of a batch: the channels from..to of q's
// message.
type pubCall struct {
	q        *pubReq
	from, to int
	epoch    string
	cmd      *redis.Cmd
	// unsure: the call ran, but the replicas waited for did not confirm
	// its writes (or could not be asked).
	unsure error
}

// publishCalls splits a batch into script calls. On one server a message
// is one call for each publishChannelsPerCall of its channels, in order:
// each call costs Redis as much again as a channel's work in it. On a
// cluster each channel is its own call, to the shard that serves it.
func (r *Redis) publishCalls(batch []*pubReq) []pubCall {
	per := publishChannelsPerCall
	if r.cluster != nil {
		per = 1
	}
	calls := make([]pubCall, 0, len(batch))
	for _, q := range batch {
		epoch := newEpoch()
		for from := 0; from < len(q.m.Channels); from += per {
			to := min(from+per, len(q.m.Channels))
			calls = append(calls, pubCall{q: q, from: from, to: to, epoch: epoch})
		}
	}
	return calls
}

// publishBatch publishes the messages of batch in one pipeline (on a
// cluster, one per primary the channels are on) and gives each its own
// result. When replicas are waited for, each pipeline ends with one WAIT.
func (r *Redis) publishBatch(ctx context.Context, batch []*pubReq) {
	now := time.Now().UnixMilli()
	calls := r.publishCalls(batch)
	switch {
	case r.cluster == nil:
		c := r.client.(*redis.Client)
		r.runCalls(ctx, c, calls, r.wait.need(ctx, c, ""), now)
	case r.wait.Off():
		r.runCalls(ctx, r.client, calls, 0, now)
	default:
		r.runClusterCalls(ctx, calls, now)
	}
	i := 0
	for _, q := range batch {
		n := 0
		for i+n < len(calls) && calls[i+n].q == q {
			n++
		}
		q.res, q.err = publishResult(&q.m, calls[i:i+n])
		if q.err != nil && errors.Is(q.err, ErrNotReplicated) {
			r.wait.short.Add(1)
		}
		i += n
	}
}

// runCalls sends calls in one pipeline through c, followed by a WAIT for
// replicas when it is more than 0. Through a cluster client (without
// WAIT) the pipeline is split by shard, and redirections are followed.
func (r *Redis) runCalls(ctx context.Context, c redis.Cmdable, calls []pubCall, replicas int, now int64) {
	// One server, or a cluster primary: the pipeline ends with the
	// primary's wait. The cluster client's pipeline (replicas 0) ends
	// with nothing: a command without a key would go to any node.
	node, single := c.(*redis.Client)
	addr := ""
	if single && r.cluster != nil {
		addr = node.Options().Addr
	}
	send := func(calls []*pubCall, eval bool) (waitTail, error) {
		var tail waitTail
		_, err := c.Pipelined(ctx, func(p redis.Pipeliner) error {
			for _, pc := range calls {
				keys, args := r.publishCall(&pc.q.m, pc.q.m.Channels[pc.from:pc.to], pc.epoch, now)
				if eval {
					pc.cmd = publishScript.Eval(ctx, p, keys, args...)
				} else {
					pc.cmd = publishScript.EvalSha(ctx, p, keys, args...)
				}
			}
			if single {
				tail = r.wait.tail(ctx, p, replicas, addr)
			}
			return nil
		})
		return tail, err
	}
	all := make([]*pubCall, len(calls))
	for i := range calls {
		all[i] = &calls[i]
	}
	// EVALSHA in a pipeline; a server that has not seen the script yet
	// (just restarted, or a new shard) gets it by EVAL below.
	tail, perr := send(all, false)
	var again []*pubCall
	for _, pc := range all {
		err := pc.cmd.Err()
		if err == nil && pc.cmd.Val() == nil && perr != nil {
			// Never sent: the connection failed first (a refused
			// password, say), and only the pipeline says so.
			pc.cmd.SetErr(perr)
			err = perr
		}
		if err != nil && redis.HasErrorPrefix(err, "NOSCRIPT") {
			again = append(again, pc)
		} else if err == nil {
			pc.unsure = r.wait.confirmed(tail)
		}
	}
	if len(again) > 0 {
		tail, _ = send(again, true)
		for _, pc := range again {
			if pc.cmd.Err() == nil {
				pc.unsure = r.wait.confirmed(tail)
			}
		}
	}
}

// runClusterCalls sends the calls to each cluster primary in a pipeline
// of its own, all at once, each followed by the WAIT that primary needs:
// WAIT counts what its own connection wrote. A call whose slot moved
// since the slot map was read fails (the caller tries again, and the slot
// map is read again within a second). When no primary needs a WAIT, the
// calls go as they do without waiting.
func (r *Redis) runClusterCalls(ctx context.Context, calls []pubCall, now int64) {
	type shard struct {
		node  *redis.Client
		calls []pubCall
		at    []int // the calls' places in calls
	}
	shards := map[string]*shard{}
	for i := range calls {
		c := &calls[i]
		node, err := r.cluster.MasterForKey(ctx, r.streamKey(c.q.m.App, c.q.m.Channels[c.from]))
		if err != nil {
			c.cmd = redis.NewCmd(ctx)
			c.cmd.SetErr(fmt.Errorf("find the shard: %w", err))
			continue
		}
		addr := node.Options().Addr
		sh := shards[addr]
		if sh == nil {
			sh = &shard{node: node}
			shards[addr] = sh
		}
		sh.calls = append(sh.calls, *c)
		sh.at = append(sh.at, i)
	}
	waiting := false
	need := make(map[string]int, len(shards))
	for addr, sh := range shards {
		need[addr] = r.wait.need(ctx, sh.node, addr)
		waiting = waiting || need[addr] > 0
	}
	if !waiting {
		// No primary has a replica to wait for: the cluster client's own
		// pipeline, which follows a slot that moved. It cannot carry a
		// primary's ROLE (a command without a key goes to any node), so
		// here, unlike on one server, a replica that came online since the
		// last Check goes unwaited for until the next one.
		r.runCalls(ctx, r.client, calls, 0, now)
		return
	}
	var wg sync.WaitGroup
	for addr, sh := range shards {
		wg.Go(func() { r.runCalls(ctx, sh.node, sh.calls, need[addr], now) })
	}
	wg.Wait()
	moved := false
	for _, sh := range shards {
		for j, i := range sh.at {
			calls[i] = sh.calls[j]
			if err := calls[i].cmd.Err(); err != nil && (redis.HasErrorPrefix(err, "MOVED") || redis.HasErrorPrefix(err, "ASK")) {
				moved = true
			}
		}
	}
	if moved {
		r.cluster.ReloadState(ctx)
		r.poke()
	}
}

// publishResult reads the replies of the script calls of m, which between
// them cover its channels in order.
func publishResult(m *Message, calls []pubCall) (Result, error) {
	res := Result{Duplicate: true, Positions: make([]Position, len(m.Channels))}
	var ferr error // the first channel that failed
	for _, c := range calls {
		replies, err := c.cmd.Slice()
		switch {
		case err != nil:
			if ferr == nil {
				ferr = fmt.Errorf("%w: publish %s to %s: %w", ErrUnavailable, m.ID, m.Channels[c.from], err)
			}
			continue
		case len(replies) != c.to-c.from:
			return Result{}, fmt.Errorf("%w: publish %s to %s: script returned %d values for %d channels",
				ErrUnavailable, m.ID, m.Channels[c.from], len(replies), c.to-c.from)
		}
		for j, v := range replies {
			i := c.from + j
			if v == nil {
				continue // this channel has it already, from an older node
			}
			if rerr, ok := v.(error); ok {
				// This channel alone failed; the others of the call went
				// on. The first failure is the message's, as when each
				// channel was a call of its own.
				if ferr == nil {
					ferr = fmt.Errorf("%w: publish %s to %s: %w", ErrUnavailable, m.ID, m.Channels[i], rerr)
				}
				continue
			}
			reply, _ := v.([]any)
			if len(reply) != 3 && len(reply) != 4 {
				return Result{}, fmt.Errorf("%w: publish %s to %s: script returned %d values", ErrUnavailable, m.ID, m.Channels[i], len(reply))
			}
			off, _ := reply[0].(int64)
			ep, _ := reply[1].(string)
			tag, _ := reply[2].(string)
			res.Positions[i] = Position{Offset: uint64(off), Epoch: ep, Tag: tag}
			if len(reply) == 3 { // a fourth value marks this channel's duplicate
				res.Duplicate = false
			}
		}
		if c.unsure != nil && ferr == nil {
			// Published, but it may not survive a failover: not
			// acknowledged, so that it is kept and tried again.
			ferr = fmt.Errorf("%w: publish %s to %s: %w", ErrUnavailable, m.ID, m.Channels[c.from], c.unsure)
		}
	}
	if ferr != nil {
		return Result{}, ferr
	}
	return res, nil
}

// History implements [Broker]. Position and history are read in one
// script, so they agree with each other. It creates no key of the channel.
func (r *Redis) History(ctx context.Context, app, channel string, since *Position) (History, error) {
	sk := r.streamKey(app, channel)
	want := "0"
	if since != nil {
		want = "1"
	}
	reply, err := historyScript.Run(ctx, r.client, []string{sk + ":meta", sk + ":hist", r.runKey(sk)},
		newEpoch(), want).Slice()
	if err != nil {
		return History{}, fmt.Errorf("%w: history %s: %w", ErrUnavailable, channel, err)
	}
	if len(reply) != 6 {
		return History{}, fmt.Errorf("%w: history %s: script returned %d values", ErrUnavailable, channel, len(reply))
	}
	now := time.Now()
	epoch, _ := reply[0].(string)
	off, _ := reply[1].(int64)
	startMs, _ := reply[2].(int64)
	run, _ := reply[3].(string)
	tag, _ := reply[5].(string)
	st := streamState{run: run, now: now, life: r.cfg.MetaTTL}
	if epoch == "" {
		st.latest = Position{Epoch: emptyEpoch(run, now)}
	} else {
		st.latest = Position{Offset: uint64(off), Epoch: epoch, Tag: tag}
		if startMs > 0 {
			st.start = time.UnixMilli(startMs)
		}
	}
	h := History{Latest: st.latest}
	if since == nil {
		return h, nil
	}
	entries, _ := reply[4].([]any)
	st.held = make([]Publication, 0, len(entries))
	// Entries older than the history TTL are not history any more, as
	// with the in-process broker; they leave from the front.
	oldest := now.Add(-r.cfg.HistoryTTL).UnixMilli()
	for _, e := range entries {
		p, at, ok := parseEntry(e)
		if !ok {
			return History{}, fmt.Errorf("%w: history %s: malformed entry", ErrUnavailable, channel)
		}
		if len(st.held) == 0 && r.cfg.HistoryTTL > 0 && at < oldest {
			continue
		}
		p.App, p.Channel, p.Epoch = app, channel, epoch
		st.held = append(st.held, p)
	}
	h.Publications, h.Recovered = st.replay(*since)
	return h, nil
}

// parseEntry reads one XRANGE entry, [id, [field, value, ...]], written by
// publish.lua with id "<offset>-0" and fields "d" (the data), "t" (the
// publish time, unix ms), "h" (the tag) and "p" (the tag before it); a
// node that keeps no tags writes neither of the last two.
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
		case "h":
			p.Tag = v
		case "p":
			p.Prev = v
		}
	}
	p.Offset = n
	return p, at, p.Data != nil
}

func newEpoch() string { return strconv.FormatUint(rand.Uint64(), 36) }

// Subscribe implements [Broker]. It sends SUBSCRIBE (SSUBSCRIBE to the
// channel's shard on a cluster) and returns once Redis has confirmed it.
// Run must be running.
func (r *Redis) Subscribe(ctx context.Context, app, channel string) error {
	name := r.streamKey(app, channel)
	for {
		sc, err := r.connFor(ctx, name, true)
		if err != nil {
			return fmt.Errorf("%w: subscribe %s: %w", ErrUnavailable, channel, err)
		}
		err = sc.sync(ctx, func() { sc.send(ctx, name, true) })
		if errors.Is(err, errConnClosed) {
			continue // the channel moved to another shard meanwhile
		}
		if err != nil {
			return fmt.Errorf("%w: subscribe %s: not confirmed: %w", ErrUnavailable, channel, err)
		}
		recorded, confirmed, _ := sc.state(name)
		if confirmed {
			return nil
		}
		if recorded {
			// Refused (a slot that moved before this node knew, a
			// missing permission), or confirmed on a connection that was
			// replaced since. Try again once a cluster's layout is read
			// again.
			r.poke()
		}
		// Moved by the rehome loop meanwhile, or not confirmed: again.
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w: subscribe %s: not confirmed: %w", ErrUnavailable, channel, ctx.Err())
		case <-time.After(r.cfg.PingInterval / 4):
		}
	}
}

// Unsubscribe implements [Broker]. When it returns, no publication of the
// channel is delivered any more.
func (r *Redis) Unsubscribe(ctx context.Context, app, channel string) error {
	name := r.streamKey(app, channel)
	r.mu.Lock()
	sc := r.home[name]
	delete(r.home, name)
	if sc != nil {
		sc.forget(name)
	}
	r.mu.Unlock()
	if sc == nil {
		return nil
	}
	err := sc.sync(ctx, func() { sc.send(ctx, name, false) })
	if err != nil && !errors.Is(err, errConnClosed) {
		// Forgotten even so: a replaced connection does not have it.
		return fmt.Errorf("%w: unsubscribe %s: %w", ErrUnavailable, channel, err)
	}
	return nil
}

// errClosed is returned by calls made after Close.
var errClosed = errors.New("broker closed")

// connFor returns the connection that should carry name: the only one, or
// on a cluster the one to the primary serving name's slot, made on first
// use. With home, it also records name as that connection's, in the same
// step, so that the rehome loop sees one consistent picture.
func (r *Redis) connFor(ctx context.Context, name string, home bool) (*subConn, error) {
	var addr string
	var node *redis.Client
	if r.cluster != nil {
		var err error
		if node, err = r.cluster.MasterForKey(ctx, name); err != nil {
			return nil, fmt.Errorf("find the shard: %w", err)
		}
		addr = node.Options().Addr
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil, errClosed
	}
	sc := r.subs[addr]
	if sc == nil {
		sc = newSubConn(r, node, addr, true)
		// Made for channels moved here: until it is up, publications to
		// them are missed.
		sc.repairWhenUp.Store(!home)
		r.subs[addr] = sc
		if r.runCtx != nil {
			sc.start(r.runCtx, r.handler)
		}
	}
	if home {
		r.homeLocked(name, sc)
	}
	return sc, nil
}

// homeLocked makes sc the connection that should carry name, in r.home and
// in the connections' own records, in one step under r.mu.
func (r *Redis) homeLocked(name string, sc *subConn) {
	if old := r.home[name]; old != nil && old != sc {
		old.forget(name)
	}
	r.home[name] = sc
	sc.record(name)
}

// poke tells a cluster's rehome loop that channels may be served elsewhere
// now: a connection's primary is unreachable (perhaps replaced by a replica
// at another address), a slot moved, or a subscribe was refused.
func (r *Redis) poke() {
	if r.cluster == nil {
		return
	}
	select {
	case r.rehome <- struct{}{}:
	default:
	}
}

// rehomeLoop keeps each of a cluster's channels on the connection to the
// primary that serves its slot, checking every PingInterval and when poked.
func (r *Redis) rehomeLoop(ctx context.Context, h Handler) {
	t := time.NewTicker(r.cfg.PingInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-r.rehome:
		}
		if r.rehomeOnce(ctx) > 0 {
			h.HandleReconnect()
		}
	}
}

// rehomeOnce moves every channel whose slot is now served by another
// primary to that primary's connection, subscribes again those a live
// connection has left unconfirmed for a while (refused, as after a slot
// moved and came back), waits until those connections have subscribed,
// and closes connections left with nothing to carry. It returns how many
// channels it subscribed again: their publications in between were missed
// and must be repaired from history.
func (r *Redis) rehomeOnce(ctx context.Context) int {
	r.mu.Lock()
	homes := make(map[string]*subConn, len(r.home))
	for n, sc := range r.home {
		homes[n] = sc
	}
	subs := make([]*subConn, 0, len(r.subs))
	for _, sc := range r.subs {
		subs = append(subs, sc)
	}
	r.mu.Unlock()
	retry := map[string]bool{}
	for _, sc := range subs {
		for _, n := range sc.stale(2*r.cfg.PingInterval + time.Second) {
			retry[n] = true
		}
	}
	moved := 0
	touched := map[*subConn][]string{}
	for name, old := range homes {
		sc, err := r.connFor(ctx, name, false)
		if err != nil || (sc == old && !retry[name]) {
			continue
		}
		r.mu.Lock()
		still := r.home[name] == old
		if still {
			r.homeLocked(name, sc)
		}
		r.mu.Unlock()
		if !still {
			continue // unsubscribed or moved meanwhile
		}
		if sc != old && old.up.Load() {
			// Sending to a primary that is gone would wait for a dial
			// timeout per channel.
			old.send(ctx, name, false)
		}
		moved++
		if !sc.up.Load() {
			// Likewise for a new primary, or one not reachable yet: it
			// subscribes what it records once it is up, and repairs then.
			sc.repairWhenUp.Store(true)
			continue
		}
		sc.send(ctx, name, true)
		touched[sc] = append(touched[sc], name)
	}
	for sc, names := range touched {
		sctx, cancel := context.WithTimeout(ctx, 2*r.cfg.PingInterval+time.Second)
		if err := sc.sync(sctx, func() {}); err != nil && !errors.Is(err, errConnClosed) {
			// Repaired now, for the others, and again once the shard
			// has confirmed these.
			sc.repairOnceConfirmed(names)
			r.log.Warn("redis shard did not confirm moved subscriptions", "node", sc.addr, "err", err)
		}
		cancel()
	}
	if moved > 0 {
		r.log.Info("redis cluster channels subscribed again on the shards that serve them", "channels", moved)
	}
	r.mu.Lock()
	inUse := make(map[*subConn]bool, len(r.subs))
	for _, sc := range r.home {
		inUse[sc] = true
	}
	var idle []*subConn
	for addr, sc := range r.subs {
		if _, _, n := sc.state(""); n == 0 && !inUse[sc] && !sc.syncPending() {
			delete(r.subs, addr)
			idle = append(idle, sc)
		}
	}
	r.mu.Unlock()
	for _, sc := range idle {
		_ = sc.close()
	}
	return moved
}

// Run implements [Broker]: it checks the command connections every
// PingInterval and reads the subscription connections, reconnecting them
// with backoff while Redis is away.
func (r *Redis) Run(ctx context.Context, h Handler) error {
	r.mu.Lock()
	r.runCtx, r.handler = ctx, h
	for _, sc := range r.subs {
		sc.start(ctx, h)
	}
	r.mu.Unlock()
	var wg sync.WaitGroup
	if r.cluster != nil {
		wg.Go(func() { r.rehomeLoop(ctx, h) })
	}
	r.watch(ctx)
	wg.Wait()
	r.mu.Lock()
	r.runCtx = nil // later connections are not started
	subs := make([]*subConn, 0, len(r.subs))
	for _, sc := range r.subs {
		subs = append(subs, sc)
	}
	r.mu.Unlock()
	for _, sc := range subs {
		if sc.stop != nil {
			sc.stop()
			<-sc.done
		}
	}
	return nil
}

// watch keeps r.up current: on a cluster, every primary must answer. It
// also keeps what the replica wait knows of each primary's replicas.
func (r *Redis) watch(ctx context.Context) {
	t := time.NewTicker(r.cfg.PingInterval)
	defer t.Stop()
	for {
		pctx, cancel := context.WithTimeout(ctx, r.cfg.PingInterval)
		// On a cluster this also reloads the slot map: the rehome loop's
		// MasterForKey relies on it to see slots move within a
		// PingInterval.
		err := r.wait.Check(pctx)
		cancel()
		if ctx.Err() != nil {
			return
		}
		switch was := r.up.Swap(err == nil); {
		case err == nil && !was:
			r.log.Info("redis is up", "redis", r.desc)
		case err != nil && was:
			r.log.Warn("redis is down", "redis", r.desc, "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Unreplicated is how many publications were published but not confirmed
// by the replicas waited for in time (RedisConfig.Wait), so far: each was
// answered with ErrNotReplicated, to be kept and published again.
func (r *Redis) Unreplicated() uint64 { return r.wait.Unreplicated() }

// parse decodes "offset epoch:tag:prev data" as written by publish.lua,
// or "offset epoch data" as a node that keeps no tags writes it.
func (r *Redis) parse(m *redis.Message) (Publication, bool) {
	app, channel, ok := r.splitStreamKey(m.Channel)
	if !ok {
		return Publication{}, false
	}
	off, rest, ok1 := strings.Cut(m.Payload, " ")
	pos, data, ok2 := strings.Cut(rest, " ")
	n, err := strconv.ParseUint(off, 10, 64)
	if !ok1 || !ok2 || err != nil {
		return Publication{}, false
	}
	epoch, tags, _ := strings.Cut(pos, ":")
	tag, prev, _ := strings.Cut(tags, ":")
	return Publication{
		App:      app,
		Channel:  channel,
		Position: Position{Offset: n, Epoch: epoch, Tag: tag},
		Prev:     prev,
		Data:     []byte(data),
	}, true
}

// Ready implements [Broker].
func (r *Redis) Ready() error {
	if !r.up.Load() {
		return fmt.Errorf("%w: redis (%s) does not answer", ErrUnavailable, r.desc)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, sc := range r.subs {
		if _, _, n := sc.state(""); !sc.up.Load() && (sc.addr == "" || n > 0) {
			return fmt.Errorf("%w: redis subscription connection %s is down", ErrUnavailable, sc.addr)
		}
	}
	return nil
}

// Close implements [Broker].
func (r *Redis) Close() error {
	r.mu.Lock()
	subs := r.subs
	r.subs = map[string]*subConn{}
	r.closed = true
	r.mu.Unlock()
	var errs []error
	for _, sc := range subs {
		errs = append(errs, sc.close())
	}
	return errors.Join(append(errs, r.client.Close())...)
}

// nextBackoff is the wait before the next redial of a subscription
// connection. It starts small and stays short: a node that restarts at the
// same address is back within a second or two, and every wait beyond its
// return is time its channels' clients get nothing. A redial is one
// connection attempt, cheap for Redis even from many nodes.
func nextBackoff(d time.Duration) time.Duration {
	const lo, hi = 20 * time.Millisecond, 500 * time.Millisecond
	return retry.Jitter(retry.Next(d, lo, hi))
}
