package hubload

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"syscall"
	"time"
)

// StartRedis starts redis-server on the unix socket sock, without
// persistence (a restart loses every key, as a Redis without a replica
// does), with dir as its working directory, and waits until it listens.
// It dies with the calling process.
func StartRedis(ctx context.Context, dir, sock string) (*exec.Cmd, error) {
	cmd := exec.Command("redis-server", "--port", "0", "--unixsocket", sock, "--unixsocketperm", "700",
		"--save", "", "--appendonly", "no", "--dir", dir, "--loglevel", "warning")
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
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
			Stop(cmd)
			return nil, fmt.Errorf("redis-server did not listen on %s", sock)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// StartHub starts the hub binary bin with args and -addr on a free
// loopback port, its output in logPath, and waits until it is ready; it
// returns the process and the hub's base URL. A hub that does not become
// ready is stopped, and the error carries its log. It dies with the
// calling process.
func StartHub(ctx context.Context, bin string, args []string, logPath string) (*exec.Cmd, string, error) {
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
	hub.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := hub.Start(); err != nil {
		return nil, "", fmt.Errorf("start %s (make build): %w", bin, err)
	}
	url := "http://" + addr
	if err := WaitReady(ctx, url); err != nil {
		b, _ := os.ReadFile(logPath)
		Stop(hub)
		return nil, "", fmt.Errorf("%w\n%s", err, b)
	}
	return hub, url, nil
}

// WaitReady waits up to 30 s for the hub at base to answer /readyz.
func WaitReady(ctx context.Context, base string) error {
	return WaitHealthy(ctx, base+"/readyz")
}

// WaitHealthy waits up to 30 s, or until ctx ends, for url to answer 200.
func WaitHealthy(ctx context.Context, url string) error {
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

// Stop ends p with SIGTERM, and SIGKILL if it is still there 20 s later,
// and waits for it. A process not started, or already waited for, is
// left alone.
func Stop(p *exec.Cmd) {
	if p.Process == nil || p.ProcessState != nil {
		return
	}
	_ = p.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = p.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		_ = p.Process.Kill()
		<-done
	}
}

// RaiseFileLimit lifts the soft open-file limit to the hard one: each
// connection is a file.
func RaiseFileLimit() {
	var lim syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim) == nil && lim.Cur < lim.Max {
		lim.Cur = lim.Max
		_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
	}
}
