// Type declarations of imhub.js, the browser client of imhub (PROTOCOL §7).

/** The connection's state, as the "state" event reports it. */
export type State = 'connecting' | 'connected' | 'disconnected' | 'closed';

/** One normalized IM event (PROTOCOL §2); a real event carries only its own fields. */
export interface HubEvent {
  id: string;
  type: string;
  app: string;
  time?: number;
  received?: number;
  group_id?: string;
  group_type?: string;
  topic_id?: string;
  from?: string;
  to?: string;
  operator?: string;
  messages?: { seq?: number; id?: string; key?: string; random?: number }[];
  body?: unknown[];
  cloud_custom_data?: string;
  online_only?: boolean;
  unread?: number;
  send_result?: number;
  error_info?: string;
  platform?: string;
  client_ip?: string;
  command?: string;
  data?: unknown;
  [field: string]: unknown;
}

/** A minimal Storage: sessionStorage or localStorage. */
export interface OffsetStore {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
}

export interface HubOptions {
  /** Resolves to a JWT for the hub. Called to connect, when a token is refused, and ahead of its exp; concurrent calls share one. */
  getToken: () => Promise<string> | string;
  /** The shortest wait before reconnecting, ms (500). */
  minDelay?: number;
  /** The longest wait before reconnecting, ms (20000). */
  maxDelay?: number;
  /** The hub's -ping-interval, ms (25000): a connection silent this long is pinged. */
  pingInterval?: number;
  /** How long the hub may take to answer a connect, a ping or a request, ms (10000). */
  timeout?: number;
  /** How long before exp a token is refreshed, ms (60000; half a shorter token's life). */
  refreshAhead?: number;
  /** Where offsets are kept across page reloads, such as sessionStorage. */
  persist?: OffsetStore;
  /** The key offsets are kept under in persist ("imhub:" + url). */
  persistKey?: string;
  /** For tests: the WebSocket constructor (globalThis.WebSocket when the connection is made). */
  WebSocket?: new (url: string) => WebSocket;
  /** For tests: the clock, ms. */
  now?: () => number;
  /** For tests: a number in [0, 1), for the backoff's jitter. */
  random?: () => number;
  /** For tests: timers. */
  setTimeout?: (fn: () => void, ms: number) => unknown;
  clearTimeout?: (timer: unknown) => void;
  /** For tests: where online and pagehide are listened to (window). */
  window?: EventTarget;
  /** For tests: where visibilitychange is listened to (document). */
  document?: EventTarget & { visibilityState: string };
}

/** An error the hub or the client reports; code says which (PROTOCOL §3 error codes, or the client's own). */
export class HubError extends Error {
  code: string;
  channel?: string;
  /** A subscription refused for now; it is asked for again by itself. */
  temporary?: boolean;
  /** The close code that ended the connection, when one did. */
  closeCode?: number;
}
/** A token the hub refused and a fresh one did not fix (code token_invalid, token_expired), or a disconnect by the server API (code disconnected, 4010): the client has stopped. */
export class AuthError extends HubError {}
/** The hub did not answer a request in time (code timeout). */
export class TimeoutError extends HubError {}

/** newer reports whether offset a comes after offset b on one channel. */
export function newer(a: string, b?: string): boolean;

export interface SubscribedInfo {
  offset: string;
  /** Present when the subscription continued from an offset: false means a gap. */
  recovered?: boolean;
}

export interface ConnectedInfo {
  user: string;
  app: string;
  node: string;
  channels: string[];
}

export interface SubscriptionEvents {
  event: (event: HubEvent, offset: string) => void;
  gap: (info: { offset: string }) => void;
  error: (error: HubError) => void;
  subscribed: (info: SubscribedInfo) => void;
}

export interface HubEvents {
  state: (state: State) => void;
  connected: (info: ConnectedInfo) => void;
  disconnected: (info: { code: number; reason: string }) => void;
  error: (error: HubError | Error) => void;
}

/** One channel's events, each once, in order, across reconnects. */
export class Subscription {
  readonly hub: Hub;
  readonly channel: string;
  /** The offset of the last event delivered, or where the stream was joined. */
  readonly offset: string | undefined;
  on<K extends keyof SubscriptionEvents>(type: K, fn: SubscriptionEvents[K]): () => void;
  off<K extends keyof SubscriptionEvents>(type: K, fn: SubscriptionEvents[K]): void;
  unsubscribe(): void;
}

/** A connection to one hub, kept open until close. */
export class Hub {
  constructor(url: string, options: HubOptions);
  readonly state: State;
  /** Set by the connected frame. */
  readonly user?: string;
  readonly app?: string;
  readonly node?: string;
  /** Why the client stopped by itself, when it did. */
  readonly error?: AuthError;
  on<K extends keyof HubEvents>(type: K, fn: HubEvents[K]): () => void;
  off<K extends keyof HubEvents>(type: K, fn: HubEvents[K]): void;
  connect(): this;
  close(): void;
  subscribe(channel: string): Subscription;
  subscriptions(): Subscription[];
  /** Who is connected to channel, across all nodes: user id -> connections. */
  presence(channel: string): Promise<Record<string, number>>;
}
