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

	"github.com/redis/go-redis/v9"

	"github.com/imhub/imhub/internal/hubload"
)

// env is the hub under test, and what hubbench started for it.
type env struct {
	hub   string // base URL
	pid   int
	procs []*exec.Cmd
	dirs  []string
	// backend is where the hub forwards, or nil.
	backend *backend
	// redisSock is the unix socket of the Redis (the primary) that
	// -start -redis started for the hub, or "".
	redisSock string
}

func setUp(ctx context.Context, cfg Config, progress io.Writer) (*env, error) {
	e := &env{hub: strings.TrimSuffix(cfg.Hub, "/"), pid: cfg.HubPID}
	if !cfg.Start {
		if cfg.Target == targetCentrifugo {
			return e, hubload.WaitHealthy(ctx, e.hub+"/health")
		}
		return e, hubload.WaitReady(ctx, e.hub)
	}
	dir, err := os.MkdirTemp("", "hubbench")
	if err != nil {
		return nil, err
	}
	e.dirs = append(e.dirs, dir)
	switch cfg.Target {
	case targetFloor:
		return e, e.startFloor(ctx, cfg, progress)
	case targetCentrifugo:
		return e, e.startCentrifugo(ctx, cfg, dir, progress)
	}
	args := []string{"-apps", cfg.App + ":" + cfg.CallbackToken, "-jwt-secret", cfg.Secret,
		"-max-conns", "1000000", "-max-conns-per-ip", "1000000", "-log-level", "warn", "-dedupe-window", "1m",
		// Its own spool: the default one is the user's, and a hub run later
		// would publish what a benchmark left there.
		"-spool-dir", filepath.Join(dir, "spool")}
	if cfg.forwardTo != "" {
		args = append(args, "-forward", cfg.App+"="+cfg.forwardTo)
	}
	if cfg.Redis {
		sock := filepath.Join(dir, "redis.sock")
		if err := e.startRedis(ctx, dir, sock, cfg.replica); err != nil {
			e.tearDown()
			return nil, err
		}
		args = append(args, "-redis", "unix://"+sock)
	}
	args = append(args, cfg.hubArgs...)
	hub, url, err := hubload.StartHub(ctx, cfg.HubBin, args, filepath.Join(dir, "hub.log"))
	if err != nil {
		e.tearDown()
		return nil, err
	}
	e.procs = append(e.procs, hub)
	e.hub, e.pid = url, hub.Process.Pid
	fmt.Fprintf(progress, "started hub %s (pid %d, broker %s", e.hub, e.pid, map[bool]string{true: "redis", false: "memory"}[cfg.Redis])
	if cfg.Redis && cfg.replica {
		fmt.Fprint(progress, " with a replica")
	}
	if len(cfg.hubArgs) > 0 {
		fmt.Fprintf(progress, ", %s", strings.Join(cfg.hubArgs, " "))
	}
	if cfg.forwardTo != "" {
		fmt.Fprintf(progress, ", forwarding to %s", cfg.forwardTo)
	}
	fmt.Fprintln(progress, ")")
	return e, nil
}

// startRedis starts the hub's Redis on the unix socket sock: one server,
// or withReplica a primary and a synced replica of it, whose command
// counts (INFO commandstats) then start from nothing, so that they count
// the hub's commands and not those of the wait for the replica.
// tearDown stops them.
func (e *env) startRedis(ctx context.Context, dir, sock string, withReplica bool) error {
	if !withReplica {
		server, err := hubload.StartRedis(ctx, dir, sock)
		if err != nil {
			return err
		}
		e.procs, e.redisSock = append(e.procs, server), sock
		return nil
	}
	primary, replica, err := hubload.StartReplicatedRedis(ctx, dir, sock)
	if err != nil {
		return err
	}
	e.procs, e.redisSock = append(e.procs, primary, replica), sock
	c := redis.NewClient(&redis.Options{Network: "unix", Addr: sock})
	defer c.Close()
	if err := c.ConfigResetStat(ctx).Err(); err != nil {
		return fmt.Errorf("CONFIG RESETSTAT on the primary: %w", err)
	}
	return nil
}

// startCentrifugo starts a redis-server and Centrifugo on it, as setUp
// does the hub; tearDown stops them.
func (e *env) startCentrifugo(ctx context.Context, cfg Config, dir string, progress io.Writer) error {
	sock := filepath.Join(dir, "redis.sock")
	redis, err := hubload.StartRedis(ctx, dir, sock)
	if err != nil {
		e.tearDown()
		return err
	}
	e.procs = append(e.procs, redis)
	cmd, url, err := startCentrifugo(ctx, cfg.CentrifugoBin, dir, sock, cfg.Secret)
	if err != nil {
		e.tearDown()
		return err
	}
	e.procs = append(e.procs, cmd)
	e.hub, e.pid = url, cmd.Process.Pid
	fmt.Fprintf(progress, "started centrifugo %s (pid %d, redis engine)\n", e.hub, e.pid)
	return nil
}

// startFloor starts the floor server, hubbench itself in another process
// (floor.go); tearDown stops it.
func (e *env) startFloor(ctx context.Context, cfg Config, progress io.Writer) error {
	cmd, addr, err := startFloorServer(ctx, cfg.frameBytes())
	if err != nil {
		e.tearDown()
		return err
	}
	e.procs = append(e.procs, cmd)
	e.hub, e.pid = "floor://"+addr, cmd.Process.Pid
	fmt.Fprintf(progress, "started the floor %s (pid %d, frames of %d bytes)\n", addr, e.pid, cfg.frameBytes())
	return nil
}

// tearDown stops what setUp started, hub first.
func (e *env) tearDown() {
	for i := len(e.procs) - 1; i >= 0; i-- {
		hubload.Stop(e.procs[i])
	}
	for _, d := range e.dirs {
		os.RemoveAll(d)
	}
}

// procStats reads a process's CPU seconds (user+system) and RSS bytes.
func procStats(pid int) (cpu float64, rss int64, ok bool) {
	if pid <= 0 {
		return 0, 0, false
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, false
	}
	// Fields after the command name, which is in parentheses.
	rest := string(stat[strings.LastIndexByte(string(stat), ')')+2:])
	f := strings.Fields(rest)
	if len(f) < 22 {
		return 0, 0, false
	}
	utime, _ := strconv.ParseFloat(f[11], 64)
	stime, _ := strconv.ParseFloat(f[12], 64)
	const ticks = 100 // USER_HZ on Linux
	rssPages, _ := strconv.ParseInt(f[21], 10, 64)
	return (utime + stime) / ticks, rssPages * int64(os.Getpagesize()), true
}
