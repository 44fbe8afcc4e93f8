package redistest

import (
	"context"
	"fmt"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/imhub/imhub/internal/redisprobe"
)

// Cluster is a real Redis Cluster on loopback ports, made with redis-cli
// --cluster create: primaries, and replicas of them if asked for.
type Cluster struct {
	t testing.TB
	// Nodes are the primaries as made, then their replicas. After a
	// failover a replica may serve slots and a primary follow it.
	Nodes []*Server
	// CAFile is set for a cluster that speaks TLS (StartTLSCluster).
	CAFile string
}

// ClusterOptions shape the cluster StartClusterWith makes.
type ClusterOptions struct {
	// Primaries is how many nodes serve the slots, shared out evenly.
	Primaries int
	// Replicas is how many replicas each primary has (0: none).
	Replicas int
	// Persist gives every node an append-only file synced on every write,
	// as in Options.Persist: a node killed and started again has every
	// acknowledged write back.
	Persist bool
	// TLS between clients and nodes and between the nodes, with
	// certificates of a CA in the cluster's CAFile.
	TLS bool
	// Conf adds configuration lines to every node.
	Conf []string
}

// StartCluster starts n cluster-enabled redis-servers, joins them into one
// cluster that shares the slots out evenly, and waits until every node
// reports the cluster ok. The nodes give up on an unreachable peer after
// two seconds, so that tests of failures run quickly (and not so quickly
// that a loaded machine makes a node seem gone). conf adds configuration
// lines to every node.
func StartCluster(t testing.TB, n int, conf ...string) *Cluster {
	t.Helper()
	return StartClusterWith(t, ClusterOptions{Primaries: n, Conf: conf})
}

// StartTLSCluster is StartCluster with TLS between clients and nodes and
// between the nodes, with certificates of a CA in CAFile.
func StartTLSCluster(t testing.TB, n int, conf ...string) *Cluster {
	t.Helper()
	return StartClusterWith(t, ClusterOptions{Primaries: n, TLS: true, Conf: conf})
}

// StartClusterWith is StartCluster with replicas, persistence or TLS. With
// replicas it also waits until each has synced with its primary.
func StartClusterWith(t testing.TB, o ClusterOptions) *Cluster {
	t.Helper()
	if _, err := exec.LookPath("redis-cli"); err != nil {
		t.Fatalf("redis-cli is not installed, so this test cannot run: use `make test`, which installs it, or `apt-get install -y redis-server` (%v)", err)
	}
	c := &Cluster{t: t}
	conf := o.Conf
	args := []string{"--cluster", "create"}
	if o.TLS {
		var tlsConf []string
		tlsConf, c.CAFile = tlsFiles(t)
		conf = append(append(tlsConf, "tls-cluster yes"), conf...)
		args = []string{"--tls", "--cacert", c.CAFile, "--cluster", "create"}
	}
	for range o.Primaries * (1 + o.Replicas) {
		s := StartWith(t, Options{Port: FreePort(t), TLS: o.TLS, Persist: o.Persist, Conf: append([]string{
			"cluster-enabled yes",
			"cluster-config-file nodes.conf",
			"cluster-node-timeout 2000",
			fmt.Sprintf("cluster-port %d", FreePort(t)),
		}, conf...)})
		c.Nodes = append(c.Nodes, s)
		args = append(args, s.Addr())
	}
	args = append(args, "--cluster-replicas", strconv.Itoa(o.Replicas), "--cluster-yes")
	// The command waits for the nodes to agree; bounded, so that a node
	// that never joins fails the test instead of hanging it.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if out, err := exec.CommandContext(ctx, "redis-cli", args...).CombinedOutput(); err != nil {
		t.Fatalf("redis-cli --cluster create: %v\n%s", err, out)
	}
	c.WaitOK()
	if o.Replicas > 0 {
		c.WaitReplicasSynced()
	}
	return c
}

// URL is the cluster's URL for the hub's -redis flag: every node is a seed.
func (c *Cluster) URL() string { return c.UserURL("") }

// UserURL is URL with userinfo, such as "user:password", if not empty.
func (c *Cluster) UserURL(userinfo string) string {
	if userinfo != "" {
		userinfo += "@"
	}
	scheme := "redis+cluster://"
	if c.CAFile != "" {
		scheme = "rediss+cluster://"
	}
	u := scheme + userinfo + c.Nodes[0].Addr()
	for i, s := range c.Nodes[1:] {
		sep := "&"
		if i == 0 {
			sep = "?"
		}
		u += sep + "addr=" + s.Addr()
	}
	return u
}

