// Type declarations of imhub.js, the browser client of imhub (docs/protocol.md#browser-client).

/** The connection's state, as the "state" event reports it. */
export type State = 'connecting' | 'connected' | 'disconnected' | 'closed';

/** Where a message event finds its message: the IM's sequence (groups), id, key (one-to-one) and random, as given. */
export interface MessageRef {
  seq?: number;
  id?: string;
  key?: string;
  random?: number;
}

/** One element of an IM MsgBody, passed through unchanged (TIMTextElem, TIMImageElem, …). */
export interface MsgElement {
  MsgType: string;
  MsgContent?: Record<string, unknown>;
}

/** The fields every event may carry (docs/protocol.md#events). Times are unix ms. */
interface EventBase {
  id: string;
  app: string;
  time?: number;
  received?: number;
  platform?: string;
  client_ip?: string;
  command?: string;
}

/** An event of a group: its id, kind, and the topic for a topic of a Community group. */
interface GroupEventBase extends EventBase {
  group_id: string;
  group_type?: string;
  topic_id?: string;
  operator?: string;
}

/** Events of no group say so, so that event.group_id reads on every event. */
interface NoGroup {
  group_id?: never;
  group_type?: never;
  topic_id?: never;
}

/** A one-to-one event: from the sender (or reader), to the peer. */
interface C2CEventBase extends EventBase, NoGroup {
  from: string;
  to: string;
}

/** What a group's or topic's info change set: only the fields given; an empty string was cleared. */
export interface InfoChanges {
  name?: string;
  introduction?: string;
  notification?: string;
  face_url?: string;
  custom?: Record<string, string>;
}

/** One message extension (a reaction, say) as an extension event gives it. */
export interface MessageExtension {
  key: string;
  value?: string;
  seq?: number;
}

export interface GroupMessageSent extends GroupEventBase {
  type: 'group.message.sent';
  from: string;
  messages: MessageRef[];
  body: MsgElement[];
  cloud_custom_data?: string;
  online_only?: boolean;
}

export interface GroupMessageRecalled extends GroupEventBase {
  type: 'group.message.recalled';
  messages: MessageRef[];
}

export interface C2CMessageSent extends C2CEventBase {
  type: 'c2c.message.sent';
  messages: MessageRef[];
  body: MsgElement[];
  cloud_custom_data?: string;
  online_only?: boolean;
  /** The recipient's unread count, whenever the IM gives it. */
  unread?: number;
  /** Set when the IM did not deliver the message (0, delivered, is left out). */
  send_result?: number;
  error_info?: string;
}

export interface C2CMessageRecalled extends C2CEventBase {
  type: 'c2c.message.recalled';
  messages: MessageRef[];
  unread?: number;
}

export interface UserStatus extends EventBase, NoGroup {
  type: 'user.status';
  /** The user whose status changed. */
  from: string;
  to?: never;
  status: 'login' | 'logout' | 'disconnect';
  reason?: string;
  /** The devices a login signed out. */
  kicked_devices?: { platform: string }[];
}

export interface GroupMemberJoined extends GroupEventBase {
  type: 'group.member.joined';
  members: string[];
  join_type?: string;
}

export interface GroupMemberLeft extends GroupEventBase {
  type: 'group.member.left';
  members: string[];
  exit_type?: 'Kicked' | 'Quit' | (string & {});
}

export interface C2CMessageRead extends C2CEventBase {
  type: 'c2c.message.read';
  /** Messages of the peer (to) up to this time, ms, are read by from. */
  last_read_time?: number;
  unread?: number;
}

export interface GroupMessageRead extends GroupEventBase {
  type: 'group.message.read';
  receipts: { seq: number; read?: number; unread?: number }[];
}

export interface GroupDestroyed extends GroupEventBase {
  type: 'group.destroyed';
}

export interface GroupInfoChanged extends GroupEventBase {
  type: 'group.info.changed';
  changes: InfoChanges;
}

/** A message edited after it was sent. time is the edit's: a later one wins, an older one arriving late is stale. */
export interface GroupMessageModified extends GroupEventBase {
  type: 'group.message.modified';
  from?: string;
  messages: MessageRef[];
  /** The message's new MsgBody. */
  body: MsgElement[];
  cloud_custom_data?: string;
}

