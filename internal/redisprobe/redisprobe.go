// Package redisprobe reads what a Redis server says of itself, and waits
// until it says what a run needs: that a replica has synced, that a
// replica confirms the primary's writes, how often a command ran. It
// returns errors and needs no test around it, so that the tests' servers
// (internal/redistest) and the load tools' (internal/hubload) share it.
package redisprobe

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Within is how long each wait waits at the most: a replica on the same
// machine syncs in well under a second, one on a busy machine in a few.
const Within = 30 * time.Second

// pollEvery is the pause between two looks.
const pollEvery = 20 * time.Millisecond

// WaitSynced waits, for Within or until ctx ends, until c, a replica, has
// its link to its primary up and has loaded the primary's data set.
func WaitSynced(ctx context.Context, c *redis.Client) error {
	err := poll(ctx, func() error {
		info, err := c.Info(ctx, "replication").Result()
		if err != nil {
			return fmt.Errorf("INFO replication: %w", err)
		}
		if !strings.Contains(info, "master_link_status:up") || strings.Contains(info, "master_sync_in_progress:1") {
			return fmt.Errorf("INFO replication says:\n%s", strings.TrimSpace(info))
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("replica not synced: %w", err)
	}
	return nil
}

// WaitConfirms waits, for Within or until ctx ends, until a replica of c,
// a primary, confirms its writes: a write of key (which c must serve; on
// a cluster, a key of one of its slots) followed by WAIT 1 counts it.
// Redis lists a replica as online a moment before WAIT counts it. The key
// is deleted.
func WaitConfirms(ctx context.Context, c *redis.Client, key string) error {
	err := poll(ctx, func() error {
		var wait *redis.IntCmd
		_, err := c.Pipelined(ctx, func(p redis.Pipeliner) error {
			p.Set(ctx, key, "1", 0)
			p.Del(ctx, key)
			wait = redis.NewIntCmd(ctx, "wait", 1, 100)
			return p.Process(ctx, wait)
		})
		switch {
		case err != nil:
			return fmt.Errorf("SET, DEL and WAIT of %s: %w", key, err)
		case wait.Val() < 1:
			return errors.New("WAIT 1 counted no replica")
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("no replica confirmed a write: %w", err)
	}
	return nil
}

// CommandStat is the integer fields (calls, usec, …) of cmd's line of c's
// INFO commandstats: cmd in lower case, as Redis names it there, and
// counted since the server started or its counts were last reset (CONFIG
// RESETSTAT). A command that never ran has no fields.
func CommandStat(ctx context.Context, c *redis.Client, cmd string) (map[string]int, error) {
	info, err := c.Info(ctx, "commandstats").Result()
	if err != nil {
		return nil, fmt.Errorf("INFO commandstats: %w", err)
	}
	return commandStat(info, cmd), nil
}

// commandStat reads cmd's line out of the text of INFO commandstats.
func commandStat(info, cmd string) map[string]int {
	out := map[string]int{}
	for line := range strings.Lines(info) {
		rest, ok := strings.CutPrefix(strings.TrimSpace(line), "cmdstat_"+cmd+":")
		if !ok {
			continue
		}
		for kv := range strings.SplitSeq(rest, ",") {
			k, v, _ := strings.Cut(kv, "=")
			if n, err := strconv.Atoi(v); err == nil {
				out[k] = n
			}
		}
	}
	return out
}

// poll calls look until it returns nil, Within has passed or ctx ends;
// then it returns what look said last, with why it stopped.
func poll(ctx context.Context, look func() error) error {
	deadline := time.Now().Add(Within)
	for {
		err := look()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("still after %s: %w", Within, err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w, with %w", ctx.Err(), err)
		case <-time.After(pollEvery):
		}
	}
}
