package forward

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"sync"
	"time"

	"github.com/imhub/imhub/internal/retry"
	"github.com/imhub/imhub/internal/textclip"
)

// attempt posts e to its app's backend once, within timeout, and returns
// the backend's status and answer. Its errors name the backend by scheme,
// host and path only: they are logged, and kept with a dead letter.
func (f *Forwarder) attempt(ctx context.Context, e Entry, timeout time.Duration) (int, []byte, error) {
	b, ok := f.targets[e.App]
	if !ok {
		return 0, nil, fmt.Errorf("app %s has no backend to forward to", e.App)
	}
	if b.err != nil {
		return 0, nil, b.err
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "", bytes.NewReader(e.Body))
	if err != nil {
		return 0, nil, fmt.Errorf("forward request to %s: %w", b.name, err)
	}
	req.URL = b.url(e.Query, f.cfg.Now())
	req.Host = req.URL.Host
	if e.ContentType != "" {
		req.Header.Set("Content-Type", e.ContentType)
	}
	resp, err := f.client.Do(req)
	if err != nil {
		return 0, nil, b.postError(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, f.cfg.MaxAnswer+1))
	if err != nil {
		return resp.StatusCode, nil, fmt.Errorf("reading the answer of %s: %w", b.name, err)
	}
	if int64(len(body)) > f.cfg.MaxAnswer {
		return resp.StatusCode, nil, fmt.Errorf("%w: more than %d bytes", errAnswerTooLarge, f.cfg.MaxAnswer)
	}
	return resp.StatusCode, body, nil
}

// delivered reports whether a queued entry's answer means the backend has
// it: 2xx with ActionStatus OK, or with no body.
func delivered(status int, answer []byte) error {
	if status < 200 || status >= 300 {
		return fmt.Errorf("backend answered %d", status)
	}
	if len(bytes.TrimSpace(answer)) == 0 {
		return nil
	}
	var a struct{ ActionStatus string }
	if err := json.Unmarshal(answer, &a); err != nil {
		return fmt.Errorf("backend answered %d with a body that is not an IM answer: %w", status, err)
	}
	if a.ActionStatus != "OK" {
		return fmt.Errorf("backend answered ActionStatus %s", clip(a.ActionStatus))
	}
	return nil
}

// work delivers app's entries, up to Concurrency at once, until ctx is
// done, and waits for the deliveries it started.
func (f *Forwarder) work(ctx context.Context, app string) {
	slots := make(chan struct{}, f.cfg.Concurrency)
	release := func(n int) {
		for range n {
			<-slots
		}
	}
	var inflight sync.WaitGroup
	defer inflight.Wait()
	var backoff time.Duration
	var failing bool
	for ctx.Err() == nil {
		// Wait for one free slot, then take what else is free: entries
		// are taken only when they can be delivered at once, so none
		// waits in this process while another could deliver it.
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			return
		}
		n := 1
	more:
		for n < f.cfg.Concurrency {
			select {
			case slots <- struct{}{}:
				n++
			default:
				break more
			}
		}
		items, err := f.store.Take(ctx, app, f.cfg.Consumer, n)
		release(n - len(items))
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			if !failing {
				f.log.Warn("forward queue unavailable; retrying", "app", app, "err", err)
				failing = true
			}
			backoff = retry.Next(backoff, 100*time.Millisecond, 5*time.Second)
			retry.Sleep(ctx, retry.Jitter(backoff))
			continue
		}
		if failing {
			f.log.Info("forward queue available again", "app", app)
			failing, backoff = false, 0
		}
		for _, it := range items {
			inflight.Go(func() {
				defer release(1)
				f.deliver(ctx, it)
			})
		}
	}
}

// deliver makes one attempt at it and records the outcome in the store.
// When the store cannot record it, the entry stays taken and is delivered
// again once another taker claims it: at least once, never lost.
func (f *Forwarder) deliver(ctx context.Context, it Item) {
	e := it.Entry
	status, answer, err := f.attempt(ctx, e, f.cfg.AttemptTimeout)
	if err == nil {
		err = delivered(status, answer)
	}
	if ctx.Err() != nil {
		return // shutting down: the entry is delivered again later
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	now := f.cfg.Now()
	if err == nil {
		if serr := f.store.Done(sctx, it); serr != nil {
			f.log.Warn("forward delivered but not recorded; it will be delivered again", "app", e.App, "id", e.ID, "err", serr)
		}
		f.m.count(e.App, resultDelivered)
		f.m.lag.WithLabelValues(e.App).Set(now.Sub(time.UnixMilli(e.Accepted)).Seconds())
		return
	}
	it.Attempts++
	it.LastError = textclip.Cut(err.Error(), 512)
	deadline := time.UnixMilli(e.Accepted).Add(f.cfg.MaxAge)
	if !now.Before(deadline) {
		if serr := f.store.Dead(sctx, it); serr != nil {
			f.log.Warn("forward dead letter not recorded; it will be tried again", "app", e.App, "id", e.ID, "err", serr)
			return
		}
		f.m.count(e.App, resultDead)
		f.log.Error("forward given up after max age; kept as a dead letter", "app", e.App, "id", e.ID,
			"command", clip(e.Command), "attempts", it.Attempts, "err", err)
		return
	}
	// One last attempt at the deadline. The store keeps time by the
	// system clock, Config.Now or not.
	wait := min(f.backoff(it.Attempts), deadline.Sub(now))
	if serr := f.store.Retry(sctx, it, time.Now().Add(wait)); serr != nil {
		f.log.Warn("forward retry not recorded; it will be tried again", "app", e.App, "id", e.ID, "err", serr)
		return
	}
	f.m.count(e.App, resultRetried)
	f.log.Info("forward failed; will retry", "app", e.App, "id", e.ID, "command", clip(e.Command),
		"attempt", it.Attempts, "retry_in", wait.Round(time.Millisecond), "err", err)
}

// backoff is the wait before attempt n+1: a random time up to
// min(RetryMax, RetryBase·2ⁿ⁻¹), so that many failed entries do not come
// back in step.
func (f *Forwarder) backoff(n int) time.Duration {
	d := f.cfg.RetryMax
	if n-1 < 30 {
		d = min(d, f.cfg.RetryBase<<(n-1))
	}
	return rand.N(d + 1)
}
