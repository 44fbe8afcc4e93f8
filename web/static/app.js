// The dashboard: one WebSocket to the hub, a capped list of recent events,
// and a feed that shows the newest of those that pass the filters.
import { TYPES, card, clock, esc, messageKeys, messageName, presenceList, roomList, shows } from './render.js';
import { Hub } from './sdk/imhub.js';
import { Presence, ReadIndex, RoomPresence, applyEdit, applyExtension } from './track.js';
import { keptSince } from './history.js';
import { forwardPanel, forwardReading, forwardView, parseMetrics } from './metrics.js';
import './api.js'; // the server API panel, on its own
import './imlogin.js'; // the IM login panel, with a connection of its own

const KEEP = 5000; // events kept in memory
const SHOW = 500; // feed items in the page at most
const $ = (id) => document.getElementById(id);

const state = {
  token: sessionStorage.getItem('imhub.token') || '',
  dev: false,
  admin: false,
  user: '',
  app: '', // the SdkAppid the hub says we are connected to
  channels: [], // channels asked for, besides the user's own
  watched: new Set(), // channels whose events the feed shows
  seen: new Set(), // event ids shown, so one on several channels shows once
  seenOrder: [],
  items: [], // newest first: {ev, key, recalled, read, merged}
  byMessage: new Map(), // message identity -> item, to strike recalls through
  reads: new ReadIndex(), // sent messages, for the read receipts that tick them
  presence: new Presence(500), // user -> latest status
  rooms: new RoomPresence(2000), // audio-video group -> members online
  received: 0, // events received since the page loaded
  history: 'unknown', // what the first load found in the app's history: unknown, none or some
  waiting: new Set(), // subscriptions not yet answered
  paused: false,
  counts: Object.fromEntries(Object.keys(TYPES).map((t) => [t, 0])),
  perSecond: new Array(60).fill(0),
  groups: new Map(), // group id -> times of recent events
};

function setStatus(kind, text) {
  const s = $('status');
  s.dataset.state = kind;
  s.textContent = text;
}

// ---- connection ----

async function devToken() {
  const r = await fetch('/dev/token?sub=dashboard');
  if (!r.ok) throw new Error('no demo token: ' + r.status);
  return (await r.json()).token;
}

