'use strict';
// Magpie interop driver: one wukongimjssdk@1.0.4 client per worker thread of the host process
// (host.js). A worker has its own JS realm, module registry and event loop, so the SDK's
// singletons (WKSDK.shared()) belong to this client alone; many clients share one Node process.
//
// workerData: the client's config. Config keys: addr (ws://host:port, required), uid, token,
// api (HTTP base URL, needed only for sync_extras), device_flag (default 1 = web),
// heartbeat_interval (ms, SDK default 60000), proto_version (default 2), debug (default false),
// http_timeout_ms (default 30000).
//
// Commands arrive as messages from the host; every event goes back as one JSON text message.
// stdout/stderr (SDK log noise and driver diagnostics) go to the client's log file (the host
// pipes them). The protocol is documented in README.md.
//
// This file is bundled by esbuild (npm run build) into dist/driver.cjs. wukongimjssdk 1.0.4 ships
// ES-module sources without file extensions, so it cannot be loaded by Node directly.

// Must come first: installs globalThis.WebSocket and moves console.* to stderr.
require('./ws_shim');

const { parentPort, workerData, threadId } = require('node:worker_threads');

if (!parentPort) {
  process.stderr.write('driver: run me through host.js (one worker thread per SDK client)\n');
  process.exit(2);
}

const sdkModule = require('wukongimjssdk');
const model = require('wukongimjssdk/lib/model');
const taskModule = require('wukongimjssdk/lib/task');

const WKSDK = sdkModule.WKSDK || sdkModule.default;
const { MessageExtra, MessageStatus, MediaMessageContent, Reminder, Message } = model;
const { MessageTask, TaskStatus } = taskModule;
const SDK_VERSION = '1.0.4';

// ---------------------------------------------------------------------------------------------
// Output

function emit(event) {
  parentPort.postMessage(JSON.stringify({ ...event, ts: Date.now() }, jsonReplacer));
}

function jsonReplacer(_key, value) {
  if (typeof value === 'bigint') return value.toString();
  if (value instanceof Uint8Array) return Buffer.from(value).toString('base64');
  return value;
}

function errorText(err) {
  if (err instanceof Error) return err.stack || `${err.name}: ${err.message}`;
  try {
    return typeof err === 'string' ? err : JSON.stringify(err);
  } catch (_e) {
    return String(err);
  }
}

function emitError(err, extra) {
  const text = errorText(err);
  process.stderr.write(`[driver] error: ${text}\n`);
  emit({ event: 'error', error: text, ...extra });
}

// Never die silently: the SDK handles RECV/SENDACK in async functions (a payload that is not JSON
// rejects a promise) and its heartbeat timer can throw when it pings a socket that is still
// CONNECTING. Report these as events and keep running, like a browser tab would.
process.on('unhandledRejection', (reason) => emitError(reason, { source: 'unhandledRejection' }));
process.on('uncaughtException', (err) => emitError(err, { source: 'uncaughtException' }));

// ---------------------------------------------------------------------------------------------
// Config

function loadConfig() {
  const cfg = workerData;
  if (!cfg || typeof cfg !== 'object') throw new Error('driver: workerData must be the config');
  if (!cfg.addr) throw new Error('driver: config.addr (ws://host:port) is required');
  return cfg;
}

let cfg;
try {
  cfg = loadConfig();
} catch (err) {
  emitError(err, { source: 'config' });
  process.exit(2);
}

const sdk = WKSDK.shared();
const config = sdk.config;
config.addr = cfg.addr;
config.uid = cfg.uid || '';
config.token = cfg.token || '';
config.deviceFlag = cfg.device_flag === undefined || cfg.device_flag === null ? 1 : cfg.device_flag;
config.protoVersion = cfg.proto_version || 2;
config.debug = Boolean(cfg.debug);
if (cfg.heartbeat_interval) config.heartbeatInterval = Number(cfg.heartbeat_interval);
const apiBase = cfg.api ? String(cfg.api).replace(/\/+$/, '') : '';

// ---------------------------------------------------------------------------------------------
// Conversions

function bigToString(v) {
  if (v === undefined || v === null) return null;
  if (typeof v === 'object' && typeof v.toFixed === 'function') return v.toFixed(); // BigNumber
  return String(v);
}

function contentJSON(content) {
  if (!content) return null;
  if (content.contentObj !== undefined) return content.contentObj;
  try {
    return JSON.parse(Buffer.from(content.encode()).toString('utf8'));
  } catch (_e) {
    return null;
  }
}

