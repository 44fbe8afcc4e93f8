// Package spool keeps callbacks on local disk while the broker cannot take
// them, so that an event the IM backend handed over is never acknowledged
// and then lost.
//
// A [Spool] is a Publisher in front of a broker. While its files are empty
// it passes each message straight through. When the broker is unavailable
// it appends the message to a segment file and syncs it before returning,
// and from then on every message goes through the spool, in order, until
// [Spool.Run] has published all of them. Messages keep their IDs, so one
// published twice (a crash between publishing and recording it) is dropped
// by the broker's deduplication. Start with [Open].
package spool

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/imhub/imhub/hub/broker"
)

// ErrFull is returned (wrapping broker.ErrUnavailable) when the broker is
// unavailable and the spool has no room left.
var ErrFull = errors.New("spool is full")

// Next is what the spool publishes to.
type Next interface {
	Publish(ctx context.Context, m broker.Message) (broker.Result, error)
	Ready() error
}

// Config configures a Spool.
type Config struct {
	// Dir holds the segment files; it is created if missing.
	Dir string
	// MaxBytes bounds the files' total size.
	MaxBytes int64
	// SegmentBytes is the size at which a new segment file is started;
	// default 16 MiB.
	SegmentBytes int64
	// Retry is how often publishing is tried while the broker is
	// unavailable; default 500ms.
	Retry  time.Duration
	Logger *slog.Logger
	// Registerer, when set, receives the spool's metrics.
	Registerer prometheus.Registerer
}

// Spool is a durable queue of messages in front of a broker.
type Spool struct {
	cfg  Config
	next Next
	log  *slog.Logger
	wake chan struct{}

	mu      sync.Mutex
	segs    []*segment // oldest first; the last is appended to
	bytes   int64      // total size of the files
	pending int        // messages not yet published
	tail    *os.File   // the last segment, open for appending
	lock    *os.File   // holds the directory's lock while open
	nextID  uint64
	closed  bool
	// broken is set when a sync failed: what the disk holds is then
	// unknown, and nothing more is acknowledged until a restart reads it.
	broken error

	published prometheus.Counter
}

type segment struct {
	id      uint64
	path    string
	size    int64
	entries []entry // unpublished records, in order
}

type entry struct {
	at  time.Time
	msg broker.Message
}

// record is a message as stored.
type record struct {
	At       int64           `json:"at"`
	App      string          `json:"app"`
	ID       string          `json:"id"`
	Channels []string        `json:"channels"`
	Data     json.RawMessage `json:"data"`
}

const headerSize = 8 // uint32 length, uint32 CRC-32C

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// DefaultConfig returns the sizes and pace Open gives the zero fields of
// a Config, and the bound a hub gives MaxBytes unless told otherwise:
// 256 MiB (Open takes a zero MaxBytes as it stands, a spool with no room).
func DefaultConfig() Config {
	return Config{MaxBytes: 256 << 20, SegmentBytes: 16 << 20, Retry: 500 * time.Millisecond}
}

// Open loads the segments in cfg.Dir, left by an earlier run, and returns
// a spool that publishes to next.
func Open(cfg Config, next Next) (*Spool, error) {
	d := DefaultConfig()
	if cfg.SegmentBytes <= 0 {
		cfg.SegmentBytes = d.SegmentBytes
	}
	if cfg.Retry <= 0 {
		cfg.Retry = d.Retry
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	lock, err := lockDir(cfg.Dir)
	if err != nil {
		return nil, err
	}
	s := &Spool{cfg: cfg, next: next, log: cfg.Logger, wake: make(chan struct{}, 1), lock: lock}
	if err := s.load(); err != nil {
		lock.Close()
		return nil, err
	}
	s.metrics()
	if s.pending > 0 {
		s.log.Warn("spool holds events from an earlier run; they are published when the broker is reachable",
			"events", s.pending, "bytes", s.bytes, "dir", cfg.Dir)
	}
	return s, nil
}

func (s *Spool) metrics() {
	s.published = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "imhub_spool_published_total", Help: "Spooled events published to the broker.",
	})
	if s.cfg.Registerer == nil {
		return
	}
	s.cfg.Registerer.MustRegister(s.published,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "imhub_spool_events", Help: "Events waiting in the local spool.",
		}, func() float64 { n, _, _ := s.Depth(); return float64(n) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "imhub_spool_bytes", Help: "Size of the local spool's files.",
		}, func() float64 { _, b, _ := s.Depth(); return float64(b) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "imhub_spool_max_bytes", Help: "The largest size of the local spool's files (-spool-max-bytes); beyond it events are refused.",
		}, func() float64 { return float64(s.cfg.MaxBytes) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "imhub_spool_oldest_age_seconds", Help: "Age of the oldest event waiting in the spool; 0 when empty.",
		}, func() float64 {
			_, _, oldest := s.Depth()
			if oldest.IsZero() {
				return 0
			}
			return time.Since(oldest).Seconds()
		}),
	)
}