// WaitOK waits until every running node reports cluster_state:ok and
// agrees on who serves every slot.
func (c *Cluster) WaitOK() {
	c.t.Helper()
	c.WaitState("ok")
}

// WaitState waits until every running node reports cluster_state:state
// and, for "ok", agrees on who serves every slot.
func (c *Cluster) WaitState(state string) {
	c.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := c.check(state)
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("redis cluster not %s after 30s: %v", state, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (c *Cluster) check(state string) error {
	ctx := context.Background()
	var first string
	for _, s := range c.Nodes {
		if s.cmd == nil {
			continue
		}
		cl := redis.NewClient(&redis.Options{Network: "unix", Addr: s.sock})
		info, err := cl.ClusterInfo(ctx).Result()
		var slots string
		if err == nil {
			slots, err = cl.ClusterNodes(ctx).Result()
			slots = slotsOnly(slots)
		}
		_ = cl.Close()
		if err != nil {
			return fmt.Errorf("%s: %w", s.Addr(), err)
		}
		if !strings.Contains(info, "cluster_state:"+state) {
			return fmt.Errorf("%s: cluster state not %s", s.Addr(), state)
		}
		if state != "ok" {
			continue
		}
		if first == "" {
			first = slots
		} else if slots != first {
			return fmt.Errorf("%s: does not agree on the slots yet", s.Addr())
		}
	}
	return nil
}

// slotsOnly keeps, of CLUSTER NODES, each primary's address and slots.
func slotsOnly(nodes string) string {
	var out []string
	for _, line := range strings.Split(strings.TrimSpace(nodes), "\n") {
		f := strings.Fields(line)
		if len(f) < 8 || !strings.Contains(f[2], "master") {
			continue
		}
		addr, _, _ := strings.Cut(f[1], "@")
		out = append(out, addr+" "+strings.Join(f[8:], " "))
	}
	slices.Sort(out)
	return strings.Join(out, "\n")
}

// NodeID is the cluster node ID of s.
func (c *Cluster) NodeID(s *Server) string {
	c.t.Helper()
	id, err := s.Client().Do(context.Background(), "CLUSTER", "MYID").Text()
	if err != nil {
		c.t.Fatalf("CLUSTER MYID: %v", err)
	}
	return id
}

// Owner returns the node that serves key's slot.
func (c *Cluster) Owner(key string) *Server {
	c.t.Helper()
	ctx := context.Background()
	slot, err := c.Nodes[0].Client().ClusterKeySlot(ctx, key).Result()
	if err != nil {
		c.t.Fatalf("CLUSTER KEYSLOT: %v", err)
	}
	nodes, err := c.Nodes[0].Client().ClusterSlots(ctx).Result()
	if err != nil {
		c.t.Fatalf("CLUSTER SLOTS: %v", err)
	}
	for _, r := range nodes {
		if int64(r.Start) <= slot && slot <= int64(r.End) {
			for _, s := range c.Nodes {
				if r.Nodes[0].Addr == s.Addr() {
					return s
				}
			}
		}
	}
	c.t.Fatalf("no node serves slot %d of %q", slot, key)
	return nil
}

// MoveSlot moves the slot of key, and the keys in it, to the node to, the
// way redis-cli --cluster reshard does: IMPORTING, MIGRATING, MIGRATE,
// then SETSLOT NODE on every node.
func (c *Cluster) MoveSlot(key string, to *Server) {
	c.t.Helper()
	ctx := context.Background()
	from := c.Owner(key)
	if from == to {
		c.t.Fatalf("slot of %q is on %s already", key, to.Addr())
	}
	slot, err := from.Client().ClusterKeySlot(ctx, key).Result()
	if err != nil {
		c.t.Fatal(err)
	}
	fromID, toID := c.NodeID(from), c.NodeID(to)
	must := func(err error) {
		c.t.Helper()
		if err != nil {
			c.t.Fatalf("move slot %d: %v", slot, err)
		}
	}
	must(to.Client().Do(ctx, "CLUSTER", "SETSLOT", slot, "IMPORTING", fromID).Err())
	must(from.Client().Do(ctx, "CLUSTER", "SETSLOT", slot, "MIGRATING", toID).Err())
	for {
		keys, err := from.Client().ClusterGetKeysInSlot(ctx, int(slot), 100).Result()
		must(err)
		if len(keys) == 0 {
			break
		}
		args := []any{"MIGRATE", "127.0.0.1", to.opts.Port, "", 0, 5000, "KEYS"}
		for _, k := range keys {
			args = append(args, k)
		}
		must(from.Client().Do(ctx, args...).Err())
	}
	for _, s := range []*Server{to, from} {
		must(s.Client().Do(ctx, "CLUSTER", "SETSLOT", slot, "NODE", toID).Err())
	}
	for _, s := range c.Nodes {
		if s != to && s != from && s.cmd != nil {
			must(s.Client().Do(ctx, "CLUSTER", "SETSLOT", slot, "NODE", toID).Err())
		}
	}
	c.WaitOK()
}

// Running reports whether s is running now (not stopped or killed).
func (s *Server) Running() bool { return s.cmd != nil }

// role returns s's replication role, "master" or "slave", and for a
// replica whether its link to the primary is up.
func role(s *Server) (string, bool, error) {
	info, err := s.Client().Info(context.Background(), "replication").Result()
	if err != nil {
		return "", false, err
	}
	r := ""
	up := false
	for _, line := range strings.Split(info, "\n") {
		line = strings.TrimSpace(line)
		if v, ok := strings.CutPrefix(line, "role:"); ok {
			r = v
		}
		if line == "master_link_status:up" {
			up = true
		}
	}
	return r, up, nil
}

// Primary reports whether s is a primary now.
func (c *Cluster) Primary(s *Server) bool {
	c.t.Helper()
	r, _, err := role(s)
	if err != nil {
		c.t.Fatalf("INFO replication of %s: %v", s.Addr(), err)
	}
	return r == "master"
}

// ReplicaOf returns a running replica of the primary p.
func (c *Cluster) ReplicaOf(p *Server) *Server {
	c.t.Helper()
	id := c.NodeID(p)
	for _, s := range c.Nodes {
		if s == p || !s.Running() {
			continue
		}
		out, err := s.Client().Do(context.Background(), "CLUSTER", "MYID").Text()
		if err != nil || out == id {
			continue
		}
		nodes, err := s.Client().ClusterNodes(context.Background()).Result()
		if err != nil {
			continue
		}
		for _, line := range strings.Split(nodes, "\n") {
			f := strings.Fields(line)
			if len(f) > 3 && strings.Contains(f[2], "myself") && strings.Contains(f[2], "slave") && f[3] == id {
				return s
			}
		}
	}
	c.t.Fatalf("no running replica of %s", p.Addr())
	return nil
}

// WaitReplicasSynced waits until every running replica's link to its
// primary is up: what a primary acknowledged from then on reaches it.
func (c *Cluster) WaitReplicasSynced() {
	c.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var err error
		for _, s := range c.Nodes {
			if !s.Running() {
				continue
			}
			r, up, rerr := role(s)
			switch {
			case rerr != nil:
				err = rerr
			case r == "slave" && !up:
				err = fmt.Errorf("%s: replica link down", s.Addr())
			}
		}
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("redis cluster replicas not synced after 30s: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// CommandCalls returns how many times s ran cmd (lower case, as INFO
// commandstats names it), scripts' calls included.
func CommandCalls(t testing.TB, s *Server, cmd string) int {
	t.Helper()
	return commandStat(t, s, cmd)["calls"]
}

// CommandMicros returns the microseconds s spent running cmd (lower case,
// as INFO commandstats names it) and how many calls that was: the
// server's own cost, whatever the client's machine is doing.
func CommandMicros(t testing.TB, s *Server, cmd string) (usec, calls int) {
	t.Helper()
	st := commandStat(t, s, cmd)
	return st["usec"], st["calls"]
}

// commandStat returns the integer fields of cmd's line of INFO
// commandstats (calls, usec, …), none if it never ran.
func commandStat(t testing.TB, s *Server, cmd string) map[string]int {
	t.Helper()
	st, err := redisprobe.CommandStat(context.Background(), s.Client(), cmd)
	if err != nil {
		t.Fatalf("redistest: %v", err)
	}
	return st
}