function messageFields(message) {
  const header = message.header || {};
  return {
    message_id: bigToString(message.messageID),
    message_seq: message.messageSeq === undefined ? null : message.messageSeq,
    client_msg_no: message.clientMsgNo === undefined ? null : message.clientMsgNo,
    client_seq: message.clientSeq === undefined ? null : message.clientSeq,
    from_uid: message.fromUID === undefined ? null : message.fromUID,
    channel_id: message.channel ? message.channel.channelID : null,
    channel_type: message.channel ? message.channel.channelType : null,
    timestamp: message.timestamp === undefined ? null : message.timestamp,
    content_type: message.content ? message.content.contentType : null,
    content: contentJSON(message.content),
    header: {
      red_dot: Boolean(header.reddot),
      no_persist: Boolean(header.noPersist),
      sync_once: Boolean(header.syncOnce),
      dup: Boolean(header.dup),
    },
    setting: message.setting && message.setting.toUint8 ? message.setting.toUint8() : 0,
  };
}

function asObject(v) {
  if (v === undefined || v === null || v === '') return null;
  if (typeof v === 'string') {
    try {
      return JSON.parse(v);
    } catch (_e) {
      return null;
    }
  }
  return typeof v === 'object' ? v : null;
}

// One row of POST /message/extra/sync (TSDD-style) -> SDK MessageExtra. The SDK does not convert
// anything itself; this mirrors what an app (e.g. the WuKongIM demo's Convert.toMessageExtra) does.
function toMessageExtra(row, channel) {
  const e = new MessageExtra();
  if (row.message_id_str !== undefined && row.message_id_str !== null && row.message_id_str !== '') {
    e.messageID = String(row.message_id_str);
  } else {
    e.messageID = row.message_id === undefined || row.message_id === null ? '' : String(row.message_id);
  }
  e.channel = channel;
  e.messageSeq = row.message_seq || 0;
  e.readed = Boolean(row.readed);
  e.readedCount = row.readed_count || 0;
  e.unreadCount = row.unread_count || 0;
  if (row.readed_at) e.readedAt = new Date(Number(row.readed_at) * 1000);
  e.revoke = Boolean(row.revoke);
  e.revoker = row.revoker || undefined;
  e.editedAt = row.edited_at || 0;
  const edit = asObject(row.content_edit);
  if (edit) {
    const data = Uint8Array.from(Buffer.from(JSON.stringify(edit), 'utf8'));
    const content = sdk.getMessageContent(edit.type || 0);
    content.decode(data);
    e.contentEditData = data;
    e.contentEdit = content;
  }
  e.isEdit = e.editedAt > 0 || Boolean(edit);
  e.isMutualDeleted = Boolean(row.is_mutual_deleted);
  const extra = { ...(asObject(row.extra) || {}) };
  if (row.status !== undefined && extra.status === undefined) extra.status = row.status;
  e.extra = extra;
  e.extraVersion = row.extra_version || 0;
  return e;
}

function extraSummary(e) {
  return {
    message_id: e.messageID,
    message_seq: e.messageSeq,
    channel_id: e.channel ? e.channel.channelID : null,
    channel_type: e.channel ? e.channel.channelType : null,
    extra_version: e.extraVersion,
    extra: e.extra,
    readed: e.readed,
    readed_count: e.readedCount,
    unread_count: e.unreadCount,
    revoke: e.revoke,
    revoker: e.revoker === undefined ? null : e.revoker,
    edited_at: e.editedAt,
    is_edit: e.isEdit,
    content_edit: e.contentEdit ? contentJSON(e.contentEdit) : null,
    is_mutual_deleted: Boolean(e.isMutualDeleted),
  };
}

// ---------------------------------------------------------------------------------------------
// Provider: message extra sync over HTTP

const rawRowsByResult = new WeakMap();
const HTTP_TIMEOUT_MS = Number(cfg.http_timeout_ms || 30000);

config.provider.syncMessageExtraCallback = async (channel, extraVersion, limit) => {
  if (!apiBase) throw new Error('sync_extras: no api base URL in the driver config');
  const url = `${apiBase}/message/extra/sync`;
  const res = await fetch(url, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      authorization: `Bearer ${config.token}`,
    },
    signal: AbortSignal.timeout(HTTP_TIMEOUT_MS),
    body: JSON.stringify({
      channel_id: channel.channelID,
      channel_type: channel.channelType,
      extra_version: extraVersion,
      limit,
    }),
  });
  const text = await res.text();
  if (!res.ok) {
    throw new Error(`POST ${url} -> HTTP ${res.status}: ${text.slice(0, 500)}`);
  }
  const body = JSON.parse(text);
  let rows = null;
  if (Array.isArray(body)) rows = body;
  else if (body && Array.isArray(body.data)) rows = body.data;
  if (!rows) throw new Error(`POST ${url}: expected a JSON array of rows, got ${text.slice(0, 500)}`);
  const extras = rows.map((row) => toMessageExtra(row, channel));
  rawRowsByResult.set(extras, { rows, text });
  return extras;
};