/** As GroupMessageModified, for a one-to-one message. */
export interface C2CMessageModified extends C2CEventBase {
  type: 'c2c.message.modified';
  operator?: string;
  messages: MessageRef[];
  body: MsgElement[];
  cloud_custom_data?: string;
}

/** Extensions of a message set, deleted or all cleared; of two events on one message, the higher extension_seq wins. */
export interface GroupMessageExtension extends GroupEventBase {
  type: 'group.message.extension';
  messages: MessageRef[];
  operation: 'set' | 'delete' | 'clear';
  /** The extensions set or deleted; absent for clear. */
  extensions?: MessageExtension[];
  extension_seq: number;
}

/** As GroupMessageExtension, for a one-to-one message. */
export interface C2CMessageExtension extends C2CEventBase {
  type: 'c2c.message.extension';
  operator?: string;
  messages: MessageRef[];
  operation: 'set' | 'delete' | 'clear';
  /** The extensions set or deleted; absent for clear. */
  extensions?: MessageExtension[];
  extension_seq: number;
}

export interface GroupCreated extends GroupEventBase {
  type: 'group.created';
  owner: string;
  name?: string;
  /** The members it was created with. */
  members?: string[];
}

/** Members' role or name card changed: only the fields given. */
export interface GroupMemberChanged extends GroupEventBase {
  type: 'group.member.changed';
  members: string[];
  role?: string;
  name_card?: string;
}

export interface GroupOwnerChanged extends GroupEventBase {
  type: 'group.owner.changed';
  owner: string;
  previous_owner?: string;
}

export interface GroupTopicCreated extends GroupEventBase {
  type: 'group.topic.created';
  topic_id: string;
  name?: string;
}

export interface GroupTopicChanged extends GroupEventBase {
  type: 'group.topic.changed';
  topic_id: string;
  name?: string;
  changes?: InfoChanges;
}

export interface GroupTopicDestroyed extends GroupEventBase {
  type: 'group.topic.destroyed';
  topic_ids: string[];
}

export interface GroupAttrsChanged extends GroupEventBase {
  type: 'group.attrs.changed';
  operation: string;
  attrs: Record<string, string>;
}

/** Members of an audio-video group came online in it or went offline. */
export interface GroupMemberStatus extends GroupEventBase {
  type: 'group.member.status';
  members: string[];
  status: 'online' | 'offline';
  reason?: string;
}

/** Published by the app's backend through the server API (docs/protocol.md#server-api). */
export interface CustomEvent extends EventBase, NoGroup {
  type: 'custom';
  data: unknown;
}

/**
 * One normalized IM event (docs/protocol.md#events), told apart by type: `switch (event.type)` narrows it to that
 * type's own fields. A hub newer than this client may send types not listed here: keep a default branch.
 */
export type HubEvent =
  | GroupMessageSent
  | GroupMessageRecalled
  | C2CMessageSent
  | C2CMessageRecalled
  | UserStatus
  | GroupMemberJoined
  | GroupMemberLeft
  | C2CMessageRead
  | GroupMessageRead
  | GroupDestroyed
  | GroupInfoChanged
  | GroupMessageModified
  | C2CMessageModified
  | GroupMessageExtension
  | C2CMessageExtension
  | GroupCreated
  | GroupMemberChanged
  | GroupOwnerChanged
  | GroupTopicCreated
  | GroupTopicChanged
  | GroupTopicDestroyed
  | GroupAttrsChanged
  | GroupMemberStatus
  | CustomEvent;

/** The type of an event, as the hub names it. */
export type EventType = HubEvent['type'];

/** The event of one type: EventOf<'group.message.sent'> is GroupMessageSent. */
export type EventOf<T extends EventType> = Extract<HubEvent, { type: T }>;

/** A minimal Storage: sessionStorage or localStorage. */
export interface OffsetStore {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
}

/** The IM login a client connects with instead of a JWT, for an app whose IM secret key the hub holds (docs/protocol.md#credentials). */
export interface IMLogin {
  /** The SdkAppid, as the IM's own SDK takes it. */
  sdkAppID: number | string;
  userID: string;
  /** The UserSig the user logs in to the IM with. */
  userSig: string;
  /** When the UserSig expires, ms by the local clock (Date.now()); without it, read from the UserSig itself (TLS.time + TLS.expire). */
  expiresAt?: number;
}

