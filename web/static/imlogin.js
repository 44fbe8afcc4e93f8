// The IM login panel: a connection of its own that signs in as one IM
// user with a UserSig, as an app's page does with the IM's SDK, and shows
// the groups the IM says that user is in: joined live (the user's own
// channel tells of each join), and removed live (the hub ends the group's
// subscription, with its reason). Shown only by a hub that mints demo
// UserSigs (hub -dev -dev-im, /dev/usersig).
import { Hub } from './sdk/imhub.js';
import { clock } from './render.js';

const $ = (id) => document.getElementById(id);

// groups: group id -> { state: waiting | member | removed | refused, why, at }
const im = { user: sessionStorage.getItem('imhub.imuser') || 'jared', hub: null, groups: new Map(), status: 'idle', listed: [] };

function esc(s) {
  return String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

// login asks the hub for a UserSig of the user, and the groups its
// stand-in of the IM says the user is in (what an app's backend would
// read with the IM's get_joined_group_list).
async function login(user) {
  const r = await fetch('/dev/usersig?userid=' + encodeURIComponent(user), { cache: 'no-store' });
  if (!r.ok) throw new Error('no UserSig: ' + r.status);
  return r.json();
}

function setStatus(state, text) {
  im.status = state;
  const s = $('im-status');
  s.dataset.state = state;
  s.textContent = text;
}

const REASONS = { removed: 'removed from the group', destroyed: 'the group was disbanded' };

function render() {
  const rows = [...im.groups.entries()].sort((a, b) => (a[0] < b[0] ? -1 : 1));
  $('im-groups').innerHTML = rows.map(([g, s]) => {
    let says = { waiting: 'subscribing…', member: 'member · live' }[s.state] || '';
    if (s.state === 'removed') says = `${REASONS[s.why] || s.why} · reason "${esc(s.why)}" · ${s.at}`;
    if (s.state === 'refused') says = esc(s.why);
    return `<li data-group="${esc(g)}" data-state="${s.state}"><span class="group">${esc(g)}</span> <span class="dim">${says}</span></li>`;
  }).join('');
  $('im-note').textContent = rows.length ? '' : `${im.user} is in no group yet: make demo makes some`;
}

// follow subscribes to a group the user is in, once at a time.
function follow(h, group) {
  const was = im.groups.get(group);
  if (was && (was.state === 'member' || was.state === 'waiting')) return;
  im.groups.set(group, { state: 'waiting' });
  render();
  const sub = h.subscribe('group:' + group);
  sub.on('subscribed', () => {
    if (h !== im.hub) return;
    im.groups.set(group, { state: 'member' });
    render();
  });
  sub.on('removed', ({ reason }) => {
    if (h !== im.hub) return;
    im.groups.set(group, { state: 'removed', why: reason, at: clock(Date.now()) });
    render();
  });
  sub.on('error', (e) => {
    if (h !== im.hub || e.temporary) return; // asked again by the client
    im.groups.set(group, { state: 'refused', why: `${e.code}: ${e.message}` });
    render();
  });
}

function connect(user) {
  im.hub?.close();
  im.user = user;
  im.groups = new Map();
  render();
  const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
  const h = new Hub(`${proto}//${location.host}/ws`, {
    maxDelay: 10000,
    userSig: async () => {
      const l = await login(user);
      im.listed = l.groups;
      return { sdkAppID: l.sdkappid, userID: l.userid, userSig: l.usersig };
    },
  });
  im.hub = h;
  h.on('state', (s) => {
    if (h !== im.hub) return;
    if (s === 'connecting') setStatus('connecting', `signing in as ${user}…`);
    else if (s === 'disconnected') setStatus('reconnecting', 'reconnecting…');
    else if (s === 'connected') setStatus('live', `signed in as ${user} with a UserSig`);
    else if (h.error) setStatus('failed', h.error.message);
  });
  h.on('connected', () => {
    if (h !== im.hub) return;
    for (const g of im.listed) follow(h, g);
  });
  // The user's own channel tells of each group they join.
  h.subscribe('user:' + user).on('event', (ev) => {
    if (h === im.hub && ev.type === 'group.member.joined' && (ev.members || []).includes(user)) follow(h, ev.group_id);
  });
  h.connect();
}

async function init() {
  const root = $('im-login');
  if (!root) return;
  try {
    await login(im.user);
  } catch {
    return; // not a hub with a stand-in of the IM: no panel
  }
  root.innerHTML = `
    <h2>IM login</h2>
    <form id="im-user-form" class="im-user">
      <label for="im-user">UserID</label>
      <input id="im-user" autocomplete="off" value="${esc(im.user)}">
      <button type="submit">Sign in</button>
    </form>
    <p id="im-status" class="status" role="status" aria-live="polite" data-state="idle"></p>
    <h3>Groups</h3>
    <ol id="im-groups" class="im-groups" aria-live="polite"></ol>
    <p id="im-note" class="dim"></p>`;
  root.hidden = false;
  $('im-user-form').addEventListener('submit', (e) => {
    e.preventDefault();
    const u = $('im-user').value.trim();
    if (!u) return;
    sessionStorage.setItem('imhub.imuser', u);
    connect(u);
  });
  connect(im.user);
}

// For tests and the curious: the panel's state, read-only by convention.
window.imhubIM = im;
init();