// ---------------------------------------------------------------------------------------------
// Providers of the conversation features (docs/conversation.md): receipts, reminders, uploads

async function api(path, body, init) {
  if (!apiBase) throw new Error(`${path}: no api base URL in the driver config`);
  const res = await fetch(`${apiBase}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${config.token}` },
    signal: AbortSignal.timeout(HTTP_TIMEOUT_MS),
    body: JSON.stringify(body),
    ...(init || {}),
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`POST ${path} -> HTTP ${res.status}: ${text.slice(0, 500)}`);
  return JSON.parse(text);
}

// The receipt manager flushes the messages the app added (every receiptFlushInterval) here.
config.provider.messageReadedCallback = async (channel, messages) => {
  const ids = messages.map((m) => bigToString(m.messageID));
  const body = { channel_id: channel.channelID, channel_type: channel.channelType, message_ids: ids };
  try {
    const answer = await api('/message/readed', body);
    emit({ event: 'readed', channel_id: channel.channelID, message_ids: ids, answer });
  } catch (err) {
    emit({ event: 'readed', channel_id: channel.channelID, message_ids: ids, error: errorText(err) });
    throw err;
  }
};

function toReminder(row) {
  const r = new Reminder();
  r.channel = sdk.newChannel(String(row.channel_id), Number(row.channel_type));
  r.reminderID = Number(row.id);
  r.messageID = String(row.message_id);
  r.messageSeq = Number(row.message_seq || 0);
  r.reminderType = Number(row.reminder_type);
  r.text = row.text;
  r.data = row.data;
  r.isLocate = Boolean(row.is_locate);
  r.version = Number(row.version);
  r.done = Boolean(row.done);
  return r;
}

config.provider.syncRemindersCallback = async (version) => {
  const rows = await api('/message/reminder/sync', { version, limit: 1000 });
  return rows.map(toReminder);
};

config.provider.reminderDoneCallback = async (ids) => {
  await api('/message/reminder/done', { ids });
};

// An image: a media content the upload task fills in (url, size, dimensions) before sending.
class ImageContent extends MediaMessageContent {
  get contentType() {
    return 2;
  }
  encodeJSON() {
    return { url: this.remoteUrl || '', width: this.width || 0, height: this.height || 0, size: this.size || 0, name: this.name || '' };
  }
  decodeJSON(content) {
    this.remoteUrl = content.url;
    this.width = content.width;
    this.height = content.height;
    this.size = content.size;
    this.name = content.name;
  }
}
sdk.register(2, () => new ImageContent());

// Uploads message.content.file (bytes) to /file/upload, then lets the SDK send the message.
class UploadTask extends MessageTask {
  constructor(message) {
    super(message);
    this.id = message.clientMsgNo;
  }
  async start() {
    const content = this.message.content;
    const channel = this.message.channel;
    const query = new URLSearchParams({
      channel_id: channel.channelID,
      channel_type: String(channel.channelType),
      name: content.name || 'file',
    });
    try {
      this.status = TaskStatus.processing;
      const res = await fetch(`${apiBase}/file/upload?${query}`, {
        method: 'POST',
        headers: { authorization: `Bearer ${config.token}` },
        body: content.file,
        signal: AbortSignal.timeout(HTTP_TIMEOUT_MS),
      });
      const text = await res.text();
      if (!res.ok) throw new Error(`upload -> HTTP ${res.status}: ${text.slice(0, 300)}`);
      const data = JSON.parse(text).data;
      content.remoteUrl = data.url;
      content.width = data.width;
      content.height = data.height;
      content.size = data.size;
      emit({ event: 'uploaded', client_msg_no: this.message.clientMsgNo, file: data });
      this.status = TaskStatus.success;
    } catch (err) {
      emit({ event: 'uploaded', client_msg_no: this.message.clientMsgNo, error: errorText(err) });
      this.status = TaskStatus.fail;
    }
    this.update();
  }
}

