// The message list of the open channel. One <li> per message, keyed by message id
// (data-message-id, a decimal string); a change to a message's extension patches only that
// element in place (refresh(keys)), never the list.

import { h, avatar, formatTime, setChildren, swapClass } from '../dom.js';
import { payloadOf } from '../convert.js';
import { isCard } from '../cards/registry.js';
import { compareMessages, messageKey } from '../state.js';
import { humanize, toneOf } from '../cards/registry.js';

/** Consecutive messages of one sender closer than this share one header. */
const GROUP_SECONDS = 5 * 60;
/** "Near the bottom": new messages keep the view pinned to the end. */
const STICKY_PX = 80;

export class MessageListView {
  constructor({ me, names, cards, onLoadOlder }) {
    this.me = me;
    this.names = names;
    this.cards = cards;
    this.onLoadOlder = onLoadOlder;
    this.rows = new Map(); // message key -> <li>
    this.state = null;
    this.olderButton = h('button', { type: 'button', class: 'btn btn--ghost btn--small load-older', hidden: true, onclick: () => this.onLoadOlder() }, 'Load earlier messages');
    this.list = h('ol', { class: 'msg-list', 'aria-live': 'polite' });
    this.placeholder = h('div', { class: 'msg-placeholder' }, h('p', {}, 'Pick a conversation on the left.'));
    this.el = h('section', { class: 'messages', 'aria-label': 'Messages' }, this.olderButton, this.list, this.placeholder);
  }

  /** Show a channel's cached messages (a full render: only on switching channels). */
  show(state) {
    this.state = state;
    this.rows.clear();
    this.list.replaceChildren();
    for (const message of state.ordered()) this.list.append(this.row(message));
    for (const row of this.list.children) this.regroup(row);
    this.placeholder.hidden = true;
    this.updateOlder();
    this.scrollToEnd();
  }

  updateOlder(loading = false) {
    const show = Boolean(this.state && this.state.hasOlder);
    this.olderButton.hidden = !show;
    this.olderButton.disabled = loading;
    this.olderButton.textContent = loading ? 'Loading…' : 'Load earlier messages';
    if (this.state && this.state.loaded && this.state.messages.size === 0) {
      this.placeholder.hidden = false;
      setChildren(this.placeholder, h('p', {}, 'No messages yet. Say hello!'));
    } else if (this.state) this.placeholder.hidden = true;
  }

  nearEnd() {
    return this.el.scrollHeight - this.el.scrollTop - this.el.clientHeight < STICKY_PX;
  }

  scrollToEnd() {
    this.el.scrollTop = this.el.scrollHeight;
  }

  /** Insert or patch one message (live traffic, local echoes, catch-up pages). */
  upsert(message) {
    const key = messageKey(message);
    const existing = this.rows.get(key);
    if (existing) {
      this.patch(existing, message);
      return existing;
    }
    const pinned = this.nearEnd() || message.fromUID === this.me;
    const row = this.row(message);
    const after = [...this.list.children].find((el) => compareMessages(el.__message, message) > 0);
    this.list.insertBefore(row, after || null);
    this.regroup(row);
    if (row.nextElementSibling) this.regroup(row.nextElementSibling);
    this.updateOlder();
    if (pinned && !after) this.scrollToEnd();
    return row;
  }

  /** Older history arrived: insert above, keeping what the reader sees where it was. */
  prepend(messages) {
    const height = this.el.scrollHeight;
    for (const message of messages) if (!this.rows.has(messageKey(message))) this.upsert(message);
    this.el.scrollTop += this.el.scrollHeight - height;
    this.updateOlder();
  }

  /** A local echo got its server id (SENDACK). */
  rekey(oldKey, message) {
    const row = this.rows.get(oldKey);
    if (!row) return;
    this.rows.delete(oldKey);
    this.rows.set(messageKey(message), row);
    this.patch(row, message);
  }

  /** The extensions of these messages changed: patch exactly their elements. */
  refresh(keys) {
    if (!this.state) return;
    for (const key of keys) {
      const row = this.rows.get(String(key));
      const message = this.state.messages.get(String(key));
      if (row && message) this.patch(row, message);
    }
  }

