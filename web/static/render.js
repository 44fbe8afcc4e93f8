// Pure functions that turn imhub events into HTML. Every value from an
// event passes through esc() or safeURL() before it reaches the page.

export const TYPES = {
  'group.message.sent': 'group message',
  'group.message.recalled': 'group recall',
  'c2c.message.sent': 'one-to-one message',
  'c2c.message.recalled': 'one-to-one recall',
  'user.status': 'status',
  'group.member.joined': 'joined',
  'group.member.left': 'left',
  'group.message.read': 'group read',
  'c2c.message.read': 'one-to-one read',
  'group.info.changed': 'group info',
  'group.destroyed': 'group destroyed',
  'group.message.modified': 'group edit',
  'c2c.message.modified': 'one-to-one edit',
  'group.message.extension': 'group reaction',
  'c2c.message.extension': 'one-to-one reaction',
  'group.created': 'group created',
  'group.member.changed': 'member changed',
  'group.owner.changed': 'owner changed',
  'group.topic.created': 'topic created',
  'group.topic.changed': 'topic changed',
  'group.topic.destroyed': 'topic destroyed',
  'group.attrs.changed': 'group attributes',
  'group.member.status': 'room presence',
  custom: 'custom',
};

// LINES are the types shown as one compact line instead of a card: they
// say that something happened, and carry no message to show.
const LINES = new Set(['user.status', 'group.member.joined', 'group.member.left', 'group.message.read', 'c2c.message.read', 'group.info.changed', 'group.destroyed',
  'group.message.extension', 'c2c.message.extension', 'group.created', 'group.member.changed', 'group.owner.changed',
  'group.topic.created', 'group.topic.changed', 'group.topic.destroyed', 'group.attrs.changed', 'group.member.status']);

export function esc(v) {
  return String(v ?? '').replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }[c]));
}

// safeURL keeps http(s) URLs only: a message body must not smuggle a
// javascript: link into the page.
export function safeURL(u) {
  try {
    const url = new URL(String(u));
    return url.protocol === 'http:' || url.protocol === 'https:' ? url.href : '';
  } catch {
    return '';
  }
}

// clock is the time of day, with the date in front when it is not today.
export function clock(ms, now = Date.now()) {
  if (!ms) return '';
  const d = new Date(ms);
  const pad = (n) => String(n).padStart(2, '0');
  const time = [d.getHours(), d.getMinutes(), d.getSeconds()].map(pad).join(':');
  return new Date(now).toDateString() === d.toDateString() ? time : `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${time}`;
}

function size(n) {
  if (!Number.isFinite(n)) return '';
  if (n >= 1 << 20) return (n / (1 << 20)).toFixed(1) + ' MiB';
  if (n >= 1 << 10) return (n / (1 << 10)).toFixed(1) + ' KiB';
  return n + ' B';
}