config.provider.messageUploadTaskCallback = (message) => new UploadTask(message);

// ---------------------------------------------------------------------------------------------
// Listeners

sdk.connectManager.addConnectStatusListener((status, reasonCode) => {
  emit({ event: 'status', status, reason: reasonCode === undefined ? null : reasonCode });
});

const received = new Map(); // message id -> the SDK's Message (for mark_read)

sdk.chatManager.addMessageListener((message) => {
  // The SDK also calls message listeners for the user's own outgoing message right after
  // chatManager.send (status Wait, no message_id yet). Keep "message" for received RECVs only.
  const local = message.status === MessageStatus.Wait;
  if (!local) received.set(bigToString(message.messageID), message);
  emit({ event: local ? 'local_message' : 'message', ...messageFields(message) });
});

sdk.chatManager.addCMDListener((message) => {
  const content = message.content || {};
  emit({
    event: 'cmd',
    cmd: content.cmd === undefined ? null : content.cmd,
    param: content.param === undefined ? null : content.param,
    ...messageFields(message),
  });
});

sdk.chatManager.addMessageStatusListener((ack) => {
  emit({
    event: 'sendack',
    client_seq: ack.clientSeq,
    message_id: bigToString(ack.messageID),
    message_seq: ack.messageSeq,
    reason: ack.reasonCode,
  });
});

// ---------------------------------------------------------------------------------------------
// Commands

function rawSocket() {
  const wk = sdk.connectManager.ws; // WKWebsocket wrapper (lib/websocket.js)
  return wk && wk.ws ? wk.ws : null; // the `ws` WebSocket instance it wraps
}

function reply(cmd, event) {
  emit(cmd.id === undefined ? event : { ...event, id: cmd.id });
}

async function cmdSend(cmd) {
  const chat = sdk.chatManager;
  const channelType = cmd.channel_type === undefined ? 1 : Number(cmd.channel_type);
  const content = sdk.newMessageText(cmd.text === undefined ? '' : String(cmd.text));
  const channel = sdk.newChannel(String(cmd.channel_id), channelType);
  // chatManager.send() runs synchronously up to the socket write: it allocates client_seq and
  // puts the SEND packet into its sending queue before writing. If the write throws (socket still
  // CONNECTING), the promise rejects but the packet stays queued and is flushed after CONNACK.
  const pending = chat.send(content, channel);
  const clientSeq = chat.clientSeq;
  const packet = chat.sendingQueues.get(clientSeq);
  try {
    const message = await pending;
    reply(cmd, {
      event: 'sent',
      client_seq: message.clientSeq,
      client_msg_no: message.clientMsgNo,
    });
  } catch (err) {
    reply(cmd, {
      event: 'sent',
      client_seq: clientSeq,
      client_msg_no: packet ? packet.clientMsgNo : null,
      send_error: errorText(err),
    });
  }
}

async function cmdSyncExtras(cmd) {
  const channel = sdk.newChannel(String(cmd.channel_id), Number(cmd.channel_type));
  const extraVersion = Number(cmd.extra_version || 0);
  const extras = await sdk.chatManager.syncMessageExtras(channel, extraVersion);
  const raw = rawRowsByResult.get(extras) || { rows: [], text: '' };
  reply(cmd, {
    event: 'extras',
    channel_id: channel.channelID,
    channel_type: channel.channelType,
    extra_version: extraVersion,
    rows: raw.rows,
    raw_body: raw.text,
    extras: extras.map(extraSummary),
  });
}

// The app marks messages it showed: the receipt manager reports them (messageReadedCallback).
function cmdMarkRead(cmd) {
  const channel = sdk.newChannel(String(cmd.channel_id), Number(cmd.channel_type));
  const messages = cmd.message_ids.map((id) => {
    const known = received.get(String(id));
    if (known) return known;
    const m = new Message();
    m.messageID = String(id);
    m.clientMsgNo = `read-${id}`;
    m.remoteExtra = new MessageExtra();
    return m;
  });
  sdk.receiptManager.addReceiptMessages(channel, messages);
  reply(cmd, { event: 'done', cmd: cmd.cmd, count: messages.length });
}

function reminderSummary(r) {
  return {
    id: r.reminderID,
    channel_id: r.channel.channelID,
    channel_type: r.channel.channelType,
    message_id: r.messageID,
    message_seq: r.messageSeq,
    reminder_type: r.reminderType,
    text: r.text,
    version: r.version,
    done: r.done,
  };
}

