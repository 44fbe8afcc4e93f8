// The hub's forwarding metrics, read from its own /metrics: a parser of
// the Prometheus text format, and the pure computations of the
// Forwarding panel. Nothing here touches the page.
import { esc } from './render.js';

// parseMetrics reads the Prometheus text exposition format into samples,
// {name, labels, value}. It never throws: a line it cannot read (or a
// page that is not metrics at all, such as a proxy's HTML) is skipped.
export function parseMetrics(text) {
  const out = [];
  if (typeof text !== 'string') return out;
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line[0] === '#') continue; // HELP, TYPE, comments, EOF
    const s = sampleLine(line);
    if (s) out.push(s);
  }
  return out;
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*/;
const LABEL = /^[a-zA-Z_][a-zA-Z0-9_]*/;

function sampleLine(line) {
  const m = NAME.exec(line);
  if (!m) return null;
  const name = m[0];
  let i = name.length;
  const labels = {};
  if (line[i] === '{') {
    i++;
    for (;;) {
      while (line[i] === ' ' || line[i] === '\t' || line[i] === ',') i++;
      if (line[i] === '}') { i++; break; }
      const l = LABEL.exec(line.slice(i));
      if (!l) return null;
      i += l[0].length;
      while (line[i] === ' ' || line[i] === '\t') i++;
      if (line[i] !== '=') return null;
      i++;
      while (line[i] === ' ' || line[i] === '\t') i++;
      if (line[i] !== '"') return null;
      i++;
      let v = '';
      for (;;) {
        const c = line[i];
        if (c === undefined) return null; // unterminated value
        if (c === '"') { i++; break; }
        if (c === '\\') {
          const n = line[i + 1];
          v += n === 'n' ? '\n' : n === undefined ? '' : n; // \\ \" \n
          i += 2;
          continue;
        }
        v += c;
        i++;
      }
      labels[l[0]] = v;
    }
  }
  if (line[i] !== ' ' && line[i] !== '\t') return null;
  const [valueText] = line.slice(i).trim().split(/[ \t]+/); // a timestamp may follow
  const value = number(valueText);
  if (value === undefined) return null;
  return { name, labels, value };
}

// number reads a sample value: a float, NaN, or ±Inf; undefined if it is
// none of those.
function number(t) {
  switch (t) {
    case 'NaN': return NaN;
    case '+Inf': case 'Inf': return Infinity;
    case '-Inf': return -Infinity;
  }
  if (!/^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/.test(t || '')) return undefined;
  return Number(t);
}

// forwardReading picks app's forwarding series out of samples:
// {backlog, lag, dead, delivered, spooled}, or null when the hub does not
// forward for app (it exports those series only for apps it forwards).
// A series that is missing, or not a finite number, is null.
export function forwardReading(samples, app) {
  if (!app) return null;
  const r = { backlog: null, lag: null, dead: null, delivered: null, spooled: null };
  let found = false;
  const finite = (v) => (Number.isFinite(v) ? v : null);
  for (const s of samples) {
    if (s.name === 'imhub_forward_spooled') {
      r.spooled = finite(s.value);
      continue;
    }
    if (s.labels.app !== app) continue;
    switch (s.name) {
      case 'imhub_forward_backlog': r.backlog = finite(s.value); found = true; break;
      case 'imhub_forward_lag_seconds': r.lag = finite(s.value); found = true; break;
      case 'imhub_forward_dead_letters': r.dead = finite(s.value); found = true; break;
      case 'imhub_forward_total':
        found = true;
        if (s.labels.result === 'delivered') r.delivered = finite(s.value);
        break;
    }
  }
  return found ? r : null;
}

// perSecond is a counter's rate between two readings taken dt seconds
// apart. A counter that went down was reset (the hub restarted): what it
// counts now was counted since then. null when it cannot be told.
export function perSecond(prev, cur, dt) {
  if (prev == null || cur == null || !(dt > 0)) return null;
  const d = cur >= prev ? cur - prev : cur;
  return d / dt;
}

// LAG_WARN is the lag, in seconds, from which a growing lag is worth a
// warning: a lag that goes from 20 ms to 30 ms is not.
export const LAG_WARN = 1;

// forwardView is what the panel shows for the current reading, given the
// one before it (or null) and the seconds between them: the numbers, the
// delivery rate, and the reasons for a warning, if any.
export function forwardView(prev, cur, dt) {
  if (!cur) return null;
  const rate = prev ? perSecond(prev.delivered, cur.delivered, dt) : null;
  const warnings = [];
  if (cur.dead > 0) warnings.push(`${cur.dead} dead ${cur.dead === 1 ? 'letter' : 'letters'}: see hub forward-dead`);
  if (prev && cur.backlog > 0 && prev.backlog != null) {
    if (cur.backlog > prev.backlog) warnings.push('backlog growing');
    else if (cur.backlog === prev.backlog && !(rate > 0)) warnings.push('backlog not draining');
  }
  if (prev && cur.lag >= LAG_WARN && prev.lag != null && cur.lag > prev.lag) warnings.push('lag growing');
  return { ...cur, rate, warnings, warn: warnings.length > 0 };
}

// seconds says a lag the way a person reads it.
export function seconds(s) {
  if (s == null) return '–';
  if (s < 1) return `${Math.round(s * 1000)} ms`;
  if (s < 120) return `${s.toFixed(1)} s`;
  if (s < 7200) return `${Math.round(s / 60)} min`;
  return `${(s / 3600).toFixed(1)} h`;
}

function count(n) {
  return n == null ? '–' : String(Math.round(n));
}

// forwardPanel renders a view as the panel's inner HTML.
export function forwardPanel(v, app) {
  const rate = v.rate == null ? '–' : v.rate < 10 ? v.rate.toFixed(1) : String(Math.round(v.rate));
  const row = (key, label, value, bad) =>
    `<div data-key="${esc(key)}"${bad ? ' class="bad"' : ''}><dt>${esc(label)}</dt><dd>${esc(value)}</dd></div>`;
  // The lag gauge is 0 until something is delivered: say nothing rather than 0 ms.
  const lag = v.lag === 0 && !v.delivered ? null : v.lag;
  const backlogBad = v.warnings.some((w) => w.startsWith('backlog'));
  return `<h2>Forwarding <span class="dim">to app ${esc(app)}'s backend</span></h2>` +
    '<dl class="counters">' +
    row('backlog', 'backlog', count(v.backlog), backlogBad) +
    row('lag', 'lag', seconds(lag), v.warnings.includes('lag growing')) +
    row('dead', 'dead letters', count(v.dead), v.dead > 0) +
    row('rate', 'delivered/s', rate) +
    (v.spooled > 0 ? row('spooled', 'spooled (all apps)', count(v.spooled)) : '') +
    '</dl>' +
    (v.warn ? `<p class="fwd-warning">${v.warnings.map(esc).join(' · ')}</p>` : '');
}