function claims(token) {
  try {
    return JSON.parse(atob(token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/')));
  } catch {
    return {};
  }
}

// The connection is the hub's client, imhub.js: it reconnects, refreshes
// the token and resubscribes with since; the page only shows its state.
let hub = null;

let connects = 0; // bumped by every connect: a first load that lost the race gives up

async function connect() {
  const mine = ++connects;
  hub?.close();
  hub = null;
  state.watched = new Set();
  if (!state.token) {
    setStatus('idle', 'not connected: paste a token');
    return;
  }
  const c = claims(state.token);
  state.admin = !!c.admin;
  if (state.admin && state.channels.length === 0) state.channels = ['app'];
  renderChannels();
  // The token on hand first; later ones (refresh, refusal) are minted by
  // the hub in demo mode, else the pasted one is all there is.
  let asked = false;
  const getToken = async () => {
    if (asked && state.dev) state.token = await devToken();
    asked = true;
    return state.token;
  };
  const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
  const url = `${proto}//${location.host}/ws`;
  // The first load shows what the firehose still keeps, oldest first, then
  // live events; later connections go on from the offset the client keeps.
  let since = '';
  if (state.channels.includes('app') && state.received === 0) {
    setStatus('connecting', 'reading recent history…');
    try {
      since = await keptSince(new Hub(url, { getToken: async () => state.token, maxDelay: 2000 }));
      state.history = since ? 'some' : 'none';
    } catch {
      state.history = 'unknown'; // live only
    }
    if (mine !== connects) return;
    renderEmpty();
  }
  const h = new Hub(url, { getToken, maxDelay: 10000 });
  hub = h;
  h.on('state', (s) => h === hub && onState(s));
  h.on('connected', (info) => {
    state.user = info.user;
    state.app = info.app || claims(state.token).app || '';
    state.node = info.node;
    renderEmpty();
    if (!fwd.off) scheduleForward(0); // the panel needs the app: read now
    // Live once the channels asked for are answered (the state event came
    // first and found none waiting).
    state.waiting = new Set(state.channels);
    // The hub subscribes the connection to its user's channel itself.
    info.channels.forEach((ch) => watch(h.subscribe(ch)));
    updateLive();
  });
  state.channels.forEach((ch) => watch(h.subscribe(ch, ch === 'app' && since ? { since } : undefined)));
  h.connect();
}

function onState(s) {
  if (s === 'connecting') setStatus('connecting', 'connecting…');
  else if (s === 'connected') updateLive();
  else if (s === 'disconnected') setStatus('reconnecting', 'reconnecting…');
  else if (hub.error) {
    const e = hub.error;
    const why = { 4001: 'token refused: ', 4002: 'token expired: ', 4010: 'disconnected by the server: ' }[e.closeCode] || '';
    setStatus('failed', why + (e.closeCode === 4002 && !state.dev ? 'paste a new one' : e.message));
  }
}

// watch shows a subscription's events in the feed.
function watch(sub) {
  const ch = sub.channel;
  if (state.watched.has(ch)) return;
  state.watched.add(ch);
  sub.on('event', add);
  sub.on('subscribed', () => {
    state.waiting.delete(ch);
    updateLive();
  });
  sub.on('gap', () => note(`Some events of ${ch} were missed: history did not reach back that far.`));
  sub.on('error', (e) => {
    state.waiting.delete(ch);
    note(`${ch}: ${e.message} (${e.code})`);
    if (!e.temporary) {
      state.watched.delete(ch);
      state.channels = state.channels.filter((c) => c !== ch);
      renderChannels();
    }
    updateLive();
  });
}

function updateLive() {
  if (hub?.state !== 'connected') return;
  if (state.waiting.size > 0) setStatus('connecting', `connected to ${state.node}, catching up…`);
  else setStatus('live', `live · ${state.node} · ${state.user}`);
}

function note(text) {
  $('feed-note').textContent = text;
}

// ---- events ----

function add(ev) {
  if (state.seen.has(ev.id)) return;
  state.seen.add(ev.id);
  state.seenOrder.push(ev.id);
  if (state.seenOrder.length > KEEP * 2) state.seen.delete(state.seenOrder.shift());

  state.counts[ev.type] = (state.counts[ev.type] || 0) + 1;
  state.perSecond[state.perSecond.length - 1]++;
  if (!state.statsQueued) {
    state.statsQueued = true;
    requestAnimationFrame(() => { state.statsQueued = false; renderStats(); });
  }
  if (ev.group_id) {
    const times = state.groups.get(ev.group_id) || [];
    times.push(Date.now());
    state.groups.set(ev.group_id, times);
  }
  const first = state.received++ === 0;
  const item = { ev, key: ev.id, recalled: null, read: null, merged: false };
  if (ev.type.endsWith('.sent')) {
    for (const k of messageKeys(ev)) state.byMessage.set(k, item);
    state.reads.add(item);
  } else if (ev.type.endsWith('.message.modified') || ev.type.endsWith('.message.extension')) {
    // Shown on the message it is about, when the page has it.
    const apply = ev.type.endsWith('.modified') ? applyEdit : applyExtension;
    const targets = onHand(ev);
    for (const target of targets) if (apply(target, ev)) redraw(target);
    item.merged = targets.length > 0;
  } else if (ev.type.endsWith('.read')) {
    for (const target of state.reads.apply(item)) redraw(target);
  } else if (ev.type === 'user.status') {
    if (state.presence.update(ev) && !state.usersQueued) {
      state.usersQueued = true;
      requestAnimationFrame(() => { state.usersQueued = false; renderUsers(); });
    }
  } else if (ev.type.endsWith('.recalled')) {
    // Each message recalled is named by its text when the page has it.
    item.names = (ev.messages || []).map((m) => {
      const [target] = onHand({ ...ev, messages: [m] });
      if (!target) return '';
      if (!target.recalled) {
        target.recalled = { by: ev.operator || ev.from, at: ev.time || ev.received };
        redraw(target);
      }
      return messageName(target);
    });
  }
  if ((ev.type === 'group.member.status' || ev.type === 'group.destroyed') && state.rooms.update(ev) && !state.roomsQueued) {
    state.roomsQueued = true;
    requestAnimationFrame(() => { state.roomsQueued = false; renderRooms(); });
  }
  state.items.unshift(item);
  if (state.items.length > KEEP) {
    for (const old of state.items.splice(KEEP)) {
      for (const k of messageKeys(old.ev)) if (state.byMessage.get(k) === old) state.byMessage.delete(k);
      state.reads.remove(old);
    }
  }
  if (first) renderEmpty();
  if (!state.paused && shows(item, filter())) {
    const feed = $('feed');
    feed.insertAdjacentHTML('afterbegin', card(item));
    while (feed.children.length > SHOW) feed.lastElementChild.remove();
  }
}

// onHand lists the items of the messages ev names that the page has, each once.
function onHand(ev) {
  const found = new Set();
  for (const k of messageKeys(ev)) {
    const target = state.byMessage.get(k);
    if (target) found.add(target);
  }
  return [...found];
}

// redraw replaces an item's card in place, if it is on the page.
function redraw(item) {
  const el = $('feed').querySelector(`li[data-key="${CSS.escape(item.key)}"]`);
  if (el) el.outerHTML = card(item);
}

function filter() {
  const f = new FormData($('filters'));
  return { type: f.get('type') || '', group: (f.get('group') || '').trim(), user: (f.get('user') || '').trim(), text: (f.get('text') || '').trim() };
}

function renderFeed() {
  const f = filter();
  const shown = [];
  for (const item of state.items) {
    if (shows(item, f)) shown.push(card(item));
    if (shown.length === SHOW) break;
  }
  $('feed').innerHTML = shown.join('');
}

function renderRooms() {
  $('rooms').innerHTML = roomList(state.rooms.rooms().slice(0, 12));
}

// renderEmpty says how to get traffic while the page has had none: the
// demo's callbacks, or the sample the hub prints at start.
function renderEmpty() {
  const el = $('empty');
  const show = state.received === 0 && state.history !== 'some' && !!hub;
  el.hidden = !show;
  if (!show) return;
  const app = state.app || claims(state.token).app || '1400000000';
  const base = location.origin;
  const sample = JSON.stringify({ CallbackCommand: 'Group.CallbackAfterSendMsg', GroupId: '@TGS#2J4SZEAEL', Type: 'Public', From_Account: 'jared',
    Random: 123456, MsgSeq: 123, MsgTime: Math.floor(Date.now() / 1000), MsgBody: [{ MsgType: 'TIMTextElem', MsgContent: { Text: 'red packet' } }] });
  const curl = `curl -sS -X POST '${base}/im/callback?SdkAppid=${app}&CallbackCommand=Group.CallbackAfterSendMsg&contenttype=json&ClientIP=127.0.0.1&OptPlatform=Web' \\\n  -H 'Content-Type: application/json' \\\n  -d '${sample}'`;
  el.innerHTML = `<h2>No events yet</h2>` +
    `<p>${state.history === 'none' ? 'The hub keeps no recent events of this app.' : 'Nothing has arrived yet.'} Events appear here as the IM's callbacks reach the hub at <code>${esc(base)}/im/callback</code>.</p>` +
    `<p>For demo traffic, run <code>make demo</code> in a second terminal (realistic callbacks to the hub of <code>make run</code>), or post the sample callback the hub prints at start:</p>` +
    `<pre class="sample">${esc(curl)}</pre>`;
}

function renderUsers() {
  $('users').innerHTML = presenceList(state.presence.recent(12));
}

function renderChannels() {
  $('channel-list').innerHTML = state.channels
    .map((c) => `<li>${c.replace(/[&<>"]/g, '')}<button type="button" data-channel="${encodeURIComponent(c)}" aria-label="Unsubscribe ${c.replace(/[&<>"]/g, '')}">×</button></li>`)
    .join('');
}

// ---- the once-a-second view: rate chart, counters, busiest groups ----

function renderStats() {
  $('counters').innerHTML = Object.entries(TYPES)
    .map(([t, label]) => `<div><dt>${label}</dt><dd>${state.counts[t] || 0}</dd></div>`)
    .join('');
}

function tick() {
  const eps = state.perSecond[state.perSecond.length - 1];
  $('eps').textContent = eps;
  state.perSecond.shift();
  state.perSecond.push(0);
  drawRate();
  renderStats();
  const cutoff = Date.now() - 5 * 60 * 1000;
  const ranked = [];
  for (const [g, times] of state.groups) {
    while (times.length && times[0] < cutoff) times.shift();
    if (times.length) ranked.push([g, times.length]);
    else state.groups.delete(g);
  }
  ranked.sort((a, b) => b[1] - a[1]);
  const esc = (s) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
  $('groups').innerHTML = ranked.slice(0, 10)
    .map(([g, n]) => `<li><button type="button" data-group="${esc(g)}">${esc(g)}</button> <span class="dim">${n}</span></li>`)
    .join('');
}

function drawRate() {
  const cv = $('rate');
  const ctx = cv.getContext('2d');
  const max = Math.max(1, ...state.perSecond);
  ctx.clearRect(0, 0, cv.width, cv.height);
  ctx.fillStyle = '#0b5cad';
  const w = cv.width / state.perSecond.length;
  state.perSecond.forEach((n, i) => {
    const h = (n / max) * (cv.height - 2);
    ctx.fillRect(i * w, cv.height - h, Math.max(1, w - 1), h);
  });
}

// ---- forwarding: the hub's own /metrics, read while the page is seen ----

const FWD_EVERY = 3000; // ms between reads of /metrics
// prev is the last reading and at its time, for the delivery rate; off is
// set when /metrics is refused (a proxy hides it): then it is not asked again.
const fwd = { timer: null, busy: false, prev: null, at: 0, polls: 0, off: false };

function scheduleForward(delay) {
  clearTimeout(fwd.timer);
  fwd.timer = null;
  if (fwd.off || document.visibilityState !== 'visible') return;
  fwd.timer = setTimeout(pollForward, delay);
}

async function pollForward() {
  fwd.timer = null;
  if (fwd.busy) return; // the read in flight schedules the next
  fwd.busy = true;
  const ctl = new AbortController();
  const timeout = setTimeout(() => ctl.abort(), FWD_EVERY);
  try {
    const r = await fetch('/metrics', { cache: 'no-store', signal: ctl.signal, headers: { Accept: 'text/plain' } });
    if ([401, 403, 404, 405].includes(r.status)) {
      fwd.off = true;
      throw new Error('metrics hidden');
    }
    if (!r.ok) throw new Error('metrics ' + r.status);
    const reading = forwardReading(parseMetrics(await r.text()), state.app);
    const now = performance.now();
    showForward(forwardView(fwd.prev, reading, (now - fwd.at) / 1000));
    fwd.prev = reading;
    fwd.at = now;
  } catch {
    // Not reachable, not metrics, or hidden: the panel goes away quietly.
    fwd.prev = null;
    showForward(null);
  } finally {
    clearTimeout(timeout);
    fwd.busy = false;
    fwd.polls++;
    scheduleForward(FWD_EVERY);
  }
}

function showForward(view) {
  const el = $('forwarding');
  if (!view) {
    el.hidden = true;
    el.textContent = '';
    return;
  }
  el.classList.toggle('warn', view.warn);
  el.innerHTML = forwardPanel(view, state.app);
  el.hidden = false;
}

// ---- wiring ----

function init() {
  $('connect').addEventListener('submit', (e) => {
    e.preventDefault();
    state.token = $('token').value.trim();
    sessionStorage.setItem('imhub.token', state.token);
    connect();
  });
  $('demo-token').addEventListener('click', async () => {
    state.token = await devToken();
    connect();
  });
  $('channels').addEventListener('submit', (e) => {
    e.preventDefault();
    const c = $('channel').value.trim();
    if (!c || state.channels.includes(c)) return;
    state.channels.push(c);
    $('channel').value = '';
    renderChannels();
    if (hub) watch(hub.subscribe(c));
  });
  $('channel-list').addEventListener('click', (e) => {
    const c = e.target.dataset && e.target.dataset.channel;
    if (!c) return;
    const channel = decodeURIComponent(c);
    state.channels = state.channels.filter((x) => x !== channel);
    state.watched.delete(channel);
    hub?.subscriptions().find((s) => s.channel === channel)?.unsubscribe();
    renderChannels();
  });
  $('filters').addEventListener('input', renderFeed);
  $('filters').addEventListener('change', renderFeed);
  $('pause').addEventListener('click', () => {
    state.paused = !state.paused;
    $('pause').textContent = state.paused ? 'Resume' : 'Pause';
    $('pause').setAttribute('aria-pressed', String(state.paused));
    if (!state.paused) renderFeed();
  });
  $('clear').addEventListener('click', () => {
    state.items = [];
    state.byMessage.clear();
    state.reads = new ReadIndex();
    renderFeed();
  });
  $('rooms').addEventListener('click', (e) => {
    const d = e.target.dataset || {};
    if (!d.group && !d.user) return;
    if (d.group) $('filters').elements.group.value = d.group;
    if (d.user) $('filters').elements.user.value = d.user;
    renderFeed();
  });
  $('groups').addEventListener('click', (e) => {
    const g = e.target.dataset && e.target.dataset.group;
    if (!g) return;
    $('filters').elements.group.value = g;
    renderFeed();
  });
  $('users').addEventListener('click', (e) => {
    const u = e.target.dataset && e.target.dataset.user;
    if (!u) return;
    $('filters').elements.user.value = u;
    renderFeed();
  });
  $('feed').addEventListener('click', (e) => {
    if (!e.target.classList.contains('inspect')) return;
    const key = e.target.closest('li').dataset.key;
    const item = state.items.find((i) => i.key === key);
    if (!item) return;
    $('raw').textContent = JSON.stringify(item.ev, null, 2);
    $('inspector').showModal();
  });
  setInterval(tick, 1000);
  tick();
  // Read /metrics only while someone can see the panel.
  document.addEventListener('visibilitychange', () => scheduleForward(0));
  scheduleForward(0);

  // In demo mode the hub mints tokens: connect at once.
  fetch('/dev/token?sub=dashboard').then(async (r) => {
    if (!r.ok) return;
    state.dev = true;
    $('demo-token').hidden = false;
    if (!state.token) state.token = (await r.json()).token;
    connect();
  }, () => {}).finally(() => {
    if (!state.dev && state.token) connect();
  });
}

// For tests and the curious: the page's state, read-only by convention,
// and its connection to the hub.
window.imhub = { state, clock, fwd, get hub() { return hub; } };
init();
