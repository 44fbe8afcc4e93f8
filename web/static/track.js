// What the dashboard remembers from events about other events and about
// users: which messages on hand a read receipt ticks, and each user's
// latest status. No DOM here, so node tests can run it.
import { lastReadMs, online, receipts, statusUser } from './render.js';

const pair = (from, to) => `${from}\u0000${to}`;
const groupKey = (ev, seq) => `${ev.group_id}|${ev.topic_id || ''}|${seq}`;

// readCovers says whether a c2c.message.read event covers a message sent
// to its reader: sent at or before last_read_time. The IM gives that time
// in seconds, so a message of the same second counts as read.
export function readCovers(receipt, msg) {
  const raw = Number(receipt.last_read_time);
  if (!(raw > 0)) return false;
  const sent = Number(msg.time) || 0;
  return raw < 1e12 ? Math.floor(sent / 1000) <= raw : sent <= lastReadMs(receipt);
}

// ReadIndex holds the sent messages on hand, so that a read receipt finds
// them: a group message by group, topic and seq; a one-to-one message by
// sender, recipient and time. Items are the feed's ({ev, read}); apply
// sets item.read on the messages a receipt covers.
export class ReadIndex {
  #group = new Map(); // groupKey -> item
  #c2c = new Map(); // pair(sender, recipient) -> items, in arrival order

  add(item) {
    const ev = item.ev;
    if (ev.type === 'group.message.sent') {
      for (const m of ev.messages || []) this.#group.set(groupKey(ev, m.seq), item);
    } else if (ev.type === 'c2c.message.sent') {
      const k = pair(ev.from, ev.to);
      const list = this.#c2c.get(k) || [];
      list.push(item);
      this.#c2c.set(k, list);
    }
  }

