package redistest

import (
	"context"
	"strings"
	"testing"

	"github.com/imhub/imhub/internal/redisprobe"
)

// StartReplicated starts a primary and a replica of it, each on a loopback
// port of its own with opts, and waits until the replica has synced: from
// then on what the primary takes reaches the replica.
func StartReplicated(t testing.TB, opts Options) (primary, replica *Server) {
	t.Helper()
	po, ro := opts, opts
	po.Port, ro.Port = FreePort(t), FreePort(t)
	// A replica syncs at once, not after the 5 s Redis waits by default
	// for more replicas to share the transfer.
	po.Conf = append([]string{"repl-diskless-sync-delay 0"}, opts.Conf...)
	primary = StartWith(t, po)
	ro.Conf = append([]string{"replicaof 127.0.0.1 " + strings.TrimPrefix(primary.Addr(), "127.0.0.1:")}, opts.Conf...)
	replica = StartWith(t, ro)
	replica.WaitSynced()
	primary.WaitReplicaOnline()
	return primary, replica
}

// WaitReplicaOnline waits until s, a primary, has a replica that
// confirms its writes (WAIT counts it): Redis lists a replica as online a
// moment before it does.
func (s *Server) WaitReplicaOnline() {
	s.t.Helper()
	s.WaitReplicaOnlineFor("redistest:sync")
}

// WaitReplicaOnlineFor is WaitReplicaOnline writing key, which s must
// serve: on a cluster, a key of one of its slots. The key is deleted.
func (s *Server) WaitReplicaOnlineFor(key string) {
	s.t.Helper()
	if err := redisprobe.WaitConfirms(context.Background(), s.Client(), key); err != nil {
		s.t.Fatalf("redistest: primary %s: %v", s.Addr(), err)
	}
}

// CutReplicas closes s's connections to its replicas, as a partition
// between them would: what s takes from then on reaches no replica. A
// replica that is running connects again; pause it first to keep it away.
func (s *Server) CutReplicas() {
	s.t.Helper()
	if err := s.Client().Do(context.Background(), "CLIENT", "KILL", "TYPE", "replica").Err(); err != nil {
		s.t.Fatalf("redistest: CLIENT KILL TYPE replica: %v", err)
	}
}

// StartSentinel starts a Redis Sentinel that watches primary under name.
// It fails over only when told to (SENTINEL FAILOVER): it would take a
// primary down after a minute of silence.
func StartSentinel(t testing.TB, primary *Server, name string) *Server {
	t.Helper()
	return StartWith(t, Options{Port: FreePort(t), Sentinel: true, Conf: []string{
		"sentinel monitor " + name + " " + strings.Replace(primary.Addr(), ":", " ", 1) + " 1",
		"sentinel down-after-milliseconds " + name + " 60000",
		"sentinel failover-timeout " + name + " 5000",
	}})
}

// WaitSynced waits until s, a replica, has its link to its primary up and
// has loaded the primary's data set.
func (s *Server) WaitSynced() {
	s.t.Helper()
	if err := redisprobe.WaitSynced(context.Background(), s.Client()); err != nil {
		s.t.Fatalf("redistest: replica %s: %v", s.Addr(), err)
	}
}

// Promote makes s, a replica, a primary of its own (REPLICAOF NO ONE).
func (s *Server) Promote() {
	s.t.Helper()
	if err := s.Client().Do(context.Background(), "REPLICAOF", "NO", "ONE").Err(); err != nil {
		s.t.Fatalf("redistest: REPLICAOF NO ONE: %v", err)
	}
}