// Depth returns the events waiting, the files' size, and when the oldest
// waiting event was spooled (zero when none).
func (s *Spool) Depth() (events int, bytes int64, oldest time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, seg := range s.segs {
		if len(seg.entries) > 0 {
			oldest = seg.entries[0].at
			break
		}
	}
	return s.pending, s.bytes, oldest
}

// Publish implements the callback handler's Publisher. It publishes m
// directly while the spool is empty; if that fails as unavailable, or the
// spool holds messages (which go first), it appends m durably and reports
// it Spooled.
func (s *Spool) Publish(ctx context.Context, m broker.Message) (broker.Result, error) {
	s.mu.Lock()
	empty := s.pending == 0
	s.mu.Unlock()
	if empty {
		res, err := s.next.Publish(ctx, m)
		if err == nil || !errors.Is(err, broker.ErrUnavailable) {
			return res, err
		}
	}
	if err := s.append(m); err != nil {
		return broker.Result{}, err
	}
	return broker.Result{Spooled: true}, nil
}

func (s *Spool) append(m broker.Message) error {
	now := time.Now()
	payload, err := json.Marshal(record{At: now.UnixMilli(), App: m.App, ID: m.ID, Channels: m.Channels, Data: m.Data})
	if err != nil {
		return fmt.Errorf("spool: encode %s: %w", m.ID, err)
	}
	buf := make([]byte, headerSize+len(payload))
	binary.LittleEndian.PutUint32(buf[0:], uint32(len(payload)))
	binary.LittleEndian.PutUint32(buf[4:], crc32.Checksum(payload, crcTable))
	copy(buf[headerSize:], payload)

	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return fmt.Errorf("%w: spool is closed", broker.ErrUnavailable)
	}
	if s.broken != nil {
		return fmt.Errorf("%w: spool: %w", broker.ErrUnavailable, s.broken)
	}
	if s.bytes+int64(len(buf)) > s.cfg.MaxBytes {
		return fmt.Errorf("%w: %w (%d of %d bytes)", broker.ErrUnavailable, ErrFull, s.bytes, s.cfg.MaxBytes)
	}
	seg, err := s.tailSegment(int64(len(buf)))
	if err != nil {
		return fmt.Errorf("%w: spool: %w", broker.ErrUnavailable, err)
	}
	if _, err := s.tail.Write(buf); err != nil {
		// Part of the record may be in the file: cut it off, so that the
		// records appended after it are readable, and go on in a new
		// segment.
		s.rollBack(seg, err)
		return fmt.Errorf("%w: spool write: %w", broker.ErrUnavailable, err)
	}
	// The message is acknowledged once this returns: it must be on disk.
	if err := s.tail.Sync(); err != nil {
		s.rollBack(seg, err)
		s.broken = fmt.Errorf("sync failed, restart to recover: %w", err)
		s.log.Error("spool sync failed; refusing callbacks until restart", "err", err)
		return fmt.Errorf("%w: spool sync: %w", broker.ErrUnavailable, err)
	}
	seg.size += int64(len(buf))
	seg.entries = append(seg.entries, entry{now, m})
	s.bytes += int64(len(buf))
	s.pending++
	select {
	case s.wake <- struct{}{}:
	default:
	}
	return nil
}

// rollBack cuts seg's file back to its last whole record after a failed
// append and closes it; the next append starts a new segment.
func (s *Spool) rollBack(seg *segment, cause error) {
	if err := os.Truncate(seg.path, seg.size); err != nil {
		s.broken = fmt.Errorf("cutting a failed append (%v) failed: %w", cause, err)
		s.log.Error("spool cannot cut a failed append; refusing callbacks until restart", "err", err)
	}
	_ = s.tail.Close()
	s.tail = nil
}

