// HTTP JSON -> SDK model objects. The SDK's provider callbacks must return its own classes
// (spec §7: the app converts, the SDK does not), and every message id stays a string.

import WKSDK from 'wukongimjssdk';
import { Channel, Conversation, Message, MessageExtra, MessageStatus } from 'wukongimjssdk/lib/model';
import { Setting } from 'wukongimjssdk/lib/proto';

/** A decimal string for an id that may be a string, a number or a BigNumber (SENDACK). */
export function idString(v) {
  if (v === undefined || v === null || v === '') return '';
  if (typeof v === 'object' && typeof v.toFixed === 'function') return v.toFixed();
  return String(v);
}

function base64ToBytes(b64) {
  const bin = atob(b64 || '');
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

function utf8Bytes(text) {
  return new TextEncoder().encode(text);
}

/** An SDK MessageContent decoded from payload bytes (an unparsable payload -> type 0). */
export function decodeContent(bytes) {
  const sdk = WKSDK.shared();
  let type = 0;
  try {
    const obj = JSON.parse(new TextDecoder().decode(bytes));
    type = obj && Number.isInteger(obj.type) ? obj.type : 0;
  } catch (_err) {
    bytes = utf8Bytes(JSON.stringify({ type: 0, content: '[unreadable message]' }));
  }
  const content = sdk.getMessageContent(type);
  content.decode(bytes);
  return content;
}

/** The decoded payload object of a message (its `contentObj`), or {}. */
export function payloadOf(message) {
  const content = message && message.content;
  if (!content) return {};
  if (content.contentObj && typeof content.contentObj === 'object') return content.contentObj;
  try {
    return JSON.parse(new TextDecoder().decode(content.encode()));
  } catch (_err) {
    return {};
  }
}

/** A one-line text for lists and fallbacks. */
export function digestOf(message) {
  if (!message) return '';
  const extra = message.remoteExtra;
  if (extra && extra.revoke) return 'Message withdrawn';
  if (extra && extra.contentEdit && typeof extra.contentEdit.text === 'string') return extra.contentEdit.text;
  const payload = payloadOf(message);
  if (payload.type === 2) return '[Image]';
  if (payload.type === 8) return `[File] ${typeof payload.name === 'string' ? payload.name : ''}`.trim();
  if (typeof payload.content === 'string') return payload.content;
  if (message.content && typeof message.content.text === 'string') return message.content.text;
  return `[message type ${payload.type ?? '?'}]`;
}

/** WuKongIM MessageResp (spec §6) -> SDK Message. */
export function toMessage(resp) {
  const m = new Message();
  m.messageID = resp.message_idstr ? String(resp.message_idstr) : idString(resp.message_id);
  m.messageSeq = resp.message_seq || 0;
  m.clientMsgNo = resp.client_msg_no || '';
  m.fromUID = resp.from_uid || '';
  m.channel = new Channel(resp.channel_id, resp.channel_type);
  m.timestamp = resp.timestamp || 0;
  const header = resp.header || {};
  m.header.reddot = Boolean(header.red_dot);
  m.header.noPersist = Boolean(header.no_persist);
  m.header.syncOnce = Boolean(header.sync_once);
  m.header.dup = false;
  m.setting = Setting.fromUint8(resp.setting || 0);
  m.content = decodeContent(base64ToBytes(resp.payload));
  m.status = MessageStatus.Normal;
  if (resp.message_extra) m.remoteExtra = toMessageExtra(resp.message_extra, m.channel);
  // Reaction summaries (emoji, count, users, seq): adopted by reactions.js when cached.
  m.__summaries = Array.isArray(resp.reactions) ? resp.reactions : [];
  m.reactions = [];
  return m;
}

function asObject(v) {
  if (v === undefined || v === null || v === '') return null;
  if (typeof v === 'string') {
    try {
      return JSON.parse(v);
    } catch (_err) {
      return null;
    }
  }
  return typeof v === 'object' ? v : null;
}

/**
 * One row of POST /message/extra/sync -> SDK MessageExtra. The SDK class has no place for the
 * business status, so (spec §5 design note) `status` is copied into `extra.status` when the
 * extra has none; the row's per-message `version`, `updated_at` and `updated_by` ride along as
 * extra properties (`version` decides apply-if-newer, I6).
 */
export function toMessageExtra(row, channel) {
  const e = new MessageExtra();
  e.messageID = row.message_id_str ? String(row.message_id_str) : idString(row.message_id);
  e.channel = channel || new Channel(row.channel_id, row.channel_type);
  e.messageSeq = row.message_seq || 0;
  e.readed = Boolean(row.readed);
  e.readedCount = row.readed_count || 0;
  e.unreadCount = row.unread_count || 0;
  e.revoke = Boolean(row.revoke);
  e.revoker = row.revoker || undefined;
  e.editedAt = row.edited_at || 0;
  const edit = asObject(row.content_edit);
  if (edit) {
    const data = utf8Bytes(JSON.stringify(edit));
    e.contentEditData = data;
    e.contentEdit = decodeContent(data);
  }
  e.isEdit = e.editedAt > 0 || Boolean(edit);
  const extra = { ...(asObject(row.extra) || {}) };
  if (row.status !== undefined && row.status !== '' && extra.status === undefined) extra.status = row.status;
  e.extra = extra;
  e.extraVersion = row.extra_version || 0;
  e.status = row.status || extra.status || '';
  e.version = row.version || 0;
  e.updatedAt = row.updated_at || 0;
  e.updatedBy = row.updated_by || null;
  return e;
}

/** One entry of POST /conversation/sync -> SDK Conversation (last recent as lastMessage). */
export function toConversation(row) {
  const c = new Conversation();
  c.channel = new Channel(row.channel_id, row.channel_type);
  c.unread = row.unread || 0;
  c.timestamp = row.timestamp || 0;
  const recents = (row.recents || []).map(toMessage);
  if (recents.length > 0) {
    recents.sort((a, b) => a.messageSeq - b.messageSeq);
    c.lastMessage = recents[recents.length - 1];
  }
  c.extra = { lastMsgSeq: row.last_msg_seq || 0, readedToMsgSeq: row.readed_to_msg_seq || 0 };
  return c;
}