// element renders one TIM message element.
export function element(el) {
  const c = (el && el.MsgContent) || {};
  switch (el && el.MsgType) {
    case 'TIMTextElem':
      return `<p class="el text">${esc(c.Text)}</p>`;
    case 'TIMFaceElem':
      return `<p class="el face" title="face ${esc(c.Index)}">☺ face #${esc(c.Index)}${c.Data ? ' · ' + esc(c.Data) : ''}</p>`;
    case 'TIMLocationElem':
      return `<p class="el location">📍 ${esc(c.Desc)} <span class="dim">(${esc(c.Latitude)}, ${esc(c.Longitude)})</span></p>`;
    case 'TIMCustomElem':
      return `<p class="el custom">custom: <code>${esc(c.Data)}</code>${c.Desc ? ' · ' + esc(c.Desc) : ''}</p>`;
    case 'TIMImageElem': {
      const infos = Array.isArray(c.ImageInfoArray) ? c.ImageInfoArray : [];
      const thumb = infos.find((i) => i && i.Type === 3) || infos.slice().sort((a, b) => (a.Size || 0) - (b.Size || 0))[0];
      const src = thumb ? safeURL(thumb.URL) : '';
      const alt = `image ${esc(c.UUID)}`;
      return src
        ? `<p class="el image"><img src="${esc(src)}" alt="${alt}" loading="lazy" referrerpolicy="no-referrer" width="96" height="96"></p>`
        : `<p class="el image">🖼 ${alt}</p>`;
    }
    case 'TIMSoundElem':
      return `<p class="el sound">🔊 sound, ${esc(c.Second)} s${linkTo(c.Url, 'listen')}</p>`;
    case 'TIMFileElem':
      return `<p class="el file">📄 ${esc(c.FileName)} <span class="dim">${esc(size(c.FileSize))}</span>${linkTo(c.Url, 'download')}</p>`;
    case 'TIMVideoFileElem':
      return `<p class="el video">🎬 video, ${esc(c.VideoSecond)} s${linkTo(c.VideoUrl, 'watch')}</p>`;
    case 'TIMRelayElem': {
      const lines = Array.isArray(c.AbstractList) ? c.AbstractList.slice(0, 3) : [];
      return `<div class="el relay"><p>⤷ ${esc(c.Title || 'merged messages')} <span class="dim">(${esc(c.MsgNum)} messages)</span></p>` +
        lines.map((l) => `<p class="dim">${esc(l)}</p>`).join('') + '</div>';
    }
    default:
      return `<p class="el unknown">${esc(el && el.MsgType ? el.MsgType : 'element')}</p>`;
  }
}

function linkTo(u, label) {
  const href = safeURL(u);
  return href ? ` <a href="${esc(href)}" target="_blank" rel="noopener noreferrer">${label}</a>` : '';
}

// topic shows a topic id short, the full id on hover: a Community
// topic's id repeats its group's ("@TGS#_<group>@TOPIC#_<name>"), so the
// part after @TOPIC#_ is what tells topics apart.
export function topic(id) {
  const full = String(id ?? '');
  const at = full.lastIndexOf('@TOPIC#_');
  let short = at >= 0 ? full.slice(at + 8) : full;
  if (short === '') short = full;
  if (short.length > 20) short = short.slice(0, 9) + '…' + short.slice(-8);
  return `<abbr class="topic" title="${esc(full)}">${esc(short)}</abbr>`;
}

// where says the conversation an event belongs to.
export function where(ev) {
  if (!ev.group_id && !ev.from && !ev.to) return ''; // a custom event names no conversation
  if (ev.group_id) {
    return `group ${esc(ev.group_id)}${ev.topic_id ? ` · topic ${topic(ev.topic_id)}` : ''}`;
  }
  return `${esc(ev.from)} → ${esc(ev.to)}`;
}

// card renders one feed item: the event, how it was recalled if it was,
// who read it if a receipt said so, its latest edit and its reactions. The
// types in LINES get a line.
export function card(item) {
  const ev = item.ev;
  if (LINES.has(ev.type)) return line(item);
  const kind = ev.type.replaceAll('.', '-');
  const edited = item.edits && item.edits.length > 0;
  const cls = ['ev', kind, item.recalled ? 'recalled' : '', item.read ? 'read' : '', edited ? 'edited' : ''].join(' ').replace(/ +/g, ' ').trim();
  let body = '';
  if (Array.isArray(ev.body)) body = shownBody(item).map(element).join('');
  if (ev.type === 'group.message.recalled') {
    body = `<p class="el note">${esc(ev.operator || 'someone')} recalled ${recalledNames(item)}</p>`;
  }
  if (ev.type === 'c2c.message.recalled') {
    body = `<p class="el note">${esc(ev.from)} withdrew ${recalledNames(item)} sent to ${esc(ev.to)}${ev.unread !== undefined ? ` · <span class="unread">unread ${esc(ev.unread)}</span>` : ''}</p>`;
  }
  if (ev.type.endsWith('.message.modified')) {
    // Shown on its own only when the message it edits is not on the page.
    body = `<p class="el note">${esc(ev.operator || ev.from || 'someone')} edited ${esc(seqNames(ev))}; it now reads:</p>` + body;
  }
  if (ev.type === 'custom') {
    // Published by the app's backend through the server API: its data
    // is the app's own, shown as it came.
    body = `<pre class="el custom">${esc(JSON.stringify(ev.data))}</pre>`;
  }
  if (ev.send_result) {
    body += `<p class="el failed">not delivered (${esc(ev.send_result)}): ${esc(ev.error_info)}</p>`;
  }
  const who = ev.type.endsWith('.recalled') ? ev.operator || ev.from : ev.from;
  const recall = item.recalled
    ? `<p class="recall-note">recalled by ${esc(item.recalled.by || 'unknown')} at ${esc(clock(item.recalled.at))}</p>`
    : '';
  return `<li class="${cls}" data-key="${esc(item.key)}">` +
    `<div class="meta">${stamp(ev)}` +
    `<span class="badge">${esc(TYPES[ev.type] || ev.type)}</span>` +
    `<span class="where">${where(ev)}</span>` +
    (who ? `<span class="who">${esc(who)}</span>` : '') +
    (ev.platform ? `<span class="platform">${esc(ev.platform)}</span>` : '') +
    ticks(item.read) +
    `<button type="button" class="inspect" aria-label="Show the raw JSON of this event">{ }</button></div>` +
    `<div class="body">${body}</div>${editNote(item)}${reactionList(item)}${recall}</li>`;
}

