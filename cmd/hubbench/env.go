package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/imhub/imhub/internal/childproc"
)

// env is the hub under test, and what hubbench started for it.
type env struct {
	hub   string // base URL
	pid   int
	procs []*exec.Cmd
	dirs  []string
	// backend is where the hub forwards, or nil.
	backend *backend
}

func setUp(ctx context.Context, cfg Config, progress io.Writer) (*env, error) {
	e := &env{hub: strings.TrimSuffix(cfg.Hub, "/"), pid: cfg.HubPID}
	if !cfg.Start {
		if cfg.Target == targetCentrifugo {
			return e, waitHealthy(ctx, e.hub+"/health")
		}
		return e, waitReady(ctx, e.hub)
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
		redis, err := startRedisServer(ctx, dir, sock)
		if err != nil {
			e.tearDown()
			return nil, err
		}
		e.procs = append(e.procs, redis)
		args = append(args, "-redis", "unix://"+sock)
	}
	hub, url, err := startHub(ctx, cfg.HubBin, args, filepath.Join(dir, "hub.log"))
	if err != nil {
		e.tearDown()
		return nil, err
	}
	e.procs = append(e.procs, hub)
	e.hub, e.pid = url, hub.Process.Pid
	fmt.Fprintf(progress, "started hub %s (pid %d, broker %s", e.hub, e.pid, map[bool]string{true: "redis", false: "memory"}[cfg.Redis])
	if cfg.forwardTo != "" {
		fmt.Fprintf(progress, ", forwarding to %s", cfg.forwardTo)
	}
	fmt.Fprintln(progress, ")")
	return e, nil
}

// startRedisServer starts redis-server on the unix socket sock, without
// persistence, and waits until it listens. It dies with hubbench.
func startRedisServer(ctx context.Context, dir, sock string) (*exec.Cmd, error) {
	cmd := exec.Command("redis-server", "--port", "0", "--unixsocket", sock, "--unixsocketperm", "700",
		"--save", "", "--appendonly", "no", "--dir", dir, "--loglevel", "warning")
	childproc.DieWithParent(cmd)
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start redis-server (apt-get install redis-server): %w", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if c, err := net.Dial("unix", sock); err == nil {
			c.Close()
			return cmd, nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			stopProcess(cmd)
			return nil, fmt.Errorf("redis-server did not listen on %s", sock)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// startHub starts the hub binary with args on a free loopback port, its
// output in logPath, and waits until it is ready. It dies with hubbench.
func startHub(ctx context.Context, bin string, args []string, logPath string) (*exec.Cmd, string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, "", err
	}
	addr := ln.Addr().String()
	ln.Close()
	log, err := os.Create(logPath)
	if err != nil {
		return nil, "", err
	}
	defer log.Close()
	hub := exec.Command(bin, append(args, "-addr", addr)...)
	hub.Stdout, hub.Stderr = log, log
	childproc.DieWithParent(hub)
	if err := hub.Start(); err != nil {
		return nil, "", fmt.Errorf("start %s (make build): %w", bin, err)
	}
	url := "http://" + addr
	if err := waitReady(ctx, url); err != nil {
		b, _ := os.ReadFile(logPath)
		stopProcess(hub)
		return nil, "", fmt.Errorf("%w\n%s", err, b)
	}
	return hub, url, nil
}

// startCentrifugo starts a redis-server and Centrifugo on it, as setUp
// does the hub; tearDown stops them.
func (e *env) startCentrifugo(ctx context.Context, cfg Config, dir string, progress io.Writer) error {
	sock := filepath.Join(dir, "redis.sock")
	redis, err := startRedisServer(ctx, dir, sock)
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

func waitReady(ctx context.Context, base string) error {
	return waitHealthy(ctx, base+"/readyz")
}

// waitHealthy waits for url to answer 200.
func waitHealthy(ctx context.Context, url string) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("%s does not answer 200: %v", url, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// tearDown stops what setUp started, hub first.
func (e *env) tearDown() {
	for i := len(e.procs) - 1; i >= 0; i-- {
		stopProcess(e.procs[i])
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
