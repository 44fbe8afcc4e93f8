package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/imhub/imhub/internal/hubload"
)

// ForwardReport is the forward preset's figures: ingest with forwarding
// off and on, each against a hub of its own, and the Before* probe against
// the second. Names are stable: scripts read the JSON.
type ForwardReport struct {
	Off   *Result `json:"forwarding_off"`
	On    *Result `json:"forwarding_on"`
	Probe Probe   `json:"before_probe"`
}

// Probe is the Before* latency: the same signed callback sent one at a
// time through the hub (which waits for the backend's verdict) and straight
// to the backend, in turns.
type Probe struct {
	N           int     `json:"probes"`
	DirectP50ms float64 `json:"direct_p50_ms"`
	DirectP99ms float64 `json:"direct_p99_ms"`
	HubP50ms    float64 `json:"via_hub_p50_ms"`
	HubP99ms    float64 `json:"via_hub_p99_ms"`
	// AddedP50ms and AddedP99ms are the hub's quantile less the direct one.
	AddedP50ms float64 `json:"added_p50_ms"`
	AddedP99ms float64 `json:"added_p99_ms"`
}

// runForward runs ingest without forwarding, then with it, then the
// Before* probe, and prints the ratios.
func runForward(ctx context.Context, cfg Config, out, progress io.Writer) error {
	ctx, cancel := context.WithTimeout(ctx, cfg.Duration+cfg.budget())
	defer cancel()
	off := cfg
	off.Forward = false
	fmt.Fprintln(progress, "1/3 ingest, forwarding off")
	resOff, err := runOnce(ctx, off, measure, progress, nil)
	if err != nil {
		return fmt.Errorf("ingest, forwarding off: %w", err)
	}
	on := cfg
	on.Forward = true
	fmt.Fprintln(progress, "2/3 ingest, forwarding on")
	rep := ForwardReport{Off: resOff}
	rep.On, err = runOnce(ctx, on, measure, progress, func(e *env, be *backend) error {
		fmt.Fprintf(progress, "3/3 %d Before* callbacks through the hub and straight to the backend, in turns\n", cfg.Probes)
		var perr error
		rep.Probe, perr = probeBefore(ctx, cfg, e.hub, be, cfg.Probes)
		return perr
	})
	if rep.On == nil {
		return fmt.Errorf("ingest, forwarding on: %w", err)
	}
	rep.print(out, cfg.JSONOnly)
	if err != nil {
		return fmt.Errorf("ingest, forwarding on: %w", err)
	}
	return nil
}

// probeBefore sends n signed Group.CallbackBeforeSendMsg callbacks one at
// a time through the hub and the same n straight to the backend,
// alternating which goes first, and times each answer. Each callback
// through the hub must reach the backend: an answer the hub gave without
// it (its -forward-fail fallback) is an error, not a figure.
func probeBefore(ctx context.Context, cfg Config, hub string, be *backend, n int) (Probe, error) {
	// A client each, so that each keeps its own warm connection.
	viaHub := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{}}
	direct := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{}}
	defer viaHub.CloseIdleConnections()
	defer direct.CloseIdleConnections()
	const warmUp = 20
	hubTimes := make([]time.Duration, 0, n)
	directTimes := make([]time.Duration, 0, n)
	for i := range n + warmUp {
		if err := ctx.Err(); err != nil {
			return Probe{}, err
		}
		seq := hubload.NextSeq()
		query := hubload.CallbackQuery(cfg.App, cfg.CallbackToken, "Group.CallbackBeforeSendMsg")
		body := fmt.Sprintf(`{"GroupId":"G0","From_Account":"bench","MsgSeq":%d,"Random":%d,"MsgBody":[{"MsgType":"TIMTextElem","MsgContent":{"Text":"probe"}}]}`, seq, seq)
		sendHub := func() (time.Duration, error) {
			before := be.before.Load()
			took, err := postVerdict(ctx, viaHub, hub+"/im/callback?"+query, body)
			if err == nil && be.before.Load() != before+1 {
				err = errors.New("the hub answered without the backend")
			}
			return took, err
		}
		sendDirect := func() (time.Duration, error) {
			return postVerdict(ctx, direct, strings.TrimSuffix(be.url, "/")+"/?"+query, body)
		}
		first, second := sendHub, sendDirect
		if i%2 == 1 {
			first, second = sendDirect, sendHub
		}
		t1, err := first()
		if err != nil {
			return Probe{}, fmt.Errorf("Before* probe %d: %w", i, err)
		}
		t2, err := second()
		if err != nil {
			return Probe{}, fmt.Errorf("Before* probe %d: %w", i, err)
		}
		if i%2 == 1 {
			t1, t2 = t2, t1
		}
		if i >= warmUp {
			hubTimes, directTimes = append(hubTimes, t1), append(directTimes, t2)
		}
	}
	return newProbe(hubTimes, directTimes), nil
}