// editNote marks an edited message, with what it said before one click away.
function editNote(item) {
  const prev = previousBody(item);
  if (!prev) return '';
  const last = item.edits[item.edits.length - 1];
  return `<details class="edit-note"><summary>edited${last.by ? ` by ${esc(last.by)}` : ''}${last.at ? ` at ${esc(clock(last.at))}` : ''}` +
    `${item.edits.length > 1 ? ` (${item.edits.length} edits)` : ''}</summary>` +
    `<div class="previous"><span class="dim">before: </span>${prev.map(element).join('')}</div></details>`;
}

// reactionList shows a message's reactions (its extensions) as counts.
function reactionList(item) {
  const rs = reactions(item);
  if (!rs.length) return '';
  return '<ul class="reactions" aria-label="Reactions">' +
    rs.map((r) => `<li title="${esc(r.key)}: ${esc(r.value)}"><span class="key">${esc(r.key)}</span> <span class="count">${esc(r.count)}</span></li>`).join('') +
    '</ul>';
}

// messageName names a message item as a reader knows it: the start of its
// text (as edited), else its sequence, else its kind.
export function messageName(item) {
  const text = shownBody(item)
    .filter((el) => el && el.MsgType === 'TIMTextElem')
    .map((el) => String((el.MsgContent || {}).Text ?? ''))
    .join(' ')
    .trim();
  if (text) return `“${text.length > 40 ? text.slice(0, 39) + '…' : text}”`;
  const first = (shownBody(item)[0] || {}).MsgType;
  if (first) return `a ${String(first).replace(/^TIM|Elem$/g, '').toLowerCase()} message`;
  return seqNames(item.ev);
}

// seqNames names the messages an event is about by their sequence, or, for
// one-to-one messages without one, says only that it is a message.
export function seqNames(ev) {
  const seqs = (ev.messages || []).filter((m) => m && m.seq !== undefined).map((m) => '#' + m.seq);
  if (seqs.length) return `message${seqs.length > 1 ? 's' : ''} ${seqs.join(', ')}`;
  return (ev.messages || []).length > 1 ? 'messages' : 'a message';
}

// recalledNames names what a recall took back, message by message:
// item.names[i] (set by the page) names messages[i] when the page has it,
// else its sequence does.
function recalledNames(item) {
  const names = item.names || [];
  const parts = (item.ev.messages || []).map((m, i) => {
    if (names[i]) return esc(names[i]);
    return m && m.seq !== undefined ? `message #${esc(m.seq)}` : 'a message';
  });
  return parts.join(', ') || 'a message';
}

function stamp(ev) {
  return `<time datetime="${esc(new Date(ev.time || 0).toISOString())}">${esc(clock(ev.time))}</time>`;
}

