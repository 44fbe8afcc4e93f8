package spool

import (
	"context"
	"log/slog"
	"os"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imhub/imhub/hub/broker"
)

type down struct{}

func (down) Publish(context.Context, broker.Message) (broker.Result, error) {
	return broker.Result{}, broker.ErrUnavailable
}
func (down) Ready() error { return broker.ErrUnavailable }

// A failed append is answered 503 and leaves nothing behind that would
// hide the records acknowledged after it.
func TestFailedAppendIsRolledBack(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(Config{Dir: dir, MaxBytes: 1 << 20, Logger: slog.New(slog.DiscardHandler)}, down{})
	require.NoError(t, err)
	m := func(id string) broker.Message {
		return broker.Message{App: "1", ID: id, Channels: []string{"app"}, Data: []byte(`{"id":"` + id + `"}`)}
	}
	_, err = s.Publish(context.Background(), m("a"))
	require.NoError(t, err)

	// The next write fails half way: a read-only handle stands in for
	// the file, after a torn record is put in it by hand.
	good := s.tail
	f, err := os.OpenFile(good.Name(), os.O_WRONLY|os.O_APPEND, 0)
	require.NoError(t, err)
	_, err = f.Write([]byte{99, 0, 0, 0, 1, 2})
	require.NoError(t, err)
	f.Close()
	ro, err := os.Open(good.Name())
	require.NoError(t, err)
	good.Close()
	s.tail = ro
	_, err = s.Publish(context.Background(), m("b"))
	require.ErrorIs(t, err, broker.ErrUnavailable, "not acknowledged")

	_, err = s.Publish(context.Background(), m("c"))
	require.NoError(t, err, "the spool goes on")
	require.NoError(t, s.Close())

	again, err := Open(Config{Dir: dir, MaxBytes: 1 << 20, Logger: slog.New(slog.DiscardHandler)}, down{})
	require.NoError(t, err)
	var ids []string
	for _, seg := range again.segs {
		for _, e := range seg.entries {
			ids = append(ids, e.msg.ID)
		}
	}
	assert.Equal(t, []string{"a", "c"}, ids, "every acknowledged record survives, in order")
}
