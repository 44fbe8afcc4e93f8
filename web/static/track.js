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
  // about, and returns those whose ticks changed. It sets receipt.ticked
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
      receipt.ticked = rs.length > 0 && found === rs.length;
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
      receipt.ticked = covered > 0;
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
