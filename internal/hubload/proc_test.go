package hubload

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// redisDir is a working directory for redis-server, short enough for its
// unix socket's path (t.TempDir() can be too long), removed at the end.
func redisDir(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Fatalf("redis-server is not installed, so this test cannot run: `make deps` installs it (%v)", err)
	}
	dir, err := os.MkdirTemp("", "hubload")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// A replicated Redis is ready when it returns: the primary's WAIT counts
// the replica at once, and what the primary took is on the replica.
func TestStartReplicatedRedis(t *testing.T) {
	dir := redisDir(t)
	sock := filepath.Join(dir, "redis.sock")
	primary, replica, err := StartReplicatedRedis(context.Background(), dir, sock)
	require.NoError(t, err)
	t.Cleanup(func() { Stop(replica); Stop(primary) })

	ctx := context.Background()
	p := redis.NewClient(&redis.Options{Network: "unix", Addr: sock})
	defer p.Close()
	require.NoError(t, p.Set(ctx, "k", "v", 0).Err())
	n, err := p.Do(ctx, "wait", 1, 0).Int()
	require.NoError(t, err)
	assert.Equal(t, 1, n, "the replica confirms the write")
	r := redis.NewClient(&redis.Options{Network: "unix", Addr: filepath.Join(dir, "replica", "redis.sock")})
	defer r.Close()
	got, err := r.Get(ctx, "k").Result()
	require.NoError(t, err)
	assert.Equal(t, "v", got)
	role, err := r.Do(ctx, "role").Slice()
	require.NoError(t, err)
	assert.Equal(t, "slave", role[0])
}

// A replica that cannot be started leaves no primary behind.
func TestStartReplicatedRedisFails(t *testing.T) {
	dir := redisDir(t)
	// Where the replica's directory goes, a file.
	require.NoError(t, os.WriteFile(filepath.Join(dir, "replica"), nil, 0o600))
	sock := filepath.Join(dir, "redis.sock")
	primary, replica, err := StartReplicatedRedis(context.Background(), dir, sock)
	require.ErrorContains(t, err, "the replica")
	assert.Nil(t, primary)
	assert.Nil(t, replica)
	_, err = net.Dial("unix", sock)
	assert.Error(t, err, "the primary is stopped")
}
