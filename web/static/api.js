// The server API panel: who is connected to the channel being watched, and
// a box to publish a custom event, for an admin with an API key typed in by
// hand. The key lives in this module's memory only: it is never stored
// (no localStorage, no sessionStorage, no cookie) and is gone with the page.
const $ = (id) => document.getElementById(id);
const EVERY = 3000; // ms between presence reads

const panel = { key: '', channel: 'app', timer: null, busy: false, ago: null };

function esc(s) {
  return String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

async function call(method, path, body) {
  const r = await fetch(path, {
    method,
    headers: { Authorization: 'apikey ' + panel.key, ...(body ? { 'Content-Type': 'application/json' } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  let out = {};
  try { out = await r.json(); } catch { /* not JSON: the status says it */ }
  if (!r.ok) throw new Error(out.error || `${r.status} ${r.statusText}`);
  return out;
}

// Users of the channel, most connections first.
export function presenceRows(users) {
  return Object.entries(users || {}).sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1));
}

async function readPresence() {
  clearTimeout(panel.timer);
  if (!panel.key || !panel.channel) return;
  if (!document.hidden && !panel.busy) {
    panel.busy = true;
    try {
      const out = await call('GET', '/api/presence?channel=' + encodeURIComponent(panel.channel));
      const rows = presenceRows(out.users);
      $('api-presence').innerHTML = rows.map(([u, n]) =>
        `<li><span class="dot"></span>${esc(u)}${n > 1 ? ` <span class="dim">×${n}</span>` : ''}</li>`).join('');
      $('api-presence-note').textContent = rows.length ? '' : 'nobody';
    } catch (e) {
      $('api-presence').innerHTML = '';
      $('api-presence-note').textContent = e.message;
    } finally {
      panel.busy = false;
    }
  }
  panel.timer = setTimeout(readPresence, EVERY);
}

function watch(channel) {
  panel.channel = channel;
  $('api-channel').textContent = channel;
  readPresence();
}

// publishedNote says what a publish answered: the offset (which looks
// like "3:…", so it is named, never shown bare where a time could be read)
// and how long ago it was sent.
export function publishedNote(offset, sentAt, now) {
  const s = Math.max(0, Math.round((now - sentAt) / 1000));
  const ago = s < 1 ? 'just now' : s < 60 ? `${s} s ago` : `${Math.floor(s / 60)} min ago`;
  return `published, offset ${offset} · sent ${ago}`;
}

function showPublished(out, offset, sentAt) {
  clearInterval(panel.ago);
  const show = () => { out.textContent = publishedNote(offset, sentAt, Date.now()); };
  show();
  out.dataset.state = 'ok';
  // Kept fresh for ten minutes; then it stays as it last read.
  panel.ago = setInterval(() => (Date.now() - sentAt > 600000 ? clearInterval(panel.ago) : show()), 1000);
}

async function publish(e) {
  e.preventDefault();
  const f = $('api-publish');
  const out = $('api-publish-result');
  let data;
  try {
    data = JSON.parse(f.elements.data.value);
  } catch {
    clearInterval(panel.ago);
    out.textContent = 'data is not JSON';
    out.dataset.state = 'error';
    return;
  }
  try {
    const r = await call('POST', '/api/publish', { channel: f.elements.channel.value.trim(), data });
    showPublished(out, r.offset, Date.now());
  } catch (err) {
    clearInterval(panel.ago);
    out.textContent = err.message;
    out.dataset.state = 'error';
  }
}

function init() {
  const root = $('api');
  if (!root) return;
  root.innerHTML = `
    <h2>Server API</h2>
    <div id="api-key-form" class="api-key">
      <label for="api-key">API key</label>
      <input id="api-key" type="password" autocomplete="new-password" placeholder="not stored">
      <button id="api-key-use" type="button">Use</button>
    </div>
    <h3>Present on <span id="api-channel"></span></h3>
    <ol id="api-presence" class="api-presence"></ol>
    <p id="api-presence-note" class="dim">enter an API key to see who is connected</p>
    <h3>Publish</h3>
    <form id="api-publish" class="api-publish">
      <input name="channel" placeholder="user:jared or group:…" aria-label="Channel">
      <textarea name="data" rows="2" aria-label="Data, JSON">{"text": "hello"}</textarea>
      <button type="submit">Publish</button>
    </form>
    <p id="api-publish-result" role="status"></p>`;
  $('api-channel').textContent = panel.channel;
  // Not a form, and a new-password field: a browser offers to save what a
  // submitted form's password field held, and the key must stay in memory.
  const useKey = () => {
    panel.key = $('api-key').value.trim();
    $('api-key').value = '';
    $('api-key').placeholder = panel.key ? 'a key is in use (not stored)' : 'not stored';
    readPresence();
  };
  $('api-key-use').addEventListener('click', useKey);
  $('api-key').addEventListener('keydown', (e) => {
    if (e.key === 'Enter') useKey();
  });
  $('api-publish').addEventListener('submit', publish);
  // The channel being watched is the one last subscribed to: read before
  // the page's own handler clears the field (a capture listener runs first).
  const channels = $('channels');
  if (channels) {
    channels.addEventListener('submit', () => {
      const c = $('channel').value.trim();
      if (c) watch(c);
    }, true);
  }
  document.addEventListener('visibilitychange', () => { if (!document.hidden) readPresence(); });
}

init();
