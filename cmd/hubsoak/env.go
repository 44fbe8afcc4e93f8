package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/imhub/imhub/internal/hubload"
)

// soakEnv is what a soak run starts: one redis-server on a Unix socket and
// two hubs joined through it, each with a spool for the time Redis is away.
type soakEnv struct {
	dir   string
	sock  string
	redis *exec.Cmd
	rdb   *redis.Client // for INFO only
	hubs  []*exec.Cmd
	urls  []string
}

// soakHubArgs are the flags of each hub: a short send queue and ping so
// that slow clients are closed within seconds. History is short: a
// channel's history grows to -history-size events however old (a key
// expires only when its channel is idle for -history-ttl), and at the
// soak's 0.1 one-to-one messages per user per second 20 events fill in
// 200 s, well before the last third, where a rise would be judged as
// growth; 20 still cover the events of a Redis restart.
func soakHubArgs(cfg config, env *soakEnv, i int) []string {
	return []string{"-node", "soak" + strconv.Itoa(i+1),
		"-apps", cfg.App + ":" + cfg.CallbackToken, "-jwt-secret", cfg.Secret,
		"-redis", "unix://" + env.sock, "-spool-dir", filepath.Join(env.dir, "spool"+strconv.Itoa(i+1)),
		"-send-queue", "64", "-ping-interval", "5s", "-write-timeout", "5s",
		"-dedupe-window", "1m", "-history-size", "20", "-log-level", "warn"}
}

func startSoakEnv(ctx context.Context, cfg config, hubs int, progress io.Writer) (*soakEnv, error) {
	dir, err := os.MkdirTemp("", "hubsoak")
	if err != nil {
		return nil, err
	}
	e := &soakEnv{dir: dir, sock: filepath.Join(dir, "redis.sock")}
	if err := e.startRedis(ctx); err != nil {
		e.stop()
		return nil, err
	}
	// Redis is away at each restart, as planned: the sample says so.
	redis.SetLogger(quietRedis{})
	e.rdb = redis.NewClient(&redis.Options{Network: "unix", Addr: e.sock, MaxRetries: -1, DialTimeout: time.Second, ReadTimeout: 2 * time.Second})
	for i := range hubs {
		hub, url, err := hubload.StartHub(ctx, cfg.HubBin, soakHubArgs(cfg, e, i), filepath.Join(dir, fmt.Sprintf("hub%d.log", i+1)))
		if err != nil {
			e.stop()
			return nil, err
		}
		e.hubs = append(e.hubs, hub)
		e.urls = append(e.urls, url)
		fmt.Fprintf(progress, "started hub %d at %s (pid %d)\n", i+1, e.urls[i], hub.Process.Pid)
	}
	return e, nil
}

// startRedis starts redis-server on the run's socket, without persistence:
// a restart loses every key, as a Redis without a replica does.
func (e *soakEnv) startRedis(ctx context.Context) error {
	cmd, err := hubload.StartRedis(ctx, e.dir, e.sock)
	if err != nil {
		return err
	}
	e.redis = cmd
	return nil
}

// restartRedis stops Redis, keeps it away for down, and starts it again
// empty on the same socket.
func (e *soakEnv) restartRedis(ctx context.Context, down time.Duration) error {
	hubload.Stop(e.redis)
	select {
	case <-time.After(down):
	case <-ctx.Done():
		return ctx.Err()
	}
	return e.startRedis(ctx)
}

// redisMemory is Redis's used_memory in bytes.
func (e *soakEnv) redisMemory(ctx context.Context) (float64, error) {
	info, err := e.rdb.Info(ctx, "memory").Result()
	if err != nil {
		return 0, fmt.Errorf("redis INFO memory: %w", err)
	}
	for line := range strings.SplitSeq(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "used_memory:"); ok {
			return strconv.ParseFloat(v, 64)
		}
	}
	return 0, fmt.Errorf("redis INFO memory: no used_memory")
}

// stop ends the hubs, then Redis; the run's directory, with the hubs'
// logs, stays.
func (e *soakEnv) stop() {
	for _, h := range e.hubs {
		hubload.Stop(h)
	}
	if e.rdb != nil {
		e.rdb.Close()
	}
	if e.redis != nil {
		hubload.Stop(e.redis)
	}
}

// quietRedis drops go-redis's own messages.
type quietRedis struct{}

func (quietRedis) Printf(context.Context, string, ...any) {}
