// imhub.js: the browser client of imhub (docs/protocol.md#browser-client, README.md): one
// WebSocket, kept up, and subscriptions that deliver each event once, in
// order, across reconnects.

const TICK = 1000; // ms between checks of the connection's health

// newer reports whether offset a ("n:epoch:tag", or the older "n:epoch")
// comes after b on one channel: a higher n in the same epoch, or any offset
// of another epoch (the stream started anew; the hub says so with
// recovered:false first). The tag is the hub's to check.
export function newer(a, b) {
  if (!b) return true;
  const [na, ea] = cut(a);
  const [nb, eb] = cut(b);
  return ea !== eb || na > nb;
}

const cut = (o) => {
  const [n, epoch] = o.split(':');
  return [Number(n), epoch];
};

// parse reads the JSON text s gives; {} when there is none.
function parse(s) {
  try {
    return JSON.parse(s()) || {};
  } catch {
    return {};
  }
}

// A credential is what a connection is made with: the query it adds to
// the URL (browsers cannot set headers on a WebSocket), the fields of the
// refresh frame that hands a fresh one over in band, and its exp and iat
// (unix seconds; iat by the signer's clock, or none: exp is by ours).

// jwtCredential reads a token's payload, unverified: exp and iat say when
// to refresh.
function jwtCredential(t) {
  if (!t || typeof t !== 'string') throw new AuthError('no_token', 'getToken gave no token');
  const { exp, iat } = parse(() => atob(t.split('.')[1].replace(/-/g, '+').replace(/_/g, '/')));
  return { query: 'token=' + encodeURIComponent(t), refresh: { token: t }, exp, iat };
}

// userSigCredential reads an IM login: the UserSig's own TLS.time and
// TLS.expire say when to refresh, unless the app said when it expires.
async function userSigCredential(l) {
  const { sdkAppID: app, userID: user, userSig: sig, expiresAt } = l || {};
  if (!app || !user || !sig || typeof user !== 'string' || typeof sig !== 'string' || !['string', 'number'].includes(typeof app)) {
    throw new AuthError('no_token', 'userSig gave no { sdkAppID, userID, userSig }');
  }
  const q = (k, v) => k + '=' + encodeURIComponent(v);
  const c = { query: [q('sdkappid', app), q('userid', user), q('usersig', sig)].join('&'), refresh: { usersig: sig } };
  if (expiresAt > 0) return { ...c, exp: expiresAt / 1000 };
  const d = await userSigDoc(sig);
  const [time, expire] = [d['TLS.time'], d['TLS.expire']].map(Number);
  return time > 0 && expire > 0 ? { ...c, exp: time + expire, iat: time } : c;
}

// userSigDoc decodes a UserSig, unverified: base64 with *, - and _ for
// +, / and =, then zlib, then JSON; {} when it is none, or where there is
// no DecompressionStream (the hub then closes it at its end with 4002,
// and a fresh one reconnects).
async function userSigDoc(sig) {
  try {
    const bin = atob(sig.replace(/\*/g, '+').replace(/-/g, '/').replace(/_/g, '='));
    const z = new Blob([Uint8Array.from(bin, (ch) => ch.charCodeAt(0))]).stream();
    const text = await new Response(z.pipeThrough(new DecompressionStream('deflate'))).text();
    return parse(() => text);
  } catch {
    return {};
  }
}

/** An error the hub or the client reports; code says which. */
export class HubError extends Error {
  constructor(code, message, more) {
    super(message);
    this.name = new.target.name;
    this.code = code;
    Object.assign(this, more);
  }
}
/** A credential the hub refuses and a fresh one does not fix, or 4010. */
export class AuthError extends HubError {}
/** The hub did not answer in time. */
export class TimeoutError extends HubError {}

class Emitter {
  #on = {};

  /** on calls fn for each event of type; it returns a function that stops that. */
  on(type, fn) {
    (this.#on[type] ||= new Set()).add(fn);
    return () => this.off(type, fn);
  }

  off(type, fn) {
    this.#on[type]?.delete(fn);
  }

  _emit(type, ...args) {
    for (const fn of this.#on[type] || []) {
      // A listener that throws must not stop the others, nor the client:
      // its error is reported unhandled.
      try {
        fn(...args);
      } catch (e) {
        queueMicrotask(() => {
          throw e;
        });
      }
    }
  }
}

/** One channel's stream of events; made by Hub.subscribe. */
export class Subscription extends Emitter {
  constructor(hub, channel, offset, since) {
    super();
    this.hub = hub;
    this.channel = channel;
    this._since = since; // where the app asked the stream to start, without a kept offset
    this.offset = offset ?? since; // of the last event delivered, or where the stream was joined
    this._id = 0; // of our subscribe not yet answered
    this._retry = 0; // when to subscribe again after a temporary refusal
  }