// tailSegment returns the segment to append n bytes to, starting a new
// file when there is none or the last is full.
func (s *Spool) tailSegment(n int64) (*segment, error) {
	if len(s.segs) > 0 && s.tail != nil {
		last := s.segs[len(s.segs)-1]
		if last.size+n <= s.cfg.SegmentBytes || last.size == 0 {
			return last, nil
		}
	}
	if s.tail != nil {
		_ = s.tail.Close()
		s.tail = nil
	}
	s.nextID++
	seg := &segment{id: s.nextID, path: filepath.Join(s.cfg.Dir, fmt.Sprintf("%016d.spool", s.nextID))}
	f, err := os.OpenFile(seg.path, os.O_CREATE|os.O_EXCL|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syncDir(s.cfg.Dir); err != nil {
		f.Close()
		return nil, err
	}
	s.tail = f
	s.segs = append(s.segs, seg)
	return seg, nil
}

// Run publishes spooled messages, oldest first, whenever the broker is
// ready, until ctx is done.
func (s *Spool) Run(ctx context.Context) error {
	t := time.NewTicker(s.cfg.Retry)
	defer t.Stop()
	for {
		s.drain(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-s.wake:
		case <-t.C:
		}
	}
}

// drain publishes until the spool is empty, the broker fails, or ctx ends.
func (s *Spool) drain(ctx context.Context) {
	for ctx.Err() == nil {
		s.mu.Lock()
		seg, e, ok := s.head()
		s.mu.Unlock()
		if !ok || s.next.Ready() != nil {
			return
		}
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, err := s.next.Publish(pctx, e.msg)
		cancel()
		if err != nil {
			s.log.Warn("publishing a spooled event failed; will retry", "id", e.msg.ID, "err", err)
			return
		}
		s.published.Inc()
		s.mu.Lock()
		s.consume(seg)
		s.mu.Unlock()
	}
}

// head returns the oldest unpublished entry.
func (s *Spool) head() (*segment, entry, bool) {
	for _, seg := range s.segs {
		if len(seg.entries) > 0 {
			return seg, seg.entries[0], true
		}
	}
	return nil, entry{}, false
}

// consume marks seg's first entry published, and removes segments whose
// entries are all published. A crash before the file is removed publishes
// its entries again on the next start; the broker drops them as repeats.
func (s *Spool) consume(seg *segment) {
	seg.entries[0] = entry{}
	seg.entries = seg.entries[1:]
	s.pending--
	for len(s.segs) > 0 && len(s.segs[0].entries) == 0 {
		done := s.segs[0]
		if len(s.segs) == 1 && s.tail != nil {
			_ = s.tail.Close()
			s.tail = nil
		}
		if err := os.Remove(done.path); err != nil {
			s.log.Error("removing a published spool segment failed", "path", done.path, "err", err)
		}
		s.bytes -= done.size
		s.segs = s.segs[1:]
	}
	if len(s.segs) == 0 {
		s.bytes = 0
	}
}

// Close closes the spool's files. Messages not yet published stay on disk
// for the next Open.
func (s *Spool) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	defer s.lock.Close()
	if s.tail != nil {
		err := s.tail.Close()
		s.tail = nil
		return err
	}
	return nil
}

// load reads every segment in the directory. A record cut short or
// corrupt at the end of the last segment (a crash while appending, before
// the caller was answered) is cut off; anywhere else it is an error.
func (s *Spool) load() error {
	names, err := filepath.Glob(filepath.Join(s.cfg.Dir, "*.spool"))
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	slices.Sort(names)
	for i, name := range names {
		id, err := strconv.ParseUint(strings.TrimSuffix(filepath.Base(name), ".spool"), 10, 64)
		if err != nil {
			return fmt.Errorf("spool: unexpected file %s", name)
		}
		seg, err := readSegment(name, id, i == len(names)-1)
		if err != nil {
			return err
		}
		s.nextID = id
		if len(seg.entries) == 0 {
			os.Remove(name)
			continue
		}
		s.segs = append(s.segs, seg)
		s.bytes += seg.size
		s.pending += len(seg.entries)
	}
	return nil
}

func readSegment(path string, id uint64, last bool) (*segment, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	defer f.Close()
	seg := &segment{id: id, path: path}
	r := bufio.NewReader(f)
	var off int64
	for {
		var hdr [headerSize]byte
		_, err := io.ReadFull(r, hdr[:])
		if err == io.EOF {
			break
		}
		var payload []byte
		if err == nil {
			n := binary.LittleEndian.Uint32(hdr[0:])
			payload = make([]byte, n)
			_, err = io.ReadFull(r, payload)
			if err == nil && crc32.Checksum(payload, crcTable) != binary.LittleEndian.Uint32(hdr[4:]) {
				err = errors.New("checksum mismatch")
			}
		}
		var rec record
		if err == nil {
			err = json.Unmarshal(payload, &rec)
		}
		if err != nil {
			if !last {
				return nil, fmt.Errorf("spool: %s is corrupt at byte %d: %v", path, off, err)
			}
			if terr := f.Truncate(off); terr != nil {
				return nil, fmt.Errorf("spool: cut the torn tail of %s: %w", path, terr)
			}
			break
		}
		off += int64(headerSize + len(payload))
		seg.entries = append(seg.entries, entry{
			at:  time.UnixMilli(rec.At),
			msg: broker.Message{App: rec.App, ID: rec.ID, Channels: rec.Channels, Data: rec.Data},
		})
	}
	seg.size = off
	return seg, nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
