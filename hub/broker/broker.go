package broker

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"time"
)

// ErrUnavailable wraps every error that means the broker could not be reached
// or could not make a publication durable. Callers answer such a failure with
// "try again later", never with success.
var ErrUnavailable = errors.New("broker unavailable")

// Message is one normalized event on its way to its channels.
type Message struct {
	// App is the SdkAppid the event belongs to. Channels live inside an app.
	App string
	// ID identifies the IM event. A second Message with the same App and ID
	// within the dedupe window is not published again.
	ID string
	// Channels are the channel names inside App, such as "group:G1",
	// "user:jared" or "app".
	Channels []string
	// Data is the encoded event. It is published unchanged.
	Data []byte
}

// Result says what Publish did.
type Result struct {
	// Duplicate is true when the message ID was seen within the dedupe window
	// and nothing was published.
	Duplicate bool
	// Positions holds the position each channel's publication got, in the
	// order of Message.Channels. When Duplicate, they are the positions the
	// first publication got, where the broker still knows them (a zero
	// Position where not). It is nil when Spooled.
	Positions []Position
	// Spooled is true when the message was made durable in a local spool
	// instead, to be published (exactly once) when the broker is back.
	Spooled bool
}

// Position is a place in one channel's stream of publications.
//
// Offsets increase by one per publication within an epoch. A channel's
// stream starts with its first publication, under a new epoch, and lives
// until it has been quiet for a while (RedisConfig.MetaTTL, a day by
// default; the in-process broker keeps a subscribed channel's stream for as
// long as it is subscribed). A stream that starts again, after that or
// because the in-process broker restarted or Redis lost the channel's keys,
// has another epoch, so a client holding an offset of an older epoch can
// tell that it cannot be continued.
//
// Within an epoch, a Tag names the publication at each offset (see Tag).
// Redis can hand an offset out twice: a replica promoted without the last
// writes its primary acknowledged, or a backup restored, goes on from an
// older offset under the same epoch. The Tags of what it publishes then
// differ from those handed out before, so a position from before is
// recognised as one the stream no longer holds.
//
// A channel without a stream keeps no state at all. Its position is offset
// 0 of an epoch of its own, which says "nothing seen as of now": it names
// the data set it was read from and the time it was read, and contains a
// '.', which a stream's epoch never does. The first publication of the
// stream that starts next follows it (see [Follows]), and History recovers
// from it, as long as the data set is the same and that stream started
// (or, with none, the read is) within the shortest life of a stream after
// the position was read: sooner than another stream could have come and
// gone in between. Two reads of an empty channel may give different
// positions; each is continued as said.
type Position struct {
	Offset uint64
	Epoch  string
	// Tag names the publication at Offset: a hash of the Tag before it
	// and of the message's ID (see NextTag). Two streams of one epoch
	// agree on the Tag at an offset only where they hold the same events
	// up to it. It is empty where nothing is known: offset 0, a position
	// given in the older form "offset:epoch", a publication of a node
	// that did not tag. An empty Tag agrees with every other.
	Tag string
}

// String formats p as "offset:epoch:tag", or "offset:epoch" without a
// Tag: the form clients see.
func (p Position) String() string {
	s := strconv.FormatUint(p.Offset, 10) + ":" + p.Epoch
	if p.Tag != "" {
		s += ":" + p.Tag
	}
	return s
}

// ParsePosition parses the form written by [Position.String]. The older
// form without a tag is read as a position whose Tag is not known.
func ParsePosition(s string) (Position, error) {
	off, rest, ok := strings.Cut(s, ":")
	if !ok {
		return Position{}, errors.New("position: want offset:epoch:tag")
	}
	epoch, tag, tagged := strings.Cut(rest, ":")
	if epoch == "" {
		return Position{}, errors.New("position: the epoch is empty")
	}
	if tagged && !validTag(tag) {
		return Position{}, errors.New("position: the tag is not a tag")
	}
	n, err := strconv.ParseUint(off, 10, 64)
	if err != nil {
		return Position{}, errors.New("position: offset is not a number")
	}
	return Position{Offset: n, Epoch: epoch, Tag: tag}, nil
}

// Publication is one message as it arrives on one channel.
type Publication struct {
	App     string
	Channel string
	Position
	// Prev is the Tag of the position before this one in its stream,
	// where known: a publication follows a position only when Prev is
	// that position's Tag (see Follows).
	Prev string
	// Data is the encoded event. Receivers must not modify it: the same
	// slice may be handed to every subscriber.
	Data []byte
}

