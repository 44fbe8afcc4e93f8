package hubload

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/imhub/imhub/internal/childproc"
	"github.com/imhub/imhub/internal/redisprobe"
)

// StartRedis starts redis-server on the unix socket sock, without
// persistence (a restart loses every key, as a Redis without a replica
// does), with dir as its working directory, and waits until it listens.
// It dies with the calling process. More are more of redis-server's
// arguments, which win over these: "--port", "6380".
func StartRedis(ctx context.Context, dir, sock string, more ...string) (*exec.Cmd, error) {
	args := []string{"--port", "0", "--unixsocket", sock, "--unixsocketperm", "700",
		"--save", "", "--appendonly", "no", "--dir", dir, "--loglevel", "warning"}
	cmd := exec.Command("redis-server", append(args, more...)...)
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
			Stop(cmd)
			return nil, fmt.Errorf("redis-server did not listen on %s", sock)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// StartReplicatedRedis starts a Redis primary on the unix socket sock, as
// StartRedis does, and a replica of it with dir's subdirectory replica as
// its working directory, and waits until the replica has synced and
// confirms the primary's writes: from then on what a WAIT on the primary
// counts is on the replica too. The primary also listens on a loopback
// port, for its replica. Both die with the calling process; on an error
// neither is left running.
func StartReplicatedRedis(ctx context.Context, dir, sock string) (primary, replica *exec.Cmd, err error) {
	addr, err := FreeAddr()
	if err != nil {
		return nil, nil, err
	}
	host, port, _ := net.SplitHostPort(addr)
	// The replica syncs at once, not after the 5 s a primary waits by
	// default for more replicas to share the transfer.
	primary, err = StartRedis(ctx, dir, sock, "--port", port, "--bind", host, "--repl-diskless-sync-delay", "0")
	if err != nil {
		return nil, nil, fmt.Errorf("the primary: %w", err)
	}
	replicaDir := filepath.Join(dir, "replica")
	if err = os.Mkdir(replicaDir, 0o700); err == nil {
		replica, err = StartRedis(ctx, replicaDir, filepath.Join(replicaDir, "redis.sock"), "--replicaof", host, port)
	}
	if err == nil {
		err = waitReplica(ctx, sock, filepath.Join(replicaDir, "redis.sock"))
	}
	if err != nil {
		if replica != nil {
			Stop(replica)
		}
		Stop(primary)
		return nil, nil, fmt.Errorf("the replica: %w", err)
	}
	return primary, replica, nil
}

// waitReplica waits until the replica on replicaSock has synced with the
// primary on primarySock, and the primary counts it in a WAIT.
func waitReplica(ctx context.Context, primarySock, replicaSock string) error {
	p := redis.NewClient(&redis.Options{Network: "unix", Addr: primarySock})
	defer p.Close()
	r := redis.NewClient(&redis.Options{Network: "unix", Addr: replicaSock})
	defer r.Close()
	if err := redisprobe.WaitSynced(ctx, r); err != nil {
		return err
	}
	return redisprobe.WaitConfirms(ctx, p, "hubload:sync")
}

// FreeAddr is a loopback address whose port was free a moment ago, for a
// server a run starts.
func FreeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("find a free loopback port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// StartHub starts the hub binary bin with args and -addr on a free
// loopback port, its output in logPath, and waits until it is ready; it
// returns the process and the hub's base URL. A hub that does not become
// ready is stopped, and the error carries its log. It dies with the
// calling process.
func StartHub(ctx context.Context, bin string, args []string, logPath string) (*exec.Cmd, string, error) {
	addr, err := FreeAddr()
	if err != nil {
		return nil, "", err
	}
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
