// Stand-ins for the browser client's tests: a clock whose timers run only
// when the test advances it, and a socket the test answers for the hub.
import { token, until } from './hubprocs.mjs';
import { Hub } from '../sdk/imhub.js';

export const TICK = 1000;

// Clock runs timers only when the test advances it.
export class Clock {
  t = 1_700_000_000_000;
  #timers = new Map();
  #n = 0;
  now = () => this.t;
  setTimeout = (fn, ms) => {
    this.#timers.set(++this.#n, { at: this.t + ms, ms, fn });
    return this.#n;
  };
  clearTimeout = (id) => this.#timers.delete(id);

  advance(ms) {
    const end = this.t + ms;
    for (;;) {
      let id;
      let next;
      for (const [k, x] of this.#timers) if (x.at <= end && (!next || x.at < next.at)) [id, next] = [k, x];
      if (!next) break;
      this.#timers.delete(id);
      this.t = Math.max(this.t, next.at);
      next.fn();
    }
    this.t = end;
  }

  // ticks counts the pending once-a-second checks: one per loop.
  ticks() {
    return [...this.#timers.values()].filter((x) => x.ms === TICK).length;
  }

  // waits lists the pending timers other than the once-a-second check.
  waits() {
    return [...this.#timers.values()].filter((x) => x.ms !== TICK).map((x) => x.ms);
  }
}

// A socket the test answers for the hub.
export class Held {
  static all = [];
  readyState = 0;
  sent = [];
  constructor(url, ...more) {
    this.url = url;
    this.more = more; // protocols: none is given
    Held.all.push(this);
  }
  send(data) {
    this.sent.push(JSON.parse(data));
  }
  close() {
    this.readyState = 3;
  }
  open(user = 'u', app = '1400000000') {
    this.readyState = 1;
    this.recv({ op: 'connected', user, app, node: 'n1', channels: ['user:' + user] });
  }
  recv(f) {
    this.onmessage?.({ data: JSON.stringify(f) });
  }
  drop(code, reason = '') {
    this.readyState = 3;
    this.onclose?.({ code, reason });
  }
}

// held makes a client on the test's clock whose sockets are Held ones;
// its credential is a token unless more gives a userSig.
export function held({ url = 'ws://hub.test/ws', ...more } = {}) {
  const clock = new Clock();
  Held.all = [];
  const hub = new Hub(url, {
    ...(more.userSig ? {} : { getToken: () => token('u') }),
    minDelay: 100, maxDelay: 1000, pingInterval: 25000, timeout: 10000,
    now: clock.now, setTimeout: clock.setTimeout, clearTimeout: clock.clearTimeout, random: () => 0.5, WebSocket: Held, ...more,
  });
  return { clock, hub };
}

// socket resolves to the n-th socket the client opened.
export const socket = async (n) => {
  await until(() => Held.all.length >= n, `socket ${n}`, 2000);
  return Held.all[n - 1];
};

