// The page's message cache: one ChannelState per open-at-least-once channel, messages keyed by
// id (a decimal string; a local echo is keyed "local-<clientSeq>" until its SENDACK).

/** The key of a message in its channel: its id, or a local key before the server assigned one. */
export function messageKey(message) {
  return message.messageID ? String(message.messageID) : `local-${message.clientSeq}`;
}

export class ChannelState {
  constructor(channel) {
    this.channel = channel;
    this.key = channel.getChannelKey();
    /** key -> SDK Message */
    this.messages = new Map();
    /** Highest extra_version seen for this channel (the cursor of /message/extra/sync). */
    this.extraVersion = 0;
    /** Extras of messages not loaded yet (id -> MessageExtra), applied when they load. */
    this.pendingExtras = new Map();
    this.loaded = false;
    /** Missed live traffic while disconnected: catch up (messages and extras) when shown. */
    this.stale = false;
  }

  get minSeq() {
    let min = 0;
    for (const m of this.messages.values()) if (m.messageSeq > 0 && (min === 0 || m.messageSeq < min)) min = m.messageSeq;
    return min;
  }

  get maxSeq() {
    let max = 0;
    for (const m of this.messages.values()) if (m.messageSeq > max) max = m.messageSeq;
    return max;
  }

  /** Older history exists (seqs are gap-free from 1, I3). */
  get hasOlder() {
    return this.minSeq > 1;
  }

  /** Add or replace; returns false for a duplicate delivery of a known message (I4). */
  add(message) {
    const key = messageKey(message);
    const known = this.messages.get(key);
    if (known && known !== message && known.messageSeq === message.messageSeq && message.messageID) return false;
    if (known && known.remoteExtra && (known.remoteExtra.version || 0) > (message.remoteExtra.version || 0)) {
      message.remoteExtra = known.remoteExtra; // keep the newer state already applied
    }
    this.messages.set(key, message);
    return true;
  }

  /** Move a local echo to its server id (after SENDACK). */
  rekey(oldKey, message) {
    this.messages.delete(oldKey);
    this.messages.set(messageKey(message), message);
  }

  /** Messages ascending by seq; local echoes (no seq yet) last, in send order. */
  ordered() {
    return [...this.messages.values()].sort(compareMessages);
  }
}

export function compareMessages(a, b) {
  const sa = a.messageSeq > 0 ? a.messageSeq : Number.MAX_SAFE_INTEGER;
  const sb = b.messageSeq > 0 ? b.messageSeq : Number.MAX_SAFE_INTEGER;
  if (sa !== sb) return sa - sb;
  return (a.clientSeq || 0) - (b.clientSeq || 0);
}

export class MessageCache {
  constructor() {
    /** channel key -> ChannelState */
    this.channels = new Map();
  }

  get(channel) {
    const key = channel.getChannelKey();
    let state = this.channels.get(key);
    if (!state) {
      state = new ChannelState(channel);
      this.channels.set(key, state);
    }
    return state;
  }

  peek(channel) {
    return this.channels.get(channel.getChannelKey());
  }

  all() {
    return [...this.channels.values()];
  }

  /** Whether any channel holds a message. */
  holdsData() {
    for (const state of this.channels.values()) if (state.messages.size > 0) return true;
    return false;
  }

  /** Forget every channel (the store was replaced: nothing cached is valid any more). */
  clear() {
    this.channels.clear();
  }
}