// ticks shows what the read receipts said about a message: for a group
// message how many members read it, for a one-to-one message who did.
export function ticks(read) {
  if (!read) return '';
  if (read.by) {
    return `<span class="ticks" title="read up to ${esc(clock(read.at))}">✓✓ read by ${esc(read.by)}</span>`;
  }
  const unread = read.unread !== undefined ? ` · ${esc(read.unread)} unread` : '';
  return `<span class="ticks" title="${esc(read.count)} members read it${read.unread !== undefined ? `, ${esc(read.unread)} not yet` : ''}">✓✓ ${esc(read.count)} read${unread}</span>`;
}

// line renders one of the LINES types: time, badge and one sentence.
export function line(item) {
  const ev = item.ev;
  const kind = ev.type.replaceAll('.', '-');
  let extra = '';
  if (ev.type === 'user.status') extra = online(ev) ? ' online' : ' offline';
  if (ev.type === 'group.member.status') extra = ev.status === 'online' ? ' online' : ' offline';
  return `<li class="ev line ${kind}${extra}" data-key="${esc(item.key)}">` +
    `<div class="meta">${stamp(ev)}<span class="badge">${esc(TYPES[ev.type] || ev.type)}</span>` +
    `<span class="says">${sentence(ev)}</span>` +
    `<button type="button" class="inspect" aria-label="Show the raw JSON of this event">{ }</button></div></li>`;
}

const user = (u) => `<span class="user">${esc(u)}</span>`;
const group = (ev) => `<span class="group">${esc(ev.group_id)}</span>${ev.topic_id ? ` <span class="dim">topic ${topic(ev.topic_id)}</span>` : ''}`;

// people lists user ids, the first few by name and the rest as a count.
function people(ids, most = 8) {
  if (ids.length === 0) return user('someone');
  const named = ids.slice(0, most).map(user).join(', ');
  return ids.length > most ? `${named} and ${ids.length - most} more` : named;
}

// infoChanges says what a group's or topic's info change set, field by
// field: changes holds only the fields the IM sent; an empty one was cleared.
function infoChanges(changes) {
  const c = changes || {};
  const said = ['name', 'introduction', 'notification', 'face_url']
    .filter((k) => typeof c[k] === 'string')
    .map((k) => (c[k] === '' ? `${k.replace('_', ' ')} cleared` : `${k.replace('_', ' ')} “${esc(c[k])}”`));
  for (const [k, v] of Object.entries(c.custom || {})) said.push(`${esc(k)} “${esc(v)}”`);
  return said;
}

