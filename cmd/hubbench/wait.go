package main

// The wait preset: what -redis-wait-replicas costs. Each round starts two
// hubs in turn, each with a Redis primary and a replica of its own, one
// with waiting off and one with auto (a WAIT for the replica after each
// batch of publications), and runs the ingest load against it: 64 senders
// of signed callbacks as fast as the hub answers, no subscribers. The
// order of the two alternates from round to round, so that the machine's
// drift falls on both; the figures are the medians.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/redis/go-redis/v9"
)

// WaitRun is one side of a round.
type WaitRun struct {
	Wait string  `json:"redis_wait_replicas"`
	Res  *Result `json:"result"`
	// Waits is how many WAIT commands the primary ran.
	Waits int64 `json:"primary_wait_calls"`
}

// WaitReport is the wait preset's figures.
type WaitReport struct {
	Rounds [][]WaitRun `json:"rounds"`
}

func runWait(ctx context.Context, cfg Config, out, progress io.Writer) error {
	ctx, cancel := context.WithTimeout(ctx, time.Duration(2*cfg.Rounds)*(cfg.Duration+cfg.budget()))
	defer cancel()
	var rep WaitReport
	for r := range cfg.Rounds {
		sides := []string{"0", "auto"}
		if r%2 == 1 {
			slices.Reverse(sides)
		}
		var round []WaitRun
		for _, w := range sides {
			c := cfg
			c.replica, c.hubArgs = true, []string{"-redis-wait-replicas", w}
			fmt.Fprintf(progress, "round %d/%d: -redis-wait-replicas %s\n", r+1, cfg.Rounds, w)
			run := WaitRun{Wait: w}
			res, err := runOnce(ctx, c, progress, func(e *env, _ *backend) error {
				n, err := commandCalls(ctx, e.redisSock, "wait")
				run.Waits = n
				return err
			})
			if err != nil {
				return fmt.Errorf("round %d, -redis-wait-replicas %s: %w", r+1, w, err)
			}
			if w == "auto" && run.Waits == 0 {
				return fmt.Errorf("round %d: the hub never waited for the replica", r+1)
			}
			run.Res = res
			round = append(round, run)
		}
		rep.Rounds = append(rep.Rounds, round)
	}
	rep.print(out, cfg.JSONOnly)
	return nil
}

func (rep WaitReport) print(w io.Writer, jsonOnly bool) {
	if !jsonOnly {
		med := func(wait string, f func(*Result) float64) float64 {
			var v []float64
			for _, round := range rep.Rounds {
				for _, run := range round {
					if run.Wait == wait {
						v = append(v, f(run.Res))
					}
				}
			}
			slices.Sort(v)
			return v[len(v)/2]
		}
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintf(tw, "medians of %d rounds\t-redis-wait-replicas 0\tauto (WAIT 1)\tauto / 0\n", len(rep.Rounds))
		for _, m := range []struct {
			name string
			f    func(*Result) float64
			unit string
		}{
			{"callbacks/s", func(r *Result) float64 { return r.CallbacksPerS }, "%.0f"},
			{"callback p50 ms", func(r *Result) float64 { return r.CallbackP50ms }, "%.2f"},
			{"callback p99 ms", func(r *Result) float64 { return r.CallbackP99ms }, "%.2f"},
			{"hub cpu s", func(r *Result) float64 { return r.HubCPU }, "%.1f"},
		} {
			off, on := med("0", m.f), med("auto", m.f)
			fmt.Fprintf(tw, "%s\t"+m.unit+"\t"+m.unit+"\t%.2f\n", m.name, off, on, on/off)
		}
		tw.Flush()
		for i, round := range rep.Rounds {
			for _, run := range round {
				fmt.Fprintf(w, "round %d, -redis-wait-replicas %s: %.0f callbacks/s, p50 %.2f ms, p99 %.2f ms, %d refused, %d WAITs\n",
					i+1, run.Wait, run.Res.CallbacksPerS, run.Res.CallbackP50ms, run.Res.CallbackP99ms, run.Res.Refused, run.Waits)
			}
		}
	}
	b, _ := json.Marshal(rep)
	fmt.Fprintf(w, "%s\n", b)
}

// startReplicatedRedis starts a Redis primary on the unix socket sock
// (and a loopback port, for its replica) and a replica of it, without
// persistence, and waits until the replica confirms writes.
func startReplicatedRedis(ctx context.Context, dir, sock string) ([]*exec.Cmd, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	start := func(sub string, args ...string) (*exec.Cmd, error) {
		d := filepath.Join(dir, sub)
		cmd := exec.Command("redis-server", append([]string{"--save", "", "--appendonly", "no", "--dir", dir,
			"--loglevel", "warning", "--dbfilename", sub + ".rdb", "--logfile", d + ".log"}, args...)...)
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		if err := cmd.Start(); err != nil {
			return nil, fmt.Errorf("start redis-server (apt-get install redis-server): %w", err)
		}
		return cmd, nil
	}
	primary, err := start("primary", "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--unixsocket", sock,
		"--unixsocketperm", "700", "--repl-diskless-sync-delay", "0")
	if err != nil {
		return nil, err
	}
	replica, err := start("replica", "--port", "0", "--unixsocket", filepath.Join(dir, "replica.sock"),
		"--replicaof", "127.0.0.1", strconv.Itoa(port))
	if err != nil {
		stopProcess(primary)
		return nil, err
	}
	procs := []*exec.Cmd{primary, replica}
	c := redis.NewClient(&redis.Options{Network: "unix", Addr: sock})
	defer c.Close()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var wait *redis.IntCmd
		_, err := c.Pipelined(ctx, func(p redis.Pipeliner) error {
			p.Set(ctx, "hubbench:sync", "1", 0)
			p.Del(ctx, "hubbench:sync")
			wait = redis.NewIntCmd(ctx, "wait", 1, 100)
			return p.Process(ctx, wait)
		})
		if err == nil && wait.Val() == 1 {
			// The run's WAITs are counted from here.
			if err := c.ConfigResetStat(ctx).Err(); err != nil {
				for _, p := range procs {
					stopProcess(p)
				}
				return nil, fmt.Errorf("CONFIG RESETSTAT: %w", err)
			}
			return procs, nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			for _, p := range procs {
				stopProcess(p)
			}
			return nil, fmt.Errorf("the replica did not confirm a write within 30s: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// commandCalls is how many times the Redis on sock ran cmd.
func commandCalls(ctx context.Context, sock, cmd string) (int64, error) {
	c := redis.NewClient(&redis.Options{Network: "unix", Addr: sock})
	defer c.Close()
	info, err := c.Info(ctx, "commandstats").Result()
	if err != nil {
		return 0, fmt.Errorf("INFO commandstats: %w", err)
	}
	for line := range strings.SplitSeq(info, "\n") {
		rest, ok := strings.CutPrefix(strings.TrimSpace(line), "cmdstat_"+cmd+":calls=")
		if ok {
			n, _, _ := strings.Cut(rest, ",")
			return strconv.ParseInt(n, 10, 64)
		}
	}
	return 0, nil
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}
