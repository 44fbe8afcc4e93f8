// Compiled with tsc --noEmit against imhub.d.ts: switch (event.type) narrows
// an event to its type's own fields, and a field misnamed or read on the
// wrong type is an error (each @ts-expect-error below fails the check if it
// stops being one).
import { Hub, type EventOf, type EventType, type HubEvent, type MessageRef, type MsgElement } from '../imhub.js';

const hub = new Hub('wss://hub.example.com/ws', { getToken: () => 't' });
const firehose = hub.subscribe('app', { since: '0:e' });

const text = (body: MsgElement[]): string => body.map((el) => String(el.MsgContent?.Text ?? el.MsgType)).join(' ');
const ref = (ms: MessageRef[]): string => ms.map((m) => m.seq ?? m.key ?? m.id ?? '').join(',');

// describe reads every type's own fields; it compiles only while each is
// named as the declarations name it.
function describe(e: HubEvent): string {
  switch (e.type) {
    case 'group.message.sent':
      // @ts-expect-error: a group message has no recipient
      void e.to;
      return `${e.group_id}/${e.topic_id ?? ''} ${e.from}: ${text(e.body)} ${ref(e.messages)} ${e.online_only === true} ${e.cloud_custom_data ?? ''}`;
    case 'group.message.recalled':
      // @ts-expect-error: a recall carries no body
      void e.body;
      return `${e.operator ?? ''} recalled ${ref(e.messages)} in ${e.group_id}`;
    case 'c2c.message.sent': {
      // @ts-expect-error: a one-to-one message is of no group
      const g: string = e.group_id;
      void g;
      const failed: number | undefined = e.send_result;
      return `${e.from} → ${e.to}: ${text(e.body)} unread ${e.unread ?? '-'} ${failed ?? 0} ${e.error_info ?? ''}`;
    }
    case 'c2c.message.recalled':
      // @ts-expect-error: the field is unread, not unread_count
      void e.unread_count;
      return `${e.from} withdrew ${ref(e.messages)} to ${e.to}, ${e.unread ?? 0} unread`;
    case 'user.status': {
      // @ts-expect-error: status is login, logout or disconnect
      const wrong: typeof e.status = 'online';
      void wrong;
      return `${e.from} ${e.status} ${e.reason ?? ''} ${(e.kicked_devices ?? []).map((d) => d.platform).join(',')}`;
    }
    case 'group.member.joined':
      // @ts-expect-error: members are user ids
      void e.members[0].user;
      return `${e.members.join(',')} joined ${e.group_id} (${e.join_type ?? ''}, ${e.operator ?? ''})`;
    case 'group.member.left':
      // @ts-expect-error: the field is exit_type
      void e.exitType;
      return `${e.members.join(',')} left ${e.group_id}: ${e.exit_type === 'Kicked' ? 'kicked' : 'quit'}`;
    case 'c2c.message.read':
      // @ts-expect-error: the field is last_read_time
      void e.read_time;
      return `${e.from} read ${e.to} up to ${e.last_read_time ?? 0}`;
    case 'group.message.read':
      // @ts-expect-error: receipts are in receipts
      void e.messages;
      return e.receipts.map((r) => `#${r.seq} ${r.read ?? 0}/${r.unread ?? 0}`).join(' ');
    case 'group.destroyed':
      // @ts-expect-error: a destroyed group has no owner field
      void e.owner;
      return `${e.group_id} destroyed by ${e.operator ?? ''}`;
    case 'group.info.changed':
      // @ts-expect-error: the changes are under changes
      void e.name;
      return `${e.group_id}: ${e.changes.name ?? ''} ${e.changes.face_url ?? ''} ${Object.keys(e.changes.custom ?? {}).join(',')}`;
    case 'group.message.modified':
      // @ts-expect-error: the new body is body
      void e.new_body;
      return `${ref(e.messages)} in ${e.group_id} now ${text(e.body)} at ${e.time ?? 0} by ${e.operator ?? ''}`;
    case 'c2c.message.modified':
      // @ts-expect-error: a one-to-one edit is of no topic
      void e.topic_id.length;
      return `${ref(e.messages)} ${e.from} → ${e.to} now ${text(e.body)} ${e.cloud_custom_data ?? ''}`;
    case 'group.message.extension': {
      // @ts-expect-error: the operation is set, delete or clear
      const op: typeof e.operation = 'add';
      void op;
      return `${ref(e.messages)} ${e.operation} ${(e.extensions ?? []).map((x) => `${x.key}=${x.value ?? ''}@${x.seq ?? 0}`).join(',')} #${e.extension_seq}`;
    }
    case 'c2c.message.extension':
      // @ts-expect-error: the field is extension_seq
      void e.seq;
      return `${e.from} → ${e.to} ${e.operation} ${e.extensions?.length ?? 0} #${e.extension_seq}`;
    case 'group.created':
      // @ts-expect-error: the field is owner
      void e.owner_account;
      return `${e.owner} created ${e.group_id} “${e.name ?? ''}” (${e.group_type ?? ''}) with ${(e.members ?? []).join(',')}`;
    case 'group.member.changed':
      // @ts-expect-error: role is top-level, members are ids
      void e.members[0].role;
      return `${e.members.join(',')} in ${e.group_id}: ${e.role ?? ''} ${e.name_card ?? ''}`;
    case 'group.owner.changed':
      // @ts-expect-error: the field is previous_owner
      void e.old_owner;
      return `${e.group_id} owner ${e.previous_owner ?? ''} → ${e.owner}`;
    case 'group.topic.created':
      // @ts-expect-error: one topic, topic_id
      void e.topic_ids;
      return `topic ${e.topic_id} “${e.name ?? ''}” in ${e.group_id}`;
    case 'group.topic.changed':
      // @ts-expect-error: the changes are under changes
      void e.introduction;
      return `topic ${e.topic_id}: ${e.name ?? ''} ${e.changes?.notification ?? ''}`;
    case 'group.topic.destroyed':
      // @ts-expect-error: several topics, topic_ids
      void e.topic_id.length;
      return `topics ${e.topic_ids.join(',')} of ${e.group_id} destroyed`;
    case 'group.attrs.changed': {
      // @ts-expect-error: attrs map strings to strings
      const n: number = e.attrs.level;
      void n;
      return `${e.group_id} attrs ${e.operation}: ${Object.entries(e.attrs).map(([k, v]) => `${k}=${v}`).join(',')}`;
    }
    case 'group.member.status': {
      // @ts-expect-error: status is online or offline
      const s: typeof e.status = 'login';
      void s;
      return `${e.members.join(',')} ${e.status} in ${e.group_id} ${e.reason ?? ''}`;
    }
    case 'custom':
      // @ts-expect-error: custom data is not an IM body
      void e.body;
      return JSON.stringify(e.data);
    default: {
      // Every type above is handled: a type added to HubEvent without a
      // case here fails to compile.
      const none: never = e;
      return String((none as { type?: string }).type);
    }
  }
}

firehose.on('event', (e, offset) => console.log(offset, describe(e)));

// EventOf names one type's event; EventType is the set of names.
const edit: EventOf<'group.message.modified'> = {
  id: 'x', app: '1400000000', type: 'group.message.modified', group_id: 'G1', messages: [{ seq: 1 }], body: [], time: 2,
};
const kind: EventType = edit.type;
void kind;
// @ts-expect-error: no such type
const bogus: EventType = 'group.message.edited';
void bogus;
// @ts-expect-error: an extension event needs its extension_seq
const partial: EventOf<'group.message.extension'> = { id: 'x', app: 'a', type: 'group.message.extension', group_id: 'G1', messages: [], operation: 'clear' };
void partial;
// @ts-expect-error: since is an offset string
hub.subscribe('app', { since: 3 });
