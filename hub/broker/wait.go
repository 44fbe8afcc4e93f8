package broker

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// ErrNotReplicated says that Redis applied a write but no replica
// confirmed it in time: a failover now could lose it. It comes wrapped in
// ErrUnavailable, so that the write is kept (in the spool) and retried,
// never acknowledged as durable.
var ErrNotReplicated = errors.New("not confirmed by a replica in time")

// WaitAuto, as WaitConfig.Replicas, waits for one replica on a primary that
// reports one online, and for none on a primary without.
const WaitAuto = -1

// WaitConfig says how many replicas must hold a write before it is
// acknowledged.
type WaitConfig struct {
	// Replicas is how many replicas each write must reach: WaitAuto, 0 to
	// wait for none (the zero value), or a number, waited for whether or
	// not the primary has that many.
	Replicas int
	// Timeout is how long a write waits for them; past it the write is
	// ErrNotReplicated. Default 100ms.
	Timeout time.Duration
}

// DefaultWaitConfig returns the wait a hub makes unless told otherwise:
// WaitAuto, for 100ms. A zero Replicas, unlike this default, waits for
// none.
func DefaultWaitConfig() WaitConfig {
	return WaitConfig{Replicas: WaitAuto, Timeout: 100 * time.Millisecond}
}

// ReplicaWait makes writes to Redis wait, with WAIT, until replicas hold
// them. Redis replicates asynchronously: a primary killed right after
// answering a write may take it along, and the replica promoted in its
// place goes on without it. A write confirmed by WAIT is on a replica too.
//
// WAIT counts what the connection it is sent on wrote, so it goes on the
// same connection as the writes, right after them, in one pipeline; on a
// Redis Cluster, one pipeline per primary. With WaitAuto it keeps, for
// each primary, whether it has a replica online, read with INFO by Check;
// a write it does not wait for ends with ROLE, and is not confirmed when
// the primary has a replica online by then (see tail).
type ReplicaWait struct {
	cfg     WaitConfig
	client  redis.UniversalClient
	cluster *redis.ClusterClient // nil unless a cluster

	mu sync.Mutex
	// online is the replicas each primary reported online when last
	// asked, by address ("" for one server or the primary Sentinel names).
	online map[string]int

	short  atomic.Uint64 // writes no replica confirmed in time
	noRole atomic.Bool   // ROLE refused: INFO replication instead
}

// NewReplicaWait returns a ReplicaWait for writes made through client.
func NewReplicaWait(client redis.UniversalClient, cfg WaitConfig) *ReplicaWait {
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultWaitConfig().Timeout
	}
	w := &ReplicaWait{cfg: cfg, client: client, online: map[string]int{}}
	w.cluster, _ = client.(*redis.ClusterClient)
	return w
}

// Off reports whether no write ever waits.
func (w *ReplicaWait) Off() bool { return w == nil || w.cfg.Replicas == 0 }

// Unreplicated is how many writes no replica confirmed in time so far.
func (w *ReplicaWait) Unreplicated() uint64 {
	if w == nil {
		return 0
	}
	return w.short.Load()
}

// Check asks every primary whether it answers, and with WaitAuto how many
// replicas it has online. It returns the first failure.
func (w *ReplicaWait) Check(ctx context.Context) error {
	if w.cluster != nil {
		// ForEachMaster also reloads the slot map (go-redis otherwise
		// does so once a minute, or on MOVED).
		return w.cluster.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error {
			addr := c.Options().Addr
			if err := w.check(ctx, c, addr); err != nil {
				return fmt.Errorf("%s: %w", addr, err)
			}
			return nil
		})
	}
	return w.check(ctx, w.client, "")
}

