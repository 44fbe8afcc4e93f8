package forward

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"time"

	"github.com/imhub/imhub/hub/broker"
)

// Entry is one accepted callback on its way to the app's backend: what is
// sent again at each attempt, and how it has gone so far.
type Entry struct {
	// ID names the entry in logs and dead letters.
	ID          string `json:"id"`
	App         string `json:"app"`
	Command     string `json:"cmd"`
	Query       string `json:"q"`
	ContentType string `json:"ct,omitempty"`
	Body        []byte `json:"body"`
	// Accepted is when the hub accepted the callback, unix milliseconds;
	// MaxAge counts from it.
	Accepted int64 `json:"at"`
	// Attempts is how many deliveries failed.
	Attempts  int    `json:"n,omitempty"`
	LastError string `json:"err,omitempty"`
}

// Item is an entry taken from a store, for Done, Retry or Dead.
type Item struct {
	Entry
	// Ref is the store's name for the taken entry.
	Ref string
}

// Store is the queue of entries waiting for delivery. An entry taken and
// then neither done, retried nor dead (its taker died) is taken again.
// All methods are safe for concurrent use.
type Store interface {
	// Add queues e for delivery.
	Add(ctx context.Context, e Entry) error
	// Take returns up to n entries of app due for delivery, waiting a
	// little (about a second) when there are none.
	Take(ctx context.Context, app, consumer string, n int) ([]Item, error)
	// Done removes a delivered entry.
	Done(ctx context.Context, it Item) error
	// Retry puts it back, with its Attempts and LastError as they are now,
	// to be taken again at due.
	Retry(ctx context.Context, it Item, due time.Time) error
	// Dead moves it to app's dead letters.
	Dead(ctx context.Context, it Item) error
	// Backlog is the number of app's entries not yet delivered, dead
	// letters excepted.
	Backlog(ctx context.Context, app string) (int64, error)
	// DeadCount is the number of app's dead letters.
	DeadCount(ctx context.Context, app string) (int64, error)
	// Ready reports whether the store can take entries now.
	Ready() error
}

// StoreQueue returns the Queue that adds to store directly, each add
// bounded by timeout. Its errors wrap broker.ErrUnavailable, so that a
// spool in front of it keeps the entry instead; a spool opened with it as
// its next stage (it is a spool.Next) hands spooled entries back to the
// store when it is ready again.
func StoreQueue(store Store, timeout time.Duration, log *slog.Logger) interface {
	Queue
	Ready() error
} {
	if log == nil {
		log = slog.Default()
	}
	return storeQueue{store, timeout, log}
}

type storeQueue struct {
	store   Store
	timeout time.Duration
	log     *slog.Logger
}

func (q storeQueue) Publish(ctx context.Context, m broker.Message) (broker.Result, error) {
	var e Entry
	if err := json.Unmarshal(m.Data, &e); err != nil {
		// Only this package writes entries: one that does not decode
		// cannot become decodable by retrying it.
		q.log.Error("forward entry does not decode; dropped", "id", m.ID, "err", err)
		return broker.Result{}, nil
	}
	ctx, cancel := context.WithTimeout(ctx, q.timeout)
	defer cancel()
	if err := q.store.Add(ctx, e); err != nil {
		return broker.Result{}, fmt.Errorf("%w: %w", broker.ErrUnavailable, err)
	}
	return broker.Result{}, nil
}

func (q storeQueue) Ready() error { return q.store.Ready() }