  /** unsubscribe stops the stream and forgets its offset. */
  unsubscribe() {
    this.hub._unsubscribe(this);
  }
}

/** A connection to one hub. */
export class Hub extends Emitter {
  state = 'disconnected';
  #o;
  #url;
  #ws = null;
  #gen = 0; // bumped by every connect and close: stale callbacks compare it
  #subs = new Map();
  #reqs = new Map(); // id -> pending request
  #id = 0;
  #cred = null; // the credential on hand (see jwtCredential)
  #credP = null; // getToken or userSig in flight, shared by every caller
  #refreshAt = Infinity;
  #refreshing = false;
  #authFailed = false; // the last connection was refused for its credential
  #attempt = 0; // reconnects since the last connected
  #retry = null;
  #timer = null;
  #lastTick = 0;
  #lastRecv = 0;
  #pingAt = 0; // when our unanswered ping went out
  #openedAt = 0;
  #saved = {}; // offsets read from options.persist
  #who = ''; // the key offsets are kept under: persistKey, app and user
  #dirty = false;
  #unlisten = [];

  /** url is the hub's WebSocket URL; options, see imhub.d.ts. */
  constructor(url, options) {
    super();
    // One credential: the hub takes one per connection.
    const given = ['getToken', 'userSig'].filter((k) => options?.[k] != null);
    if (given.length !== 1) {
      throw new TypeError(given.length ? 'imhub: give options.getToken or options.userSig, not both' : 'imhub: options.getToken (a JWT) or options.userSig (an IM login) is required');
    }
    if (typeof options[given[0]] !== 'function') throw new TypeError(`imhub: options.${given[0]} must be a function`);
    const g = globalThis;
    this.#url = url;
    this.#o = {
      minDelay: 500,
      maxDelay: 20000,
      pingInterval: 25000,
      timeout: 10000,
      maxFrame: 65536,
      refreshAhead: 60000,
      persistKey: 'imhub:' + url,
      now: () => Date.now(),
      random: Math.random,
      setTimeout: (fn, ms) => g.setTimeout(fn, ms),
      clearTimeout: (t) => g.clearTimeout(t),
      window: g.window,
      document: g.document,
      ...options,
    };
  }