// sentence says in words what an event of the LINES types did.
export function sentence(ev) {
  switch (ev.type) {
    case 'user.status': {
      const who = statusUser(ev);
      const verb = { login: 'is online', logout: 'went offline', disconnect: 'disconnected' }[ev.status] || `is ${esc(ev.status || 'in an unknown state')}`;
      const kicked = devices(ev);
      return `<span class="dot" aria-hidden="true"></span>${user(who)} ${verb}` +
        (ev.platform ? ` <span class="dim">on ${esc(ev.platform)}</span>` : '') +
        (ev.reason ? ` <span class="dim">· ${esc(ev.reason)}</span>` : '') +
        (kicked.length ? ` · <span class="kicked">signed out ${kicked.map(esc).join(', ')}</span>` : '');
    }
    case 'group.member.joined': {
      const ids = members(ev);
      const how = String(ev.join_type || '').toLowerCase();
      const by = ev.operator && !ids.includes(ev.operator) ? ev.operator : '';
      let why = '';
      if (how.startsWith('invite')) why = by ? ` (invited by ${user(by)})` : ' (invited)';
      else if (how === 'apply') why = by ? ` (asked to, approved by ${user(by)})` : ' (asked to)';
      else if (by) why = ` (added by ${user(by)})`;
      if (ev.join_type && !how.startsWith('invite') && how !== 'apply') why += ` <span class="dim">${esc(ev.join_type)}</span>`;
      return `${people(ids)} joined ${group(ev)}${why}`;
    }
    case 'group.member.left': {
      const ids = members(ev);
      if (String(ev.exit_type).toLowerCase() === 'kicked') {
        return `${people(ids)} ${ids.length > 1 ? 'were' : 'was'} kicked from ${group(ev)}${ev.operator ? ` by ${user(ev.operator)}` : ''}`;
      }
      const other = ev.exit_type && String(ev.exit_type).toLowerCase() !== 'quit' ? ` <span class="dim">${esc(ev.exit_type)}</span>` : '';
      return `${people(ids)} left ${group(ev)}${other}`;
    }
    case 'group.message.read': {
      const rs = receipts(ev);
      const shown = rs.slice(0, 5).map((r) => `#${esc(r.seq)} ${esc(r.read)} read${r.unread !== undefined ? ` · ${esc(r.unread)} unread` : ''}`);
      if (rs.length > 5) shown.push(`${rs.length - 5} more`);
      return `read receipts in ${group(ev)}: ${shown.join('; ') || 'none'}`;
    }
    case 'c2c.message.read':
      return `${user(ev.from)} read the messages from ${user(ev.to)}` +
        (lastReadMs(ev) ? ` up to ${esc(clock(lastReadMs(ev)))}` : '') +
        (ev.unread !== undefined ? ` <span class="dim">· ${esc(ev.unread)} unread in all</span>` : '');
    case 'group.info.changed': {
      const changed = infoChanges(ev.changes);
      return `${ev.operator ? user(ev.operator) : 'someone'} changed the info of ${group(ev)}${changed.length ? ': ' + changed.join(', ') : ''}`;
    }
    case 'group.destroyed':
      return `${group(ev)} was destroyed${ev.operator ? ` by ${user(ev.operator)}` : ''}`;
    case 'group.message.extension':
    case 'c2c.message.extension': {
      // Shown on its own only when its message is not on the page.
      const keys = (Array.isArray(ev.extensions) ? ev.extensions : []).map((x) => x && x.key).filter((k) => typeof k === 'string');
      const what = { set: `set ${keys.map(esc).join(', ') || 'nothing'}`, delete: `removed ${keys.map(esc).join(', ') || 'nothing'}`, clear: 'cleared them all' }[ev.operation] || esc(ev.operation || 'changed them');
      const on = ev.group_id ? group(ev) : `${user(ev.from)} → ${user(ev.to)}`;
      return `reactions on ${esc(seqNames(ev))} in ${on}: ${what}${ev.operator ? ` by ${user(ev.operator)}` : ''}`;
    }
    case 'group.created': {
      const ids = members(ev);
      return `${ev.owner ? user(ev.owner) : 'someone'} created ${group(ev)}${ev.name ? ` “${esc(ev.name)}”` : ''}` +
        (ev.group_type ? ` <span class="dim">(${esc(ev.group_type)})</span>` : '') +
        (ids.length ? ` with ${people(ids)}` : '');
    }
    case 'group.member.changed': {
      const ids = members(ev);
      const what = [];
      if (typeof ev.role === 'string' && ev.role !== '') what.push(`role ${esc(ev.role)}`);
      if (typeof ev.name_card === 'string') what.push(ev.name_card === '' ? 'name card cleared' : `name card “${esc(ev.name_card)}”`);
      return `${people(ids)} in ${group(ev)}: ${what.join(', ') || 'profile changed'}${ev.operator ? ` <span class="dim">by ${user(ev.operator)}</span>` : ''}`;
    }
    case 'group.owner.changed':
      return `${user(ev.owner || 'someone')} is now the owner of ${group(ev)}${ev.previous_owner ? ` (was ${user(ev.previous_owner)})` : ''}`;
    case 'group.topic.created':
      return `${ev.topic_id ? `topic ${topic(ev.topic_id)}` : 'a topic'}${ev.name ? ` “${esc(ev.name)}”` : ''} created in <span class="group">${esc(ev.group_id)}</span>${ev.operator ? ` by ${user(ev.operator)}` : ''}`;
    case 'group.topic.changed': {
      const changed = infoChanges(ev.changes);
      if (!changed.length && ev.name) changed.push(`name “${esc(ev.name)}”`);
      return `${ev.topic_id ? `topic ${topic(ev.topic_id)}` : 'a topic'} of <span class="group">${esc(ev.group_id)}</span> changed${changed.length ? ': ' + changed.join(', ') : ''}${ev.operator ? ` by ${user(ev.operator)}` : ''}`;
    }
    case 'group.topic.destroyed': {
      const ids = (Array.isArray(ev.topic_ids) ? ev.topic_ids : []).filter((t) => typeof t === 'string');
      return `${ids.length > 1 ? 'topics' : 'topic'} ${ids.map(topic).join(', ') || 'unnamed'} of <span class="group">${esc(ev.group_id)}</span> destroyed${ev.operator ? ` by ${user(ev.operator)}` : ''}`;
    }
    case 'group.attrs.changed': {
      const attrs = Object.entries(ev.attrs && typeof ev.attrs === 'object' ? ev.attrs : {});
      const op = String(ev.operation || '').toLowerCase();
      let what;
      if (op === 'clear') what = 'cleared';
      else if (op === 'delete') what = `removed ${attrs.map(([k]) => esc(k)).join(', ') || 'none'}`;
      else what = `${esc(op || 'set')} ${attrs.map(([k, v]) => `${esc(k)} “${esc(v)}”`).join(', ') || 'none'}`;
      return `attributes of ${group(ev)} ${what}${ev.operator ? ` by ${user(ev.operator)}` : ''}`;
    }
    case 'group.member.status': {
      const ids = members(ev);
      const verb = ev.status === 'online' ? 'came online in' : ev.status === 'offline' ? 'went offline in' : `are ${esc(ev.status || 'in an unknown state')} in`;
      return `<span class="dot" aria-hidden="true"></span>${people(ids)} ${verb} room ${group(ev)}${ev.reason ? ` <span class="dim">· ${esc(ev.reason)}</span>` : ''}`;
    }
    default:
      return esc(ev.type);
  }
}

