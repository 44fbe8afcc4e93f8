// Real processes for the client's tests: redis-server on a unix socket and
// the hub binary, built from this tree, with signed callbacks and HS256
// tokens made here as the IM backend and an app's backend make them.
import { execFileSync, spawn } from 'node:child_process';
import { createHash, createHmac } from 'node:crypto';
import { mkdtempSync, rmSync, existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { deflateSync } from 'node:zlib';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const root = fileURLToPath(new URL('../..', import.meta.url));
export const SECRET = 'sdk-test-secret-sdk-test-secret-sdk-test';
export const APP = '1400000000';
export const CALLBACK_TOKEN = 'sdk-test-callback-token';

let built = '';

// hubBinary builds cmd/hub into bin/hub once per test file (go's cache
// makes a build of an unchanged tree quick).
export function hubBinary() {
  if (!built) {
    execFileSync('go', ['build', '-o', 'bin/hub', './cmd/hub'], { cwd: root, stdio: 'inherit' });
    built = join(root, 'bin/hub');
  }
  return built;
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// until polls ok until it is true, or fails with what after ms.
export async function until(ok, what, ms = 15000) {
  const end = Date.now() + ms;
  while (!(await ok())) {
    if (Date.now() > end) throw new Error('timed out waiting for ' + what);
    await sleep(20);
  }
}

export function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
    s.on('error', reject);
  });
}

// A test's processes, stopped by stop() (call it from after()).
export class Procs {
  dir = mkdtempSync(join(tmpdir(), 'imhub-sdk-'));
  #all = new Set();

  spawn(cmd, args, name) {
    const p = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    p.log = '';
    p.stderr.on('data', (b) => {
      p.log = (p.log + b).slice(-4000);
    });
    p.exited = new Promise((r) => p.on('exit', r));
    p.name = name;
    this.#all.add(p);
    return p;
  }

  async redis() {
    const sock = join(this.dir, 'redis.sock');
    this.spawn('redis-server', ['--port', '0', '--unixsocket', sock, '--unixsocketperm', '700', '--save', '', '--appendonly', 'no', '--dir', this.dir], 'redis');
    await until(() => existsSync(sock), 'redis-server to listen');
    return 'unix://' + sock;
  }

  // hub starts a hub on addr (a free port when not given) and waits until
  // it is ready.
  async hub({ redis, addr, node = 'hub', args = [] }) {
    addr ||= '127.0.0.1:' + (await freePort());
    const flags = ['-addr', addr, '-node', node, '-jwt-secret', SECRET, '-apps', `${APP}:${CALLBACK_TOKEN}`, '-spool-dir', 'off', '-log-format', 'json', ...args];
    if (redis) flags.push('-redis', redis);
    const p = this.spawn(hubBinary(), flags, node);
    p.addr = addr;
    await until(async () => {
      if (p.exitCode !== null) throw new Error(`hub ${node} exited: ${p.log}`);
      try {
        return (await fetch(`http://${addr}/readyz`)).ok;
      } catch {
        return false;
      }
    }, `hub ${node} to be ready`);
    return p;
  }

  async kill(p, signal = 'SIGKILL') {
    p.kill(signal);
    await p.exited;
    this.#all.delete(p);
  }

  async stop() {
    await Promise.all([...this.#all].map((p) => this.kill(p)));
    rmSync(this.dir, { recursive: true, force: true });
  }
}

const b64 = (v) => Buffer.from(JSON.stringify(v)).toString('base64url');

// token mints an HS256 JWT for sub, valid for ttl seconds.
export function token(sub, { ttl = 3600, secret = SECRET, ...claims } = {}) {
  const now = Math.floor(Date.now() / 1000);
  const body = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64({ sub, app: APP, iat: now, exp: now + ttl, ...claims })}`;
  return `${body}.${createHmac('sha256', secret).update(body).digest('base64url')}`;
}

// IM_KEY is the app's IM secret key in the tests (a hub's -im-keys).
export const IM_KEY = 'sdk-test-im-secret-key-0123456789abcdef';

// userSig makes a UserSig of user for app as the IM's signing library does
// (PROTOCOL §8): TLS.time and TLS.expire in unix seconds, signed with key.
export function userSig(user, { app = APP, key = IM_KEY, time = Math.floor(Date.now() / 1000), expire = 86400 } = {}) {
  const signed = `TLS.identifier:${user}\nTLS.sdkappid:${app}\nTLS.time:${time}\nTLS.expire:${expire}\n`;
  const doc = {
    'TLS.ver': '2.0', 'TLS.identifier': user, 'TLS.sdkappid': Number(app), 'TLS.expire': expire, 'TLS.time': time,
    'TLS.sig': createHmac('sha256', key).update(signed).digest('base64'),
  };
  const z = deflateSync(Buffer.from(JSON.stringify(doc))).toString('base64');
  return z.replace(/\+/g, '*').replace(/\//g, '-').replace(/=/g, '_');
}

// groupMessage posts a signed Group.CallbackAfterSendMsg to the hub at
// addr and resolves to whether the hub acknowledged it.
export async function groupMessage(addr, group, seq, text = 'm' + seq) {
  const rt = String(Math.floor(Date.now() / 1000));
  const sign = createHash('sha256').update(CALLBACK_TOKEN + rt).digest('hex');
  const q = new URLSearchParams({ SdkAppid: APP, CallbackCommand: 'Group.CallbackAfterSendMsg', contenttype: 'json', RequestTime: rt, Sign: sign });
  const body = { CallbackCommand: 'Group.CallbackAfterSendMsg', GroupId: group, Type: 'Public', From_Account: 'jared', Random: seq, MsgSeq: seq, MsgTime: Math.floor(Date.now() / 1000), MsgBody: [{ MsgType: 'TIMTextElem', MsgContent: { Text: text } }] };
  try {
    const r = await fetch(`http://${addr}/im/callback?${q}`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) });
    const a = await r.json();
    return r.ok && a.ActionStatus === 'OK' && a.ErrorCode === 0;
  } catch {
    return false;
  }
}

// seqs collects the MsgSeq of each event a subscription delivers.
export function seqs(sub) {
  const got = [];
  sub.on('event', (ev) => got.push(ev.messages[0].seq));
  return got;
}
