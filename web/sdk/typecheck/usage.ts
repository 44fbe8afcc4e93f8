// Compiled with tsc --noEmit against imhub.d.ts (make test): what an app
// writes with the client type-checks, and misuse does not.
import { AuthError, Hub, HubError, newer, type HubEvent, type IMLogin, type RemovedReason, type State, type Subscription } from '../imhub.js';

const hub = new Hub('wss://hub.example.com/ws', {
  getToken: async () => (await fetch('/token')).text(),
  minDelay: 250,
  maxDelay: 10_000,
  persist: sessionStorage,
  maxFrame: 65536,
});
const g1: Subscription = hub.subscribe('group:G1');
g1.on('event', (event: HubEvent, offset: string) => console.log(event.type, event.group_id, offset));
g1.on('gap', ({ offset }) => console.log('history did not reach back; live from', offset));
g1.on('subscribed', ({ offset, recovered }) => console.log(offset, recovered === false));
g1.on('error', (e: HubError) => console.log(e.code, e.channel, e.temporary));
const stop: () => void = hub.on('state', (state: State) => console.log(state));
stop();
hub.on('connected', ({ user, node, channels }) => console.log(user, node, channels.length));
hub.on('disconnected', ({ code, reason }) => console.log(code, reason));
hub.on('error', (e) => {
  if (e instanceof AuthError) console.log('stopped:', e.code, e.closeCode);
});
hub.connect().subscribe('user:jared');
const users: Promise<Record<string, number>> = hub.presence('group:G1');
void users;
const later: boolean = newer('2:e', g1.offset);
void later;
g1.unsubscribe();
hub.close();

// @ts-expect-error: getToken or userSig is required
new Hub('wss://x/ws', {});
// @ts-expect-error: no such event
g1.on('message', () => {});
// @ts-expect-error: the state is not a number
hub.on('state', (s: number) => s);

// The IM login instead of a token: the function the app gives the IM's SDK.
const im = new Hub('wss://hub.example.com/ws', {
  userSig: async () => ({ sdkAppID: 1400000000, userID: 'jared', userSig: await (await fetch('/usersig')).text() }),
  refreshAhead: 300_000,
});
const login: IMLogin = { sdkAppID: '1400000000', userID: 'jared', userSig: 'eJw…', expiresAt: Date.now() + 86_400_000 };
new Hub('wss://x/ws', { userSig: () => login });
im.subscribe('group:G1').on('removed', ({ reason }: { reason: RemovedReason }) => console.log(reason === 'destroyed'));
// @ts-expect-error: a token or an IM login, not both
new Hub('wss://x/ws', { getToken: () => 't', userSig: () => login });
// @ts-expect-error: an IM login names its user
new Hub('wss://x/ws', { userSig: () => ({ sdkAppID: 1400000000, userSig: 's' }) });
// @ts-expect-error: removed reports an object
im.subscribe('group:G1').on('removed', (reason: number) => reason);
