// Message extensions in the page (spec §5, §7; ARCHITECTURE "a state change").
//
// On CMD syncMessageExtra (and after (re)connecting, and when a channel is opened) the page
// calls chatManager.syncMessageExtras(channel, highestKnownExtraVersion). The SDK hands that
// to provider.syncMessageExtraCallback (POST /message/extra/sync, see chat.js), which returns
// MessageExtra objects; this module applies each one whose per-message version is newer
// (idempotent and order-insensitive, I6) to message.remoteExtra and reports the ids it
// changed, so the view re-renders only those elements.

import { MessageExtra } from 'wukongimjssdk/lib/model';

/** The SDK always asks its provider for at most this many rows (chat_manager.js). */
const SDK_EXTRA_LIMIT = 100;
/** Catch-up pages per sync at most (a backlog of 100 * this rows). */
const MAX_PAGES = 50;

/** Whether `incoming` is newer than `current` (per-message version, then extra_version). */
export function isNewer(incoming, current) {
  const a = incoming.version || 0;
  const b = (current && current.version) || 0;
  if (a !== b) return a > b;
  return (incoming.extraVersion || 0) > ((current && current.extraVersion) || 0);
}

export class ExtrasSync {
  /**
   * @param sdk       WKSDK.shared()
   * @param cache     MessageCache
   * @param onApplied (state, keys[]) after extras changed those messages
   */
  constructor(sdk, cache, onApplied) {
    this.sdk = sdk;
    this.cache = cache;
    this.onApplied = onApplied;
    /** channel key -> {running: Promise, again: boolean} */
    this.inflight = new Map();
    this.errors = 0;
  }

  /**
   * Bring the channel's extras up to date. Calls for one channel are serialised: a call
   * while a sync runs makes exactly one more pass after it (a CMD burst costs two requests).
   * `hint`: the extra_version a CMD announced; nothing to do when it is already known.
   */
  sync(channel, hint = 0) {
    const state = this.cache.peek(channel);
    if (!state || !state.loaded) return Promise.resolve(); // synced in full when opened
    if (hint && hint <= state.extraVersion) return Promise.resolve();
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
        let extras;
        try {
          extras = await this.sdk.chatManager.syncMessageExtras(state.channel, state.extraVersion);
        } catch (err) {
          this.errors++;
          console.warn('[magpie] message extra sync failed', err);
          return;
        }
        this.applyAll(state, extras || []);
        if (!extras || extras.length < SDK_EXTRA_LIMIT) break;
      }
    } while (entry.again);
  }

  /** Apply rows to the cache; returns the keys of the messages that changed. */
  applyAll(state, extras) {
    const changed = [];
    for (const extra of extras) {
      if (extra.extraVersion > state.extraVersion) state.extraVersion = extra.extraVersion;
      if (this.applyOne(state, extra)) changed.push(extra.messageID);
    }
    if (changed.length > 0) this.onApplied(state, changed);
    return changed;
  }

  applyOne(state, extra) {
    const message = state.messages.get(extra.messageID);
    if (!message) {
      const held = state.pendingExtras.get(extra.messageID);
      if (!held || isNewer(extra, held)) state.pendingExtras.set(extra.messageID, extra);
      return false;
    }
    if (!isNewer(extra, message.remoteExtra)) return false;
    message.remoteExtra = extra;
    return true;
  }

  /** A message just entered the cache: give it the extra that arrived before it did. */
  adopt(state, message) {
    const held = state.pendingExtras.get(message.messageID);
    if (!held) return;
    state.pendingExtras.delete(message.messageID);
    if (isNewer(held, message.remoteExtra)) message.remoteExtra = held;
  }

  /**
   * The store was replaced (X-Magpie-Epoch changed, I7): versions restart, so forget every
   * cursor and applied extra, then sync each loaded channel from scratch.
   */
  reset() {
    for (const state of this.cache.all()) {
      state.extraVersion = 0;
      state.pendingExtras.clear();
      const keys = [];
      for (const [key, message] of state.messages) {
        if (message.remoteExtra && (message.remoteExtra.version || message.remoteExtra.extraVersion)) {
          message.remoteExtra = new MessageExtra();
          keys.push(key);
        }
      }
      if (keys.length > 0) this.onApplied(state, keys);
      this.sync(state.channel);
    }
  }
}
