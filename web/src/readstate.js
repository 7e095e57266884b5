// Read state (docs/conversation.md, *Read receipts*, *Unread counts*, *Mentions*).
//
//   Unread badges   the server keeps each user's read position. Reading a conversation (it
//                   is open and the page visible) posts /conversations/clearUnread {message_seq}
//                   — at most one request per channel in flight, the newest seq wins — and
//                   the CMD unreadClear tells the user's other pages (other browsers) the new
//                   unread count. Unread counts come from /conversation/sync only.
//   Receipts        messages of others sent with the receipt setting that this page showed
//                   go to the SDK's receipt manager, which batches them to
//                   provider.messageReadedCallback -> POST /message/readed. The counts come
//                   back to the sender as extension rows (readed_count, unread_count).
//   Reminders       provider.syncRemindersCallback(version) -> /message/reminder/sync rows as
//                   SDK Reminders (conversation.reminders: "@you" in the list);
//                   reminderDoneCallback(ids) -> /message/reminder/done when the mentioned
//                   user opens the conversation.

import { Channel, Reminder } from 'wukongimjssdk/lib/model';
import { rowsOf } from './http.js';

/** Rows per reminder sync page (the server's default). */
const REMINDER_PAGE = 100;
/** Message ids per /message/readed call at most (the server's limit is 1000). */
const READ_BATCH = 500;

export class ReadState {
  /** `api`: http.Api; `sdk`: WKSDK.shared(); `me`: the user. */
  constructor(api, sdk, me) {
    this.api = api;
    this.sdk = sdk;
    this.me = me;
    this.clearing = new Map(); // channel key -> {running, want}
    this.cleared = new Map(); // channel key -> highest seq this page cleared to
    this.reported = new Set(); // message ids given to the receipt manager
  }

  // --- unread -------------------------------------------------------------------------------

  /** The conversation was read up to `seq` (its newest message the page holds). */
  clear(channel, seq) {
    const key = channel.getChannelKey();
    if (!(seq > 0) || seq <= (this.cleared.get(key) || 0)) return Promise.resolve();
    const slot = this.clearing.get(key);
    if (slot) {
      slot.want = Math.max(slot.want, seq);
      return slot.running;
    }
    const entry = { want: seq, running: null };
    entry.running = this.runClear(channel, key, entry).finally(() => this.clearing.delete(key));
    this.clearing.set(key, entry);
    return entry.running;
  }

  async runClear(channel, key, entry) {
    while (entry.want > (this.cleared.get(key) || 0)) {
      const seq = entry.want;
      try {
        await this.api.post('/conversations/clearUnread', { channel_id: channel.channelID, channel_type: channel.channelType, message_seq: seq });
        this.cleared.set(key, Math.max(seq, this.cleared.get(key) || 0));
      } catch (err) {
        // 404: no conversation row yet (nothing was ever received here) — nothing to clear.
        if (err.status !== 404) console.warn('[magpie] clearUnread failed', err);
        return;
      }
    }
  }

  /** The store was replaced: positions restart with it. */
  reset() {
    this.cleared.clear();
    this.reported.clear();
  }

  // --- receipts -----------------------------------------------------------------------------

  /** These messages are on screen: the receipt ones of others are reported once. */
  shown(channel, messages) {
    const fresh = messages.filter((m) => m.messageID && m.messageSeq > 0 && m.fromUID !== this.me && m.setting && m.setting.receiptEnabled && !this.reported.has(String(m.messageID)));
    if (fresh.length === 0) return;
    for (const m of fresh) this.reported.add(String(m.messageID));
    this.sdk.receiptManager.addReceiptMessages(channel, fresh);
  }

  /** provider.messageReadedCallback: never rejects (the SDK's flush loop does not catch).
   * The channel comes from the messages: the SDK rebuilds the one it passes from its
   * "<id>-<type>" key, which breaks on ids with a "-" ("demo-group"). */
  async provideReaded(sdkChannel, messages) {
    if (messages.length === 0) return;
    const channel = messages[0].channel || sdkChannel;
    const ids = messages.map((m) => String(m.messageID));
    try {
      for (let i = 0; i < ids.length; i += READ_BATCH) {
        await this.api.post('/message/readed', { channel_id: channel.channelID, channel_type: channel.channelType, message_ids: ids.slice(i, i + READ_BATCH) });
      }
    } catch (err) {
      console.warn('[magpie] read receipts failed', err);
      for (const id of ids) this.reported.delete(id); // reported again when shown again
    }
  }

  /** "Read by" for the sender: who read `message` (GET /messages/{id}/receipt). */
  async readers(message) {
    const body = await this.api.get(`/messages/${encodeURIComponent(String(message.messageID))}/receipt?readed=1&limit=100`);
    return Array.isArray(body && body.data) ? body.data : [];
  }

  // --- reminders ----------------------------------------------------------------------------

  /** provider.syncRemindersCallback(version): every page after `version`. */
  async provideReminders(version) {
    const out = [];
    let cursor = version || 0;
    for (let page = 0; page < 50; page++) {
      const body = await this.api.post('/message/reminder/sync', { version: cursor, limit: REMINDER_PAGE });
      const rows = rowsOf(body, '/message/reminder/sync');
      for (const row of rows) {
        out.push(toReminder(row));
        cursor = Math.max(cursor, Number(row.version) || 0);
      }
      if (rows.length < REMINDER_PAGE) break;
    }
    return out;
  }

  /** provider.reminderDoneCallback(ids). */
  async provideReminderDone(ids) {
    try {
      await this.api.post('/message/reminder/done', { ids });
    } catch (err) {
      console.warn('[magpie] reminder done failed', err);
    }
  }

  /** The open conversation's reminders that are not done yet: mark them done. */
  doneFor(channel) {
    const waiting = this.sdk.reminderManager.getWaitDoneReminders(channel).filter((r) => !r.done);
    if (waiting.length === 0) return Promise.resolve();
    return this.sdk.reminderManager.done(waiting.map((r) => r.reminderID));
  }

  /** Sync reminders; never throws. */
  async syncReminders() {
    try {
      await this.sdk.reminderManager.sync();
    } catch (err) {
      console.warn('[magpie] reminder sync failed', err);
    }
  }
}

function toReminder(row) {
  const r = new Reminder();
  r.reminderID = Number(row.id);
  r.channel = new Channel(String(row.channel_id), Number(row.channel_type));
  r.messageID = String(row.message_id);
  r.messageSeq = Number(row.message_seq) || 0;
  r.reminderType = Number(row.reminder_type) || 1;
  r.text = row.text || '';
  r.data = row.data;
  r.isLocate = Boolean(row.is_locate);
  r.version = Number(row.version) || 0;
  r.done = Boolean(row.done);
  return r;
}