  /** subscribe returns the channel's subscription, made at the first call (options.since: see imhub.d.ts). */
  subscribe(channel, options) {
    let s = this.#subs.get(channel);
    if (!s) {
      const since = options?.since;
      if (since != null && typeof since !== 'string') throw new TypeError('imhub: options.since must be an offset (a string)');
      s = new Subscription(this, channel, this.#saved[channel], since || undefined);
      this.#subs.set(channel, s);
      this.#dirty = true;
      if (this.state === 'connected') this.#subscribe(s);
    }
    return s;
  }

  /** subscriptions lists the channels subscribed. */
  subscriptions() {
    return [...this.#subs.values()];
  }

  /** presence resolves to who is connected to channel: user id -> connections. */
  presence(channel) {
    return this.#request({ op: 'presence', channel }).then((f) => f.users || {});
  }

  /** connect opens the connection, and keeps it open until close. */
  connect() {
    if (this.state === 'connecting' || this.state === 'connected' || this.#retry) return this;
    const { window: w, document: d } = this.#o;
    const on = (t, type, fn) => {
      if (!t?.addEventListener) return;
      t.addEventListener(type, fn);
      this.#unlisten.push(() => t.removeEventListener(type, fn));
    };
    if (!this.#unlisten.length) {
      on(w, 'online', () => this.#wake(true));
      on(d, 'visibilitychange', () => d.visibilityState === 'visible' ? this.#wake() : this.#save());
      on(w, 'pagehide', () => this.#save());
    }
    this.#lastTick = this.#o.now();
    this.#schedule();
    this.#open();
    return this;
  }

  /** close ends the connection for good (until connect is called again). */
  close() {
    this.#gen++;
    this.#o.clearTimeout(this.#retry);
    this.#o.clearTimeout(this.#timer);
    this.#retry = this.#timer = null;
    this.#save();
    this.#unlisten.forEach((f) => f());
    this.#unlisten = [];
    const ws = this.#ws;
    this.#ws = null;
    ws?.close(1000);
    this.#rejectAll(new HubError('closed', 'the client is closed'));
    this.#set('closed');
  }

  _unsubscribe(s) {
    if (this.#subs.get(s.channel) !== s) return;
    this.#subs.delete(s.channel);
    delete this.#saved[s.channel];
    this.#dirty = true;
    s._id = 0;
    this.#send({ op: 'unsubscribe', channel: s.channel, id: ++this.#id });
  }

  #set(state) {
    if (this.state === state) return;
    this.state = state;
    this._emit('state', state);
  }

  #send(frame) {
    const ws = this.#ws;
    if (this.state !== 'connected' || ws?.readyState !== 1) return false;
    ws.send(JSON.stringify(frame));
    return true;
  }

  // credential resolves to the credential to connect or refresh with: the
  // one on hand, unless fresh asks for another. Concurrent callers share
  // one call of getToken or userSig.
  #credential(fresh) {
    if (!fresh && this.#cred) return Promise.resolve(this.#cred);
    const o = this.#o;
    let tm;
    return (this.#credP ||= (async () => {
      try {
        const read = o.getToken ? async () => jwtCredential(await o.getToken()) : async () => userSigCredential(await o.userSig());
        // Bounded: one that never answers would hold the client for good.
        const { exp, iat, ...c } = await Promise.race([read(), new Promise((_, no) => (tm = o.setTimeout(() => no(new TimeoutError('timeout', `no credential within ${o.timeout} ms`)), o.timeout)))]);
        const now = this.#o.now();
        // Its life by the signer's clock (iat), else what our clock
        // leaves, counted from now: skew cannot make it spin.
        const life = (exp - (iat || now / 1000)) * 1000;
        this.#cred = c;
        // A minute ahead of its end, or half a short life; without iat our
        // clock may be past exp: then in 5 s.
        this.#refreshAt = exp > 0 ? now + Math.max(iat ? TICK : 5000, life - Math.min(o.refreshAhead, life / 2)) : Infinity;
        return c;
      } finally {
        o.clearTimeout(tm);
        this.#credP = null;
      }
    })());
  }

  async #open() {
    this.#o.clearTimeout(this.#retry);
    this.#retry = null;
    const gen = ++this.#gen;
    this.#set('connecting');
    let cred;
    try {
      cred = await this.#credential(this.#authFailed || this.#o.now() >= this.#refreshAt);
    } catch (e) {
      if (gen !== this.#gen) return;
      const fn = this.#o.getToken ? 'getToken' : 'userSig';
      this._emit('error', e instanceof HubError ? e : new HubError('token', fn + ' failed: ' + e, { cause: e }));
      return this.#again(false);
    }
    if (gen !== this.#gen) return;
    const WS = this.#o.WebSocket || globalThis.WebSocket;
    const ws = new WS(this.#url + (this.#url.includes('?') ? '&' : '?') + cred.query);
    this.#ws = ws;
    this.#openedAt = this.#lastRecv = this.#o.now();
    this.#pingAt = 0;
    // Handlers assigned, not added: whoever holds the socket can feed it.
    ws.onmessage = (m) => ws === this.#ws && this.#frame(m.data);
    ws.onclose = (e) => this.#gone(ws, e.code, e.reason);
    // A failed connection is closed with 1006 after this, but not in
    // every WebSocket (Node 20's fires no close).
    ws.onerror = () => this.#gone(ws, 1006, 'connection failed');
  }

  // gone handles the end of connection ws: by the hub's close code, it
  // reconnects after a backoff, at once with a fresh credential, or never.
  #gone(ws, code, reason, now) {
    if (ws !== this.#ws) return;
    this.#ws = null;
    ws.onclose = ws.onmessage = ws.onerror = null;
    try {
      ws.close();
    } catch {
      /* already closing */
    }
    for (const s of this.#subs.values()) s._id = 0;
    // A frame the hub refused (1007 to 1009) is not sent again.
    if (code > 1006 && code < 1010) this.#rejectAll(new HubError('refused', reason || 'the hub refused a frame', { closeCode: code }));
    for (const r of this.#reqs.values()) r.sent = false;
    const gen = this.#gen;
    this._emit('disconnected', { code, reason });
    if (gen !== this.#gen) return; // a listener closed or connected again
    if (code === 4010) return this.#end(new AuthError('disconnected', reason || 'disconnected by the server', { closeCode: code }));
    if (code === 4001 || code === 4002) {
      if (this.#authFailed) {
        return this.#end(new AuthError(code === 4001 ? 'token_invalid' : 'token_expired', reason || 'token refused', { closeCode: code }));
      }
      // Once more, with a fresh credential; refused again, the client stops.
      this.#authFailed = true;
      now = true;
    }
    this.#again(now || code === 1012);
  }

  #end(err) {
    this.error = err;
    this._emit('error', err);
    this.close();
  }

  // again schedules the next connection: soon when asked, else after a
  // doubling backoff with full jitter, so that the clients of a node that
  // died do not all return at once.
  #again(soon) {
    const o = this.#o;
    this.#set('disconnected');
    if (this.#retry) return;
    const cap = Math.min(o.maxDelay, o.minDelay * 2 ** ++this.#attempt);
    const delay = soon ? o.random() * o.minDelay : o.minDelay + o.random() * (cap - o.minDelay);
    this.#retry = o.setTimeout(() => this.#open(), delay);
  }

  // wake checks the connection when the page may have slept or the
  // network changed: a waiting client reconnects now; a connection silent
  // for longer than the hub waits is made again; any other is pinged.
  #wake(online) {
    const t = this.#o.now();
    if (this.state === 'disconnected' && this.#retry) return this.#open();
    if (this.state !== 'connected') return;
    if (t - this.#lastRecv > this.#o.pingInterval + this.#o.timeout) return this.#gone(this.#ws, 1006, 'asleep', true);
    if (online || !this.#pingAt) this.#ping();
  }

  #ping() {
    if (this.#send({ op: 'ping' })) this.#pingAt = this.#o.now();
  }

  // Replaced, not added: a listener that reconnects during a tick must not
  // start a second loop.
  #schedule() {
    this.#o.clearTimeout(this.#timer);
    this.#timer = this.#o.setTimeout(() => this.#tick(), TICK);
  }

  // tick runs once a second while open. Pages do not see the hub's
  // WebSocket pings: a silent connection is pinged in band, and dropped
  // when no answer comes.
  #tick() {
    const o = this.#o;
    const t = this.#o.now();
    const slept = t - this.#lastTick > TICK + 4000;
    this.#lastTick = t;
    if (slept) this.#wake();
    if (this.state === 'connected') {
      if (this.#pingAt && t - this.#pingAt > o.timeout) this.#gone(this.#ws, 1006, 'no answer to a ping');
      else if (!this.#pingAt && t - this.#lastRecv >= o.pingInterval) this.#ping();
      if (t >= this.#refreshAt) this.#refresh();
      for (const s of this.#subs.values()) if (s._retry && t >= s._retry) this.#subscribe(s);
    } else if (this.state === 'connecting' && this.#ws && t - this.#openedAt > o.timeout) {
      this.#gone(this.#ws, 1006, 'no answer to connect');
    }
    if (this.#dirty) this.#save();
    if (this.state !== 'closed') this.#schedule();
  }

  // refresh gets a fresh credential ahead of its end and hands it to the
  // hub in band.
  async #refresh() {
    if (this.#refreshing) return;
    this.#refreshing = true;
    try {
      const c = await this.#credential(true);
      if (this.state === 'connected') await this.#request({ op: 'refresh', ...c.refresh });
    } catch (e) {
      // Tried again later; at its end the hub closes with 4002, and a
      // fresh one is got to reconnect.
      this.#refreshAt = this.#o.now() + this.#o.timeout;
      this._emit('error', e);
    } finally {
      this.#refreshing = false;
    }
  }

  // request sends frame once connected and resolves to the answer. Each has
  // a timer of its own: the tick does not run before connect.
  #request(frame) {
    const o = this.#o;
    return new Promise((resolve, reject) => {
      if (this.state === 'closed') return reject(new HubError('closed', 'the client is closed'));
      const id = ++this.#id;
      const r = { frame: { ...frame, id }, resolve, reject };
      // Over the hub's -max-frame: closed with 1009.
      if (new Blob([JSON.stringify(r.frame)]).size > o.maxFrame) return reject(new HubError('too_large', `${frame.op} is over maxFrame`));
      r.tm = o.setTimeout(() => this.#take(id)?.reject(new TimeoutError('timeout', `no answer to ${frame.op} within ${o.timeout} ms`)), o.timeout);
      this.#reqs.set(id, r);
      r.sent = this.#send(r.frame);
    });
  }

  // take removes pending request id and returns it.
  #take(id) {
    const r = this.#reqs.get(id);
    this.#reqs.delete(id);
    this.#o.clearTimeout(r?.tm);
    return r;
  }

  #rejectAll(err) {
    for (const id of this.#reqs.keys()) this.#take(id).reject(err);
  }

  #subscribe(s) {
    s._id = ++this.#id;
    s._retry = 0;
    this.#send({ op: 'subscribe', channel: s.channel, since: s.offset, id: s._id }); // no offset: no since
  }

  #save() {
    const p = this.#o.persist;
    this.#dirty = false;
    if (!p || !this.#who) return;
    for (const s of this.#subs.values()) if (s.offset) this.#saved[s.channel] = s.offset;
    try {
      p.setItem(this.#who, JSON.stringify(this.#saved));
    } catch {
      /* storage full or denied: offsets are kept in memory only */
    }
  }

  #frame(data) {
    this.#lastRecv = this.#o.now();
    this.#pingAt = 0; // any frame shows the connection is alive
    const f = parse(() => data);
    const s = this.#subs.get(f.channel);
    const r = f.id != null && this.#take(f.id);
    if (r) {
      if (f.op === 'error') r.reject(new HubError(f.code, f.message, { channel: f.channel }));
      else r.resolve(f);
      return;
    }
    switch (f.op) {
      case 'connected': {
        const info = { user: f.user, app: f.app, node: f.node };
        Object.assign(this, info);
        // Offsets are kept per app and user: a Storage may be shared.
        const who = [this.#o.persistKey, f.app, f.user].join(':');
        if (who !== this.#who) {
          this.#save();
          this.#who = who;
          this.#saved = parse(() => this.#o.persist.getItem(who));
          for (const x of this.#subs.values()) x.offset = this.#saved[x.channel] ?? x._since;
        }
        this.#attempt = 0;
        this.#authFailed = false;
        // The hub subscribes the connection to the user's own channel by
        // itself, and answers with a subscribed frame of its own: with an
        // offset to continue from, we ask again with since.
        const own = f.channels || [];
        for (const c of own) this.subscribe(c);
        this.#set('connected');
        this._emit('connected', { ...info, channels: own });
        for (const x of this.#subs.values()) if (x.offset || !own.includes(x.channel)) this.#subscribe(x);
        for (const q of this.#reqs.values()) q.sent ||= this.#send(q.frame);
        break;
      }
      case 'subscribed':
        // While our subscribe is unanswered, only its answer counts.
        if (!s || !this.#ours(s, f)) return;
        s._id = 0;
        if (f.recovered === false || !s.offset) {
          s.offset = f.offset;
          this.#dirty = true;
        }
        s._emit('subscribed', { offset: f.offset, recovered: f.recovered });
        if (f.recovered === false) s._emit('gap', { offset: f.offset });
        break;
      case 'event':
        // Events before the answer to a subscribe with since are replayed
        // after it; those at or before the offset were delivered already.
        if (!s || s._id || !newer(f.offset, s.offset)) return;
        s.offset = f.offset;
        this.#dirty = true;
        s._emit('event', f.event, f.offset);
        break;
      case 'unsubscribed':
        if (!s || f.id != null) return;
        // Unasked, with a reason: the hub ended it (the user left the
        // group, or it was disbanded); it is not asked for again.
        if (f.reason) {
          this.#drop(s);
          s._emit('removed', { reason: f.reason });
        } else {
          // Without one: a refreshed token no longer grants the channel.
          this.#fail(s, new HubError('forbidden', 'the token no longer grants ' + f.channel, { channel: f.channel }));
        }
        break;
      case 'error':
        if (!s) return this._emit('error', new HubError(f.code, f.message));
        if (!this.#ours(s, f)) return;
        s._id = 0;
        // Refusals that asking again later may cure.
        if (['unavailable', 'rate_limited'].includes(f.code)) {
          s._retry = this.#o.now() + this.#o.minDelay * (2 + 2 * this.#o.random());
          s._emit('error', new HubError(f.code, f.message, { channel: f.channel, temporary: true }));
        } else {
          this.#fail(s, new HubError(f.code, f.message, { channel: f.channel }));
        }
        break;
    }
  }

  // ours says whether a subscribed or error frame answers s as it stands:
  // the answer to its subscribe in flight, or, with none, the hub's own.
  #ours(s, f) {
    return f.id == null ? !s._id : f.id === s._id;
  }

  // drop forgets subscription s: it is not asked for again, not even after
  // a reconnect, unless the app subscribes anew.
  #drop(s) {
    this.#subs.delete(s.channel);
    delete this.#saved[s.channel];
    this.#dirty = true;
  }

  #fail(s, err) {
    this.#drop(s);
    s._emit('error', err);
  }
}