/** How the client gets its credential: exactly one of getToken and userSig. */
export type Credentials =
  | {
      /** Resolves to a JWT for the hub. Called to connect, when a token is refused, and ahead of its exp; concurrent calls share one. One that does not answer within timeout counts as failed (an error event, then a backoff). */
      getToken: () => Promise<string> | string;
      userSig?: never;
    }
  | {
      /** Resolves to the user's IM login (the same function the app gives the IM's own SDK). Called as getToken is: to connect, when the hub refuses the UserSig, and ahead of its end, when the fresh one is handed over in band. */
      userSig: () => Promise<IMLogin> | IMLogin;
      getToken?: never;
    };

/** The options of a Hub: its credential (Credentials) and these. */
export interface ConnectionOptions {
  /** The shortest wait before reconnecting, ms (500). */
  minDelay?: number;
  /** The longest wait before reconnecting, ms (20000). */
  maxDelay?: number;
  /** The hub's -ping-interval, ms (25000): a connection silent this long is pinged. */
  pingInterval?: number;
  /** How long getToken or userSig, or the hub answering a connect, a ping or a request, may take, ms (10000). */
  timeout?: number;
  /** The hub's -max-frame, bytes (65536): a larger request is refused with HubError too_large, unsent. */
  maxFrame?: number;
  /** How long before the credential's end it is refreshed, ms (60000; half a shorter life). The life is exp - iat for a token, TLS.expire for a UserSig (exp, or expiresAt, less the local clock without one), counted from when the credential came, so a skewed clock does not matter; without iat, at least 5 s apart. */
  refreshAhead?: number;
  /** Where offsets are kept across page reloads, such as sessionStorage; per app and user, so a Storage may be shared. */
  persist?: OffsetStore;
  /** The prefix of the keys offsets are kept under in persist ("imhub:" + url); the key is persistKey + ":" + app + ":" + user. */
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

export type HubOptions = Credentials & ConnectionOptions;

/**
 * An error the hub or the client reports; code says which: the error codes of docs/protocol.md#frames, or the client's own:
 * closed (a request of a closed client, or pending at close), too_large (a request over maxFrame),
 * refused (a request pending when the hub closed with 1007, 1008 or 1009: not sent again), token (getToken or userSig failed),
 * no_token (getToken gave no token, or userSig no { sdkAppID, userID, userSig }).
 */
export class HubError extends Error {
  code: string;
  channel?: string;
  /** A subscription refused for now; it is asked for again by itself. */
  temporary?: boolean;
  /** The close code that ended the connection (or refused a request), when one did. */
  closeCode?: number;
}
/**
 * A credential the hub refused and a fresh one did not fix (code token_invalid, token_expired, for a UserSig too), or a
 * disconnect by the server API (code disconnected, 4010): the client has stopped for good. After 4010 it does not get
 * a fresh credential nor reconnect; the app decides what to do (connect() starts it again).
 */
export class AuthError extends HubError {}
/** The hub did not answer a request, or getToken or userSig gave nothing, within timeout (code timeout). */
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

/** Why the hub ended a subscription on its own: the user left the group (removed), or it was disbanded (destroyed). */
export type RemovedReason = 'removed' | 'destroyed' | (string & {});

export interface SubscriptionEvents {
  event: (event: HubEvent, offset: string) => void;
  gap: (info: { offset: string }) => void;
  error: (error: HubError) => void;
  subscribed: (info: SubscribedInfo) => void;
  /** The hub ended the subscription (after the event that says why): it is dropped and not asked for again, even after a reconnect. Subscribing to the channel anew is the app's choice; the hub refuses it (forbidden) while the reason holds. */
  removed: (info: { reason: RemovedReason }) => void;
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

/** How a new subscription starts. */
export interface SubscribeOptions {
  /**
   * An offset of the channel: the events after it that history still holds are delivered first, then live ones (a gap
   * when history no longer reaches back to it). An offset kept in persist comes first; without either, live events only.
   */
  since?: string;
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
  /** The channel's subscription, made at the first call; later calls return it and ignore options. */
  subscribe(channel: string, options?: SubscribeOptions): Subscription;
  subscriptions(): Subscription[];
  /** Who is connected to channel, across all nodes: user id -> connections. Sent once connected (made before connect, it waits at most timeout); a closed client refuses it at once (HubError closed). */
  presence(channel: string): Promise<Record<string, number>>;
}