// postVerdict posts a Before* callback and checks that the answer is the
// backend's OK.
func postVerdict(ctx context.Context, c *http.Client, url, body string) (time.Duration, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	start := time.Now()
	resp, err := c.Do(req)
	if err != nil {
		return 0, err
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	resp.Body.Close()
	took := time.Since(start)
	if err != nil {
		return 0, fmt.Errorf("read the answer from %s: %w", req.URL.Host, err)
	}
	var v struct{ ActionStatus string }
	if resp.StatusCode != http.StatusOK || json.Unmarshal(b, &v) != nil || v.ActionStatus != "OK" {
		return 0, fmt.Errorf("%s answered %d %q", req.URL.Host, resp.StatusCode, b)
	}
	return took, nil
}

// newProbe summarises the two sets of times.
func newProbe(hub, direct []time.Duration) Probe {
	q := func(d []time.Duration, p float64) float64 {
		if len(d) == 0 {
			return 0
		}
		s := slices.Sorted(slices.Values(d))
		// The nearest rank: the smallest value with p of them at or below.
		i := max(int(float64(len(s))*p+0.999999)-1, 0)
		return float64(s[min(i, len(s)-1)]) / float64(time.Millisecond)
	}
	p := Probe{
		N:           len(hub),
		DirectP50ms: q(direct, 0.50), DirectP99ms: q(direct, 0.99),
		HubP50ms: q(hub, 0.50), HubP99ms: q(hub, 0.99),
	}
	p.AddedP50ms, p.AddedP99ms = p.HubP50ms-p.DirectP50ms, p.HubP99ms-p.DirectP99ms
	return p
}

// print writes the table of ratios (unless jsonOnly) and the JSON line.
func (r ForwardReport) print(w io.Writer, jsonOnly bool) { printReport(w, jsonOnly, r.table, r) }

// table is the comparison a person reads: each figure with forwarding off
// and on, and their ratio, then the Before* latencies.
func (r ForwardReport) table(w io.Writer) { writeColumns(w, r.rows) }

// rows are table's, tab-separated.
func (r ForwardReport) rows(tw io.Writer) {
	row := func(cells ...string) { fmt.Fprintln(tw, strings.Join(cells, "\t")) }
	off, on := r.Off, r.On
	row("ingest ("+on.Broker+" broker)", "forwarding off", "forwarding on", "on / off")
	row("callbacks/s accepted", fmt.Sprintf("%.0f", off.CallbacksPerS), fmt.Sprintf("%.0f", on.CallbacksPerS), quotient(on.CallbacksPerS, off.CallbacksPerS))
	row("callbacks refused", strconv.FormatInt(off.Refused, 10), strconv.FormatInt(on.Refused, 10), "")
	row("hub CPU-s per 10,000 callbacks", fmt.Sprintf("%.2f", perTenThousand(off)), fmt.Sprintf("%.2f", perTenThousand(on)), quotient(perTenThousand(on), perTenThousand(off)))
	row("forwards delivered/s while accepting", "—", fmt.Sprintf("%.0f", on.ForwardsPerSPublishing), quotient(on.ForwardsPerSPublishing, on.CallbacksPerS)+" of accepted/s")
	row("forwards delivered/s, to the last", "—", fmt.Sprintf("%.0f", on.ForwardsPerS), quotient(on.ForwardsPerS, on.CallbacksPerS)+" of accepted/s")
	row("backend received / accepted", "—", fmt.Sprintf("%d / %d", on.ForwardReceived, on.ForwardAccepted), "")
	row("backlog drained after the last callback", "—", fmt.Sprintf("%.2f s", on.ForwardDrainSeconds), "")
	row("", "", "", "")
	p := r.Probe
	row(fmt.Sprintf("Before* (%d, one at a time)", p.N), "straight to backend", "through the hub", "added")
	row("p50", fmt.Sprintf("%.2f ms", p.DirectP50ms), fmt.Sprintf("%.2f ms", p.HubP50ms), fmt.Sprintf("%+.2f ms", p.AddedP50ms))
	row("p99", fmt.Sprintf("%.2f ms", p.DirectP99ms), fmt.Sprintf("%.2f ms", p.HubP99ms), fmt.Sprintf("%+.2f ms", p.AddedP99ms))
}

// perTenThousand is the hub's CPU seconds per 10,000 accepted callbacks.
func perTenThousand(r *Result) float64 {
	if r.Published == 0 {
		return 0
	}
	return r.HubCPU / float64(r.Published) * 1e4
}