// Handler receives the publications of the channels a node subscribed to.
//
// The publications of one channel come in order, from one goroutine; those
// of different channels may come concurrently (a Redis Cluster has a
// connection per shard). While a channel moves between shards, a late
// publication from its old shard may overlap the new one's: offsets tell
// them apart. A Handler must not block: it is on the path of every
// publication of the node.
type Handler interface {
	HandlePublication(Publication)
	// HandleReconnect is called after the broker lost a subscription
	// connection and subscribed again, or moved channels to another Redis
	// Cluster shard. Publications made in between were not delivered; a
	// handler that needs them reads them from history.
	HandleReconnect()
}

// Broker publishes messages and delivers them to subscribed nodes.
// All methods are safe for concurrent use.
type Broker interface {
	// Publish publishes m to each of its channels in one step: either every
	// channel gets it, or (on error) the message may be retried with the
	// same ID and is then published exactly once. Errors wrap ErrUnavailable.
	Publish(ctx context.Context, m Message) (Result, error)

	// Subscribe makes the broker deliver publications of app's channel to
	// the handler given to Run. It returns once the subscription is in
	// effect: every publication made after Subscribe returns is delivered.
	// Subscribing to a channel already subscribed is a no-op; counting
	// local interest is the caller's job. It keeps nothing about the
	// channel beyond the subscription.
	Subscribe(ctx context.Context, app, channel string) error

	// Unsubscribe stops deliveries of app's channel. A channel that has
	// no stream is then forgotten.
	Unsubscribe(ctx context.Context, app, channel string) error

	// History returns the channel's current position and, when since is
	// not nil, the publications after it that history still holds. It
	// leaves no state behind: a channel without a stream gets the position
	// of an empty channel, which the stream that starts next continues.
	History(ctx context.Context, app, channel string, since *Position) (History, error)

	// Run delivers publications to h until ctx is done, keeping the
	// broker's connections alive. It returns nil when ctx is done.
	Run(ctx context.Context, h Handler) error

	// Ready returns nil when the broker can publish now, else why not.
	Ready() error

	// Close releases the broker's resources. Run must have returned.
	Close() error
}

// History is the answer of Broker.History.
type History struct {
	// Latest is the position of the channel's newest publication, or an
	// empty channel's position (offset 0) when it has no stream.
	Latest Position
	// Publications are those after since, oldest first, when Recovered.
	Publications []Publication
	// Recovered is true when Publications are every publication after
	// since: since is of the current epoch and history reaches back to it,
	// or since is an empty channel's position that the current stream
	// continues (see [Position]) and history reaches back to its start.
	// A since with an empty epoch and offset 0 means "from the start of
	// the current epoch".
	Recovered bool
}

// Config holds the settings every broker shares.
type Config struct {
	// DedupeWindow is how long a message ID is remembered. Zero disables
	// deduplication.
	DedupeWindow time.Duration
	// HistorySize is how many publications each channel keeps.
	HistorySize int
	// HistoryHold keeps a busy channel's publications beyond HistorySize
	// until they are this old, up to HistoryHoldFactor times HistorySize:
	// a node whose subscription was away for less than HistoryHold (a
	// Redis that restarted, a failover) and a client that reconnects
	// within it still find every event they missed, however many were
	// published meanwhile. Zero keeps HistorySize alone.
	HistoryHold time.Duration
	// HistoryTTL is how long a channel's history is kept after its last
	// publication.
	HistoryTTL time.Duration
}

// DefaultConfig returns the settings a hub runs with unless told
// otherwise: a ten-minute dedupe window and a hundred events of history
// per channel, kept ten minutes. A broker takes each zero field as it
// stands (no deduplication, no history), not as this default.
func DefaultConfig() Config {
	return Config{DedupeWindow: 10 * time.Minute, HistorySize: 100, HistoryTTL: 10 * time.Minute}
}

// HistoryHoldFactor bounds what HistoryHold keeps: a channel so busy that
// HistoryHold holds more than this many times HistorySize keeps only that
// many, so memory stays bounded whatever the rate.
const HistoryHoldFactor = 10

// historyCap is the most publications a channel keeps.
func (c Config) historyCap() int {
	if c.HistoryHold <= 0 {
		return c.HistorySize
	}
	return c.HistorySize * HistoryHoldFactor
}