  row(message) {
    const mine = message.fromUID === this.me;
    const card = isCard(message);
    const row = h('li', { class: `msg${mine ? ' msg--mine' : ''}${card ? ' msg--card' : ''}` });
    row.append(
      avatar(message.fromUID || 'system', this.names.get(message.fromUID) || message.fromUID || 'S', 'msg-avatar'),
      h(
        'div',
        { class: 'msg-body' },
        h('div', { class: 'msg-meta' }, h('span', { class: 'msg-from' }, mine ? 'You' : this.names.get(message.fromUID) || message.fromUID || 'System'), h('time', { class: 'msg-time' })),
        card ? this.cards.element(message) : h('div', { class: 'msg-bubble' }),
        h('div', { class: 'msg-ext' }),
      ),
    );
    this.rows.set(messageKey(message), row);
    this.patch(row, message, false);
    return row;
  }

  /** Bring one row up to date with its message (id, delivery state, extension). */
  patch(row, message, live = true) {
    row.__message = message;
    const extra = message.remoteExtra || {};
    const status = extra.status || (extra.extra && extra.extra.status) || '';
    row.dataset.messageId = message.messageID ? String(message.messageID) : '';
    row.dataset.key = messageKey(message);
    row.dataset.seq = String(message.messageSeq || 0);
    row.dataset.from = message.fromUID || '';
    row.dataset.status = status;
    row.dataset.extVersion = String(extra.version || 0);
    row.dataset.delivery = message.status === 0 ? 'sending' : message.status === 2 ? 'failed' : 'sent';
    row.querySelector('.msg-time').textContent = formatTime(message.timestamp);
    row.classList.toggle('msg--revoked', Boolean(extra.revoke));
    if (isCard(message)) {
      if (live) this.cards.refresh(message);
    } else {
      this.paintBubble(row.querySelector('.msg-bubble'), message);
    }
    this.paintExt(row.querySelector('.msg-ext'), message, status);
  }

  paintBubble(bubble, message) {
    const extra = message.remoteExtra || {};
    if (extra.revoke) {
      bubble.textContent = extra.revoker && extra.revoker !== message.fromUID ? `Message withdrawn by ${extra.revoker}` : 'Message withdrawn';
      return;
    }
    const edited = extra.contentEdit && typeof extra.contentEdit.text === 'string' ? extra.contentEdit.text : null;
    const payload = payloadOf(message);
    const text = edited ?? (message.content && typeof message.content.text === 'string' ? message.content.text : typeof payload.content === 'string' ? payload.content : `[message type ${payload.type ?? '?'}]`);
    if (bubble.textContent !== text) bubble.textContent = text;
  }

  paintExt(el, message, status) {
    const extra = message.remoteExtra || {};
    const parts = [];
    if (status && !isCard(message)) {
      const chip = h('span', { class: `chip chip--${toneOf(status)}`, dataset: { status } }, h('span', { class: 'chip-mark', 'aria-hidden': 'true' }), humanize(status));
      parts.push(chip);
    }
    if (extra.isEdit && !extra.revoke) parts.push(h('span', { class: 'msg-note' }, 'edited'));
    if (message.fromUID === this.me && extra.readedCount > 0) parts.push(h('span', { class: 'msg-note' }, `Read by ${extra.readedCount}`));
    if (message.status === 0) parts.push(h('span', { class: 'msg-note msg-note--sending' }, 'Sending…'));
    if (message.status === 2) parts.push(h('span', { class: 'msg-note msg-note--failed' }, 'Not sent'));
    const sig = `${status}|${extra.isEdit}|${extra.readedCount}|${message.status}|${isCard(message)}`;
    if (el.dataset.sig === sig) return;
    el.dataset.sig = sig;
    setChildren(el, parts);
    swapClass(el, 'msg-ext--', parts.length ? 'shown' : 'empty');
  }

  /** Hide the avatar and name of a message that continues the previous one's run. */
  regroup(row) {
    const prev = row.previousElementSibling;
    const a = prev && prev.__message;
    const b = row.__message;
    const continued = Boolean(a && b && a.fromUID === b.fromUID && !isCard(a) && !isCard(b) && Math.abs((b.timestamp || 0) - (a.timestamp || 0)) < GROUP_SECONDS);
    row.classList.toggle('msg--continued', continued);
  }
}