async function cmdSyncReminders(cmd) {
  await sdk.reminderManager.sync();
  reply(cmd, { event: 'reminders', reminders: sdk.reminderManager.reminders.map(reminderSummary) });
}

async function cmdRemindersDone(cmd) {
  await sdk.reminderManager.done(cmd.ids);
  reply(cmd, { event: 'reminders', reminders: sdk.reminderManager.reminders.map(reminderSummary) });
}

async function cmdSendImage(cmd) {
  const content = new ImageContent();
  content.file = Buffer.from(String(cmd.data_b64), 'base64');
  content.name = cmd.name || 'image.png';
  const channel = sdk.newChannel(String(cmd.channel_id), Number(cmd.channel_type));
  const message = await sdk.chatManager.send(content, channel);
  reply(cmd, { event: 'sent', client_seq: message.clientSeq, client_msg_no: message.clientMsgNo });
}

function cmdKillSocket(cmd) {
  const ws = rawSocket();
  if (!ws) throw new Error('kill_socket: the SDK has no socket (never connected?)');
  const readyState = ws.readyState;
  if (cmd.mode === 'close') {
    // Clean close handshake (code 1000) that bypasses WKWebsocket.close(), so the SDK still
    // sees an unexpected close and reconnects.
    ws.close(1000, 'kill_socket');
  } else {
    // Default: drop the TCP connection without a close frame (ws.terminate()). The SDK's
    // onclose handler fires with code 1006, reports status 0 and reconnects after 3 s.
    ws.terminate();
  }
  reply(cmd, { event: 'done', cmd: cmd.cmd, ready_state: readyState });
}

function waitForSocketClose(ws, ms) {
  return new Promise((resolve) => {
    if (!ws || ws.readyState === 3) return resolve();
    const timer = setTimeout(resolve, ms);
    ws.once('close', () => {
      clearTimeout(timer);
      resolve();
    });
  });
}

async function cmdExit(cmd) {
  const ws = rawSocket();
  try {
    sdk.disconnect();
  } catch (err) {
    emitError(err, { source: 'exit' });
  }
  await waitForSocketClose(ws, 500);
  reply(cmd, { event: 'bye' });
  // The receipt manager's setInterval keeps the event loop alive: end this worker thread
  // explicitly (process.exit in a worker ends the worker, not the host process). Messages
  // posted before it are delivered first.
  process.exit(0);
}

async function handle(cmd) {
  switch (cmd.cmd) {
    case 'connect':
      sdk.connect();
      reply(cmd, { event: 'done', cmd: cmd.cmd });
      return;
    case 'disconnect':
      // Stops reconnecting. The SDK does not call status listeners for a local disconnect.
      sdk.disconnect();
      reply(cmd, { event: 'done', cmd: cmd.cmd });
      return;
    case 'send':
      return cmdSend(cmd);
    case 'sync_extras':
      return cmdSyncExtras(cmd);
    case 'kill_socket':
      return cmdKillSocket(cmd);
    case 'mark_read':
      return cmdMarkRead(cmd);
    case 'sync_reminders':
      return cmdSyncReminders(cmd);
    case 'reminders_done':
      return cmdRemindersDone(cmd);
    case 'send_image':
      return cmdSendImage(cmd);
    case 'state': {
      const ws = rawSocket();
      reply(cmd, {
        event: 'state',
        status: sdk.connectManager.status,
        ws_ready_state: ws ? ws.readyState : null,
        sending: Array.from(sdk.chatManager.sendingQueues.keys()),
        client_seq: sdk.chatManager.clientSeq,
      });
      return;
    }
    case 'exit':
      return cmdExit(cmd);
    default:
      throw new Error(`unknown command ${JSON.stringify(cmd.cmd)}`);
  }
}

function onCommand(cmd) {
  if (!cmd || typeof cmd !== 'object' || Array.isArray(cmd)) {
    emitError(new Error('command must be a JSON object'), { source: 'command' });
    return;
  }
  // Commands run one at a time, in arrival order, so their replies come back in order too.
  queue = queue
    .then(() => handle(cmd))
    .catch((err) => {
      const extra = { source: 'command', cmd: cmd.cmd === undefined ? null : cmd.cmd };
      if (cmd.id !== undefined) extra.id = cmd.id;
      emitError(err, extra);
    });
}

let queue = Promise.resolve();

parentPort.on('message', onCommand);

emit({
  event: 'ready',
  uid: config.uid,
  sdk: SDK_VERSION,
  node: process.version,
  pid: process.pid,
  thread_id: threadId,
});
