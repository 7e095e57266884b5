// Typing notices (docs/conversation.md, *Typing*).
//
// Sending: while the person types, POST /message/typing at most once per interval per
// channel (a 429 from the server's own limit is expected now and then and ignored).
// Receiving: the online-only CMD `typing` {from_uid, channel_id, channel_type, expires_in_ms}
// shows "<name> is typing…" for that channel until the notice expires or the typist's
// message arrives.

import { h } from './dom.js';

/** Least time between two notices of this page for one channel (the server allows 2 s). */
const SEND_INTERVAL_MS = 2500;
/** Shown this long when a CMD names no expiry. */
const DEFAULT_EXPIRY_MS = 5000;

export class TypingNotifier {
  constructor(api) {
    this.api = api;
    this.last = new Map(); // channel key -> ms of the last notice sent
  }

  /** The person typed in `channel`'s composer. */
  typed(channel) {
    if (!channel) return;
    const key = channel.getChannelKey();
    const now = Date.now();
    if (now - (this.last.get(key) || 0) < SEND_INTERVAL_MS) return;
    this.last.set(key, now);
    this.api.post('/message/typing', { channel_id: channel.channelID, channel_type: channel.channelType }).catch((err) => {
      if (err && err.status !== 429) console.warn('[magpie] typing notice failed', err);
    });
  }

}

/** Who is typing where: channel key -> Map uid -> expiry (ms). */
export class TypingState {
  constructor(onChange) {
    this.onChange = onChange;
    this.typists = new Map();
    this.timer = null;
  }

  /** A `typing` CMD arrived for `channelKey`. */
  notice(channelKey, uid, expiresInMs) {
    const typists = this.typists.get(channelKey) || new Map();
    typists.set(uid, Date.now() + (Number(expiresInMs) > 0 ? Number(expiresInMs) : DEFAULT_EXPIRY_MS));
    this.typists.set(channelKey, typists);
    this.schedule();
    this.onChange(channelKey);
  }

  /** `uid`'s message arrived in the channel: they stopped typing. */
  stopped(channelKey, uid) {
    const typists = this.typists.get(channelKey);
    if (typists && typists.delete(uid)) this.onChange(channelKey);
  }

  /** The uids typing in a channel now. */
  who(channelKey) {
    const now = Date.now();
    const typists = this.typists.get(channelKey);
    return typists ? [...typists].filter(([, until]) => until > now).map(([uid]) => uid) : [];
  }

  schedule() {
    if (this.timer) return;
    const tick = () => {
      this.timer = null;
      const now = Date.now();
      let next = Infinity;
      for (const [key, typists] of this.typists) {
        let changed = false;
        for (const [uid, until] of typists) {
          if (until <= now) {
            typists.delete(uid);
            changed = true;
          } else next = Math.min(next, until);
        }
        if (changed) this.onChange(key);
      }
      if (next < Infinity) this.timer = setTimeout(tick, next - now + 20);
    };
    this.timer = setTimeout(tick, 250);
  }
}

/** The line above the composer: "Bob is typing…", "Bob and Carol are typing…". */
export class TypingView {
  constructor() {
    this.text = h('span', { class: 'typing-text' });
    this.el = h('div', { class: 'typing', dataset: { testid: 'typing' }, 'aria-live': 'polite' }, h('span', { class: 'typing-dots', 'aria-hidden': 'true' }, h('i'), h('i'), h('i')), this.text);
    this.show([]);
  }

  show(names) {
    this.el.dataset.who = names.join(',');
    this.el.classList.toggle('is-on', names.length > 0);
    if (names.length === 0) {
      this.text.textContent = '';
      return;
    }
    const who = names.length === 1 ? names[0] : names.length === 2 ? `${names[0]} and ${names[1]}` : `${names.length} people`;
    this.text.textContent = `${who} ${names.length === 1 ? 'is' : 'are'} typing…`;
  }
}