// Run calls Check every interval until ctx is done, for a ReplicaWait no
// broker checks.
func (w *ReplicaWait) Run(ctx context.Context, interval time.Duration) {
	if w.Off() {
		return
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		cctx, cancel := context.WithTimeout(ctx, interval)
		_ = w.Check(cctx) // a primary away is the writes' error to report
		cancel()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (w *ReplicaWait) check(ctx context.Context, c redis.Cmdable, addr string) error {
	if w.cfg.Replicas != WaitAuto {
		return c.Ping(ctx).Err()
	}
	info, err := c.Info(ctx, "replication").Result()
	if err != nil {
		return err
	}
	w.mu.Lock()
	w.online[addr] = onlineReplicas(info)
	w.mu.Unlock()
	return nil
}

// onlineReplicas counts the replicas INFO replication lists as online: a
// replica still loading the primary's data set confirms nothing until it
// is done.
func onlineReplicas(info string) int {
	n := 0
	for line := range strings.SplitSeq(info, "\n") {
		if strings.HasPrefix(line, "slave") && strings.Contains(line, ":ip=") && strings.Contains(line, ",state=online,") {
			n++
		}
	}
	return n
}

// need is how many replicas a write to the primary at addr, reached
// through c, waits for now. A primary not asked yet is asked now.
func (w *ReplicaWait) need(ctx context.Context, c redis.Cmdable, addr string) int {
	if w.Off() {
		return 0
	}
	if w.cfg.Replicas != WaitAuto {
		return w.cfg.Replicas
	}
	w.mu.Lock()
	n, known := w.online[addr]
	w.mu.Unlock()
	if !known {
		if w.check(ctx, c, addr) != nil {
			return 1 // not known: the safe side
		}
		w.mu.Lock()
		n = w.online[addr]
		w.mu.Unlock()
	}
	return min(n, 1)
}

// waitTail is what a pipeline to one primary ends with: WAIT for n
// replicas, or, with WaitAuto on a primary last seen without a replica,
// a look at its replicas now.
type waitTail struct {
	n    int
	addr string
	wait *redis.IntCmd
	// role is ROLE, or INFO replication where ROLE is refused (info).
	role *redis.Cmd
	info *redis.StringCmd
}

// tail appends to p what a pipeline to the primary at addr ends with when
// it waits for n replicas.
//
// A primary is asked about its replicas every PingInterval, so one whose
// replica came online since would go unwaited for up to an interval, and a
// failover in that gap could lose what was acknowledged. ROLE, in the same
// pipeline, costs no round trip and lists, as WAIT counts, only replicas
// that are online.
func (w *ReplicaWait) tail(ctx context.Context, p redis.Pipeliner, n int, addr string) waitTail {
	t := waitTail{n: n, addr: addr}
	switch {
	case n > 0:
		// Pipeliner lacks Wait. The connection's read timeout (seconds)
		// outlasts the WAIT's own.
		t.wait = redis.NewIntCmd(ctx, "wait", n, w.cfg.Timeout.Milliseconds())
		_ = p.Process(ctx, t.wait)
	case w.Off() || w.cfg.Replicas != WaitAuto:
	case w.noRole.Load():
		t.info = redis.NewStringCmd(ctx, "info", "replication")
		_ = p.Process(ctx, t.info)
	default:
		t.role = redis.NewCmd(ctx, "role")
		_ = p.Process(ctx, t.role)
	}
	return t
}

// confirmed reports what the tail of a pipeline said: nil when it waited
// for none and the primary still has no replica online, or its WAIT
// counted them all, else why the writes are not confirmed. A replica seen
// online now is recorded, so that the writes' retry waits for it.
func (w *ReplicaWait) confirmed(t waitTail) error {
	switch {
	case t.wait != nil:
		got, err := t.wait.Result()
		switch {
		case err != nil:
			return fmt.Errorf("wait for %d replicas: %w", t.n, err)
		case got < int64(t.n):
			return fmt.Errorf("%w: %d of %d replicas within %v", ErrNotReplicated, got, t.n, w.cfg.Timeout)
		}
		return nil
	case t.role != nil:
		reply, err := t.role.Slice()
		if err != nil {
			// Refused (an ACL without ROLE, say): INFO from now on, and
			// this write not taken for safe.
			w.noRole.Store(true)
			return fmt.Errorf("%w: ask the primary for its replicas: %w", ErrNotReplicated, err)
		}
		return w.seen(t.addr, roleReplicas(reply))
	case t.info != nil:
		info, err := t.info.Result()
		if err != nil {
			return fmt.Errorf("%w: ask the primary for its replicas: %w", ErrNotReplicated, err)
		}
		return w.seen(t.addr, onlineReplicas(info))
	}
	return nil
}

// err is the error of the tail's own command, if any.
func (t waitTail) err() error {
	switch {
	case t.wait != nil:
		return t.wait.Err()
	case t.role != nil:
		return t.role.Err()
	case t.info != nil:
		return t.info.Err()
	}
	return nil
}

// seen records that the primary at addr, written to without waiting, had
// n replicas online right after: with one, the writes are not confirmed.
func (w *ReplicaWait) seen(addr string, n int) error {
	if n == 0 {
		return nil
	}
	w.mu.Lock()
	w.online[addr] = max(n, 1)
	w.mu.Unlock()
	return fmt.Errorf("%w: a replica came online, not waited for", ErrNotReplicated)
}

// roleReplicas counts the replicas a primary's ROLE reply lists (master,
// offset, then one entry per replica online); -1, as if one, for a
// reply of another form, a server that is not a primary among them.
func roleReplicas(reply []any) int {
	if len(reply) != 3 || reply[0] != "master" {
		return -1
	}
	replicas, ok := reply[2].([]any)
	if !ok {
		return -1
	}
	return len(replicas)
}

// Do runs fn's commands on the connection to the primary that serves key,
// in one pipeline, followed by WAIT when replicas are waited for. It
// returns the pipeline's first error, or one wrapping ErrNotReplicated
// when the replicas did not confirm the writes in time.
func (w *ReplicaWait) Do(ctx context.Context, key string, fn func(p redis.Pipeliner)) error {
	var c redis.Cmdable = w.client
	addr := ""
	if w.cluster != nil {
		node, err := w.cluster.MasterForKey(ctx, key)
		if err != nil {
			return fmt.Errorf("find the shard of %s: %w", key, err)
		}
		c, addr = node, node.Options().Addr
	}
	n := w.need(ctx, c, addr)
	var tail waitTail
	_, err := c.Pipelined(ctx, func(p redis.Pipeliner) error {
		fn(p)
		tail = w.tail(ctx, p, n, addr)
		return nil
	})
	if err != nil && err != tail.err() {
		return err // one of fn's writes failed
	}
	if err := w.confirmed(tail); err != nil {
		w.short.Add(1)
		return err
	}
	return nil
}