// members are the user ids a member event names. The event carries them
// as strings; objects with a user or Member_Account field are accepted too.
export function members(ev) {
  const list = Array.isArray(ev.members) ? ev.members : [];
  return list
    .map((m) => (m !== null && typeof m === 'object' ? m.user ?? m.Member_Account ?? m.user_id : m))
    .filter((m) => typeof m === 'string' || typeof m === 'number')
    .map(String);
}

// statusUser is the user a user.status event is about.
export function statusUser(ev) {
  return ev.user || ev.from || ev.to || '';
}

// online says whether a user.status event leaves its user online.
export function online(ev) {
  return ev.status === 'login';
}

// devices are the platforms a login signed out, given as strings or as
// objects with a Platform field.
function devices(ev) {
  const list = Array.isArray(ev.kicked_devices) ? ev.kicked_devices : [];
  return list
    .map((d) => (d !== null && typeof d === 'object' ? d.platform ?? d.Platform : d))
    .filter((d) => typeof d === 'string' && d !== '');
}

// receipts are a group.message.read event's entries, each with a seq.
export function receipts(ev) {
  return (Array.isArray(ev.receipts) ? ev.receipts : []).filter((r) => r && r.seq !== undefined);
}

// lastReadMs is a c2c.message.read event's last_read_time in
// milliseconds; the IM gives seconds, which are accepted too.
export function lastReadMs(ev) {
  const t = Number(ev.last_read_time);
  if (!(t > 0)) return 0;
  return t < 1e12 ? t * 1000 : t;
}

// users are every user an event names, for the user filter.
export function users(ev) {
  return [ev.from, ev.to, ev.operator, ev.user, ev.owner, ev.previous_owner, ...members(ev)].filter(Boolean);
}