  // remove forgets an item the feed no longer keeps.
  remove(item) {
    const ev = item.ev;
    if (ev.type === 'group.message.sent') {
      for (const m of ev.messages || []) {
        const k = groupKey(ev, m.seq);
        if (this.#group.get(k) === item) this.#group.delete(k);
      }
    } else if (ev.type === 'c2c.message.sent') {
      const k = pair(ev.from, ev.to);
      const list = (this.#c2c.get(k) || []).filter((i) => i !== item);
      if (list.length) this.#c2c.set(k, list);
      else this.#c2c.delete(k);
    }
  }

  // apply marks as read the messages on hand that the receipt item is
  // about, and returns those whose ticks changed. It sets receipt.merged
  // when its news is all shown as ticks: every message of a group receipt
  // is on hand, or a one-to-one receipt covers at least one.
  apply(receipt) {
    const ev = receipt.ev;
    const changed = [];
    if (ev.type === 'group.message.read') {
      const rs = receipts(ev);
      let found = 0;
      for (const r of rs) {
        const item = this.#group.get(groupKey(ev, r.seq));
        if (!item) continue;
        found++;
        const was = item.read;
        if (was && was.at > (ev.time || 0)) continue; // an older receipt, arrived late
        const read = { count: r.read ?? 0, unread: r.unread, at: ev.time || 0 };
        if (!was || was.count !== read.count || was.unread !== read.unread) changed.push(item);
        item.read = read;
      }
      receipt.merged = rs.length > 0 && found === rs.length;
    } else if (ev.type === 'c2c.message.read') {
      // The reader is from; the messages read are those its peer sent it.
      let covered = 0;
      for (const item of this.#c2c.get(pair(ev.to, ev.from)) || []) {
        if (!readCovers(ev, item.ev)) continue;
        covered++;
        if (item.read) continue;
        item.read = { by: ev.from, at: lastReadMs(ev) };
        changed.push(item);
      }
      receipt.merged = covered > 0;
    }
    return changed;
  }
}

// Presence keeps each user's latest status, for at most max users (those
// heard from least recently are forgotten first).
export class Presence {
  #users = new Map(); // user -> {user, online, status, at, platform, reason}, least recent first

  constructor(max = 500) {
    this.max = max;
  }

  // update takes a user.status event and reports whether it changed what
  // is known: one older than the latest known for its user is ignored.
  update(ev) {
    const user = statusUser(ev);
    if (!user) return false;
    const at = ev.time || ev.received || 0;
    const was = this.#users.get(user);
    if (was && was.at > at) return false;
    this.#users.delete(user);
    this.#users.set(user, { user, online: online(ev), status: ev.status || '', at, platform: ev.platform || '', reason: ev.reason || '' });
    if (this.#users.size > this.max) this.#users.delete(this.#users.keys().next().value);
    return true;
  }

  get(user) {
    return this.#users.get(user);
  }

  // recent lists up to n users, the one heard from last first.
  recent(n) {
    return [...this.#users.values()].slice(-n).reverse();
  }
}

// eventTime is when an event happened as far as ordering goes: the IM's
// time, else when the hub received it.
const eventTime = (ev) => Number(ev.time) || Number(ev.received) || 0;

const MAX_VERSIONS = 20; // edits kept per message

// applyEdit records a modified event on the item of the message it edits
// (target.edits: versions oldest first, each {body, at, by, id}) and reports
// whether the text shown changed. A later time wins: an edit older than the
// one shown, arriving late, is kept as an earlier version, not shown. The
// same event twice counts once.
export function applyEdit(target, ev) {
  const versions = target.edits || [];
  if (versions.some((v) => v.id === ev.id)) return false;
  const v = { body: Array.isArray(ev.body) ? ev.body : [], at: eventTime(ev), by: ev.operator || ev.from || '', id: ev.id };
  let i = versions.length;
  while (i > 0 && versions[i - 1].at > v.at) i--;
  versions.splice(i, 0, v);
  if (versions.length > MAX_VERSIONS) versions.shift();
  target.edits = versions;
  return versions[versions.length - 1] === v;
}

// applyExtension applies an extension event to the item of its message
// (target.ext: {seq, values: Map key -> {value, seq}}) and reports whether
// it changed. The event with the higher extension_seq wins: one at or
// below the seq already applied is stale (or a repeat) and ignored.
export function applyExtension(target, ev) {
  const seq = Number(ev.extension_seq);
  if (!Number.isFinite(seq)) return false;
  const ext = target.ext || { seq: -Infinity, values: new Map() };
  if (seq <= ext.seq) return false;
  const list = Array.isArray(ev.extensions) ? ev.extensions.filter((x) => x && typeof x.key === 'string') : [];
  switch (ev.operation) {
    case 'set':
      for (const x of list) ext.values.set(x.key, { value: String(x.value ?? ''), seq: x.seq });
      break;
    case 'delete':
      for (const x of list) ext.values.delete(x.key);
      break;
    case 'clear':
      ext.values.clear();
      break;
    default:
      return false; // an operation this page does not know: nothing to show
  }
  ext.seq = seq;
  target.ext = ext;
  return true;
}

// RoomPresence keeps who is online in each audio-video group, from
// group.member.status events: online adds the members, offline removes
// them. Per member and room the latest event wins; an older one arriving
// late is ignored. At most max member-room pairs are remembered (those
// heard from least recently are forgotten first); a destroyed group is
// emptied.
export class RoomPresence {
  #latest = new Map(); // pair(group, user) -> {group, user, online, at, reason}, least recent first

  constructor(max = 2000) {
    this.max = max;
  }

  // update takes an event and reports whether the rooms changed.
  update(ev) {
    if (ev.type === 'group.destroyed') {
      let changed = false;
      for (const [k, x] of this.#latest) {
        if (x.group === ev.group_id) {
          this.#latest.delete(k);
          changed ||= x.online;
        }
      }
      return changed;
    }
    if (ev.type !== 'group.member.status' || !ev.group_id) return false;
    const on = ev.status === 'online';
    if (!on && ev.status !== 'offline') return false;
    const at = eventTime(ev);
    let changed = false;
    for (const m of Array.isArray(ev.members) ? ev.members : []) {
      if (typeof m !== 'string' || m === '') continue;
      const k = pair(ev.group_id, m);
      const was = this.#latest.get(k);
      if (was && was.at > at) continue;
      this.#latest.delete(k);
      this.#latest.set(k, { group: ev.group_id, user: m, online: on, at, reason: ev.reason || '' });
      changed ||= !was || was.online !== on;
    }
    while (this.#latest.size > this.max) this.#latest.delete(this.#latest.keys().next().value);
    return changed;
  }

  // rooms lists the rooms with someone online, the busiest first, each
  // {group, users} with the users by name.
  rooms() {
    const by = new Map();
    for (const x of this.#latest.values()) {
      if (!x.online) continue;
      if (!by.has(x.group)) by.set(x.group, []);
      by.get(x.group).push(x.user);
    }
    return [...by].map(([group, users]) => ({ group, users: users.sort() }))
      .sort((a, b) => b.users.length - a.users.length || (a.group < b.group ? -1 : 1));
  }
}
