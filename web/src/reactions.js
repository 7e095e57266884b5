// Reactions in the page (docs/conversation.md, *Reactions*).
//
// A loaded message carries its summaries (`reactions` of /channel/messagesync: emoji, count,
// users, seq). After that, POST /reaction/sync {seq} returns the channel's rows changed after
// the cursor — each the current state of one (message, uid, emoji), `is_deleted` for a
// removal — and the CMD syncMessageReaction says when to ask. The SDK 1.0.4 has no reaction
// hook, so this module keeps per message a map (uid, emoji) -> the seq of the state known, and
// sets `message.reactions` to SDK Reaction objects built from it.
//
// Seqs are allocated in the change's transaction and rows become visible in seq order, so a
// summary loaded at some moment reflects every row up to that moment: a row is applied only
// when its seq is above what the message already knows for that (uid, emoji); applying a page
// twice, or pages in any order, ends in the same state. Syncs of one channel are serialised.

import { Reaction } from 'wukongimjssdk/lib/model';
import { rowsOf } from './http.js';

/** Rows per /reaction/sync page (the server's default). */
const PAGE = 100;
/** Pages per sync at most. */
const MAX_PAGES = 50;

/** The per-message reaction state: Map "uid\u0000emoji" -> {uid, emoji, seq, on}. */
function stateOf(message) {
  if (!message.__reactions) message.__reactions = new Map();
  return message.__reactions;
}

function keyOf(uid, emoji) {
  return `${uid}\u0000${emoji}`;
}

/** Rebuild `message.reactions` (SDK Reaction objects, first-reacted emoji first). */
function publish(message) {
  const byEmoji = new Map();
  for (const entry of stateOf(message).values()) {
    if (!entry.on) continue;
    let r = byEmoji.get(entry.emoji);
    if (!r) {
      r = new Reaction();
      r.emoji = entry.emoji;
      r.users = [];
      r.count = 0;
      r.seq = '0';
      r.first = entry.seq;
      byEmoji.set(entry.emoji, r);
    }
    r.users.push(entry.uid);
    r.count += 1;
    if (entry.seq > Number(r.seq)) r.seq = String(entry.seq);
    if (entry.seq < r.first) r.first = entry.seq;
  }
  message.reactions = [...byEmoji.values()].sort((a, b) => a.first - b.first || (a.emoji < b.emoji ? -1 : 1));
}

/** Adopt the summaries a message came with; returns the highest seq they name. */
export function adoptSummaries(message, summaries) {
  const state = stateOf(message);
  let top = 0;
  for (const s of summaries || []) {
    const seq = Number(s.seq) || 0;
    top = Math.max(top, seq);
    for (const uid of s.users || []) {
      const key = keyOf(uid, s.emoji);
      const known = state.get(key);
      if (!known || known.seq < seq) state.set(key, { uid, emoji: s.emoji, seq, on: true });
    }
  }
  publish(message);
  return top;
}

/** Apply one row of /reaction/sync (or the caller's row of POST /reactions); true if changed. */
export function applyRow(message, row) {
  const state = stateOf(message);
  const key = keyOf(row.uid, row.emoji);
  const seq = Number(row.seq) || 0;
  const known = state.get(key);
  if (known && known.seq >= seq) return false;
  const on = !row.is_deleted;
  state.set(key, { uid: row.uid, emoji: row.emoji, seq, on });
  publish(message);
  return !known || known.on !== on;
}

/** Whether `uid` has reacted with `emoji` on the message. */
export function hasReacted(message, uid, emoji) {
  const entry = stateOf(message).get(keyOf(uid, emoji));
  return Boolean(entry && entry.on);
}

/** Move a message's reaction state to its replacement object (a reload of the same id). */
export function carryOver(from, to) {
  if (!from || !from.__reactions || from === to) return;
  const state = stateOf(to);
  for (const [key, entry] of from.__reactions) {
    const known = state.get(key);
    if (!known || known.seq < entry.seq) state.set(key, entry);
  }
  publish(to);
}

export class ReactionSync {
  /**
   * @param api       http.Api (user token)
   * @param cache     MessageCache
   * @param onApplied (state, keys[]) after rows changed those messages
   */
  constructor(api, cache, onApplied) {
    this.api = api;
    this.cache = cache;
    this.onApplied = onApplied;
    this.inflight = new Map(); // channel key -> {running, again}
  }

  /** Messages entered the cache: adopt their summaries and move the cursor up to them. */
  adopt(state, message, summaries) {
    const top = adoptSummaries(message, summaries);
    if (top > (state.reactionSeq || 0)) state.reactionSeq = top;
  }

  /** Sync the channel's rows after its cursor (serialised per channel, like extras). */
  sync(channel, hint = 0) {
    const state = this.cache.peek(channel);
    if (!state || !state.loaded) return Promise.resolve();
    if (hint && hint <= (state.reactionSeq || 0)) return Promise.resolve();
    const slot = this.inflight.get(state.key);
    if (slot) {
      slot.again = true;
      return slot.running;
    }
    const entry = { again: false, running: null };
    entry.running = this.run(state, entry).finally(() => this.inflight.delete(state.key));
    this.inflight.set(state.key, entry);
    return entry.running;
  }

  async run(state, entry) {
    do {
      entry.again = false;
      for (let page = 0; page < MAX_PAGES; page++) {
        let rows;
        try {
          const body = await this.api.post('/reaction/sync', {
            channel_id: state.channel.channelID,
            channel_type: state.channel.channelType,
            seq: state.reactionSeq || 0,
            limit: PAGE,
          });
          rows = rowsOf(body, '/reaction/sync');
        } catch (err) {
          console.warn('[magpie] reaction sync failed', err);
          return;
        }
        if (this.cache.peek(state.channel) !== state) return; // the store was replaced meanwhile
        this.applyAll(state, rows);
        if (rows.length < PAGE) break;
      }
    } while (entry.again);
  }

  /** Apply rows to the cached messages; returns the keys of the messages that changed. */
  applyAll(state, rows) {
    const changed = new Set();
    for (const row of rows) {
      const seq = Number(row.seq) || 0;
      if (seq > (state.reactionSeq || 0)) state.reactionSeq = seq;
      const id = String(row.message_id_str || row.message_id);
      const message = state.messages.get(id);
      if (message ? applyRow(message, row) : this.hold(state, id, row)) changed.add(id);
    }
    const keys = [...changed].filter((id) => state.messages.has(id));
    if (keys.length > 0) this.onApplied(state, keys);
    return keys;
  }

  /** A row for a message not loaded yet: kept until it loads (then `take` applies it). */
  hold(state, id, row) {
    if (!state.pendingReactions) state.pendingReactions = new Map();
    const rows = state.pendingReactions.get(id) || [];
    rows.push(row);
    state.pendingReactions.set(id, rows);
    return false;
  }

  /** A message just entered the cache: apply the rows that arrived before it did. */
  take(state, message) {
    const rows = state.pendingReactions && state.pendingReactions.get(message.messageID);
    if (!rows) return;
    state.pendingReactions.delete(message.messageID);
    for (const row of rows) applyRow(message, row);
  }
}