// matches applies the filter form to an event.
export function matches(ev, f) {
  if (f.type && ev.type !== f.type) return false;
  if (f.group && ev.group_id !== f.group) return false;
  if (f.user && !users(ev).includes(f.user)) return false;
  if (f.text) {
    const hay = JSON.stringify([ev.body, ev.group_id, ev.topic_id, users(ev), ev.status, ev.reason,
      ev.join_type, ev.exit_type, ev.changes, ev.name, ev.attrs, ev.role, ev.name_card, ev.topic_ids]).toLowerCase();
    if (!hay.includes(f.text.toLowerCase())) return false;
  }
  return true;
}

// shows says whether an item goes in the feed: an item merged into the
// messages it is about (a read receipt whose messages are all on hand, an
// edit or a reaction whose message is) shows there, and as an item of its
// own only when the type filter asks for its type.
export function shows(item, f) {
  return matches(item.ev, f) && !(item.merged && f.type !== item.ev.type);
}

// messageKeys are the identities under which a sent message can be found
// by the recall that names it.
// A message id, when both sides carry it, finds it too.
export function messageKeys(ev) {
  const ms = (ev.messages || []).filter((m) => m && typeof m === 'object');
  const ids = ms.filter((m) => m.id).map((m) => `i|${ev.app || ''}|${m.id}`);
  if (ev.group_id) return [...ms.filter((m) => m.seq !== undefined).map((m) => `g|${ev.group_id}|${ev.topic_id || ''}|${m.seq}`), ...ids];
  return [...ms.filter((m) => m.key).map((m) => `c|${m.key}`), ...ids];
}

// shownBody is the body a message item shows: its latest edit's, else its own.
export function shownBody(item) {
  const e = item.edits;
  return e && e.length ? e[e.length - 1].body : item.ev.body || [];
}

// previousBody is what the message said before the edit shown: the edit
// before it, else the message as sent; undefined for a message not edited.
export function previousBody(item) {
  const e = item.edits;
  if (!e || !e.length) return undefined;
  return e.length > 1 ? e[e.length - 2].body : item.ev.body || [];
}

// reactionCount is how many a reaction's value stands for: the length of a
// JSON array (the users who reacted), a whole number as itself, an empty
// value none, and any other value one.
export function reactionCount(value) {
  const v = String(value ?? '').trim();
  if (v === '') return 0;
  if (/^\d{1,9}$/.test(v)) return Number(v);
  if (v.startsWith('[')) {
    try {
      const a = JSON.parse(v);
      if (Array.isArray(a)) return a.length;
    } catch {
      /* not JSON: a value like any other */
    }
  }
  return 1;
}

// reactions lists a message item's extensions as {key, count, value}, the
// most counted first; those that count none are left out.
export function reactions(item) {
  if (!item.ext) return [];
  return [...item.ext.values]
    .map(([key, x]) => ({ key, count: reactionCount(x.value), value: x.value }))
    .filter((r) => r.count > 0)
    .sort((a, b) => b.count - a.count || (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
}


// presenceList renders users' latest statuses (from Presence.recent), each
// a button that filters the feed to that user.
export function presenceList(entries) {
  return entries.map((p) => `<li class="${p.online ? 'online' : 'offline'}"><span class="dot" aria-hidden="true"></span>` +
    `<button type="button" data-user="${esc(p.user)}">${esc(p.user)}</button> ` +
    `<span class="dim">${p.online ? 'online' : 'offline'}${p.platform ? ' · ' + esc(p.platform) : ''} · ${esc(clock(p.at))}</span></li>`).join('');
}

// roomList renders who is online in each audio-video room (from
// RoomPresence.rooms), each user a button that filters the feed to them.
export function roomList(rooms) {
  return rooms.map((r) => `<li><button type="button" class="room" data-group="${esc(r.group)}">${esc(r.group)}</button> <span class="dim">${esc(r.users.length)} online</span>` +
    `<ul>${r.users.map((u) => `<li class="online"><span class="dot" aria-hidden="true"></span><button type="button" data-user="${esc(u)}">${esc(u)}</button></li>`).join('')}</ul></li>`).join('');
}
