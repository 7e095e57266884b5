// The message list of the open channel. One <li> per message, keyed by message id
// (data-message-id, a decimal string); a change to a message's extension or reactions patches
// only that element in place (refresh(keys)), never the list.
//
// A row: avatar (with a presence dot), name and time, the quoted message (a reply), the
// bubble (Markdown text, an image, a file — or a card), reaction chips, and a line of
// extension notes (status chip, "edited", "Read by N", sending state). Hovering a row (or
// tapping it on a touch screen) shows its action bar: react, reply, edit, revoke, copy link.

import { h, avatar, formatTime, setChildren, swapClass } from '../dom.js';
import { payloadOf } from '../convert.js';
import { isCard, humanize, toneOf } from '../cards/registry.js';
import { compareMessages, messageKey } from '../state.js';
import { renderMarkdown } from '../markdown.js';
import { FILE, IMAGE, formatSize } from '../content.js';
import { hasReacted } from '../reactions.js';

/** Consecutive messages of one sender closer than this share one header. */
const GROUP_SECONDS = 5 * 60;
/** "Near the bottom": new messages keep the view pinned to the end. */
const STICKY_PX = 80;
/** The quick reactions of the action bar. */
export const QUICK_EMOJI = ['👍', '❤️', '😂', '🎉', '😮', '😢', '🙏', '👀'];
/** Longest quoted text shown in a reply preview. */
const PREVIEW_CHARS = 120;

/** The text a message shows (its edit when edited), or null for non-text content. */
export function textOf(message) {
  const extra = message.remoteExtra || {};
  if (extra.contentEdit && typeof extra.contentEdit.text === 'string') return extra.contentEdit.text;
  if (message.content && typeof message.content.text === 'string') return message.content.text;
  const payload = payloadOf(message);
  return typeof payload.content === 'string' && !isCard(message) ? payload.content : null;
}

/** A one-line preview of a content object (SDK MessageContent) or payload. */
export function previewOf(content) {
  if (!content) return '';
  const type = content.contentType;
  if (type === IMAGE) return '🖼 Image';
  if (type === FILE) return `📎 ${content.name || 'File'}`;
  const text = typeof content.text === 'string' ? content.text : content.contentObj && typeof content.contentObj.content === 'string' ? content.contentObj.content : '';
  const one = text.replace(/\s+/g, ' ').trim();
  return one.length > PREVIEW_CHARS ? `${one.slice(0, PREVIEW_CHARS)}…` : one || `[message type ${type ?? '?'}]`;
}

export class MessageListView {
  /**
   * @param ui  {me, names, cards, onLoadOlder, actions, media, presence}
   *   actions  {can(name, message) -> bool, run(name, message, arg)}: react (arg emoji),
   *            reply, edit, revoke, link; readers(message, anchor) for "Read by N"
   *   media    {objectUrl(url) -> Promise<string>, download(url, name)}
   *   presence {isOnline(uid) -> bool}
   */
  constructor({ me, names, cards, onLoadOlder, actions = null, media = null, presence = null }) {
    this.me = me;
    this.names = names;
    this.cards = cards;
    this.onLoadOlder = onLoadOlder;
    this.actions = actions;
    this.media = media;
    this.presence = presence;
    this.rows = new Map(); // message key -> <li>
    this.state = null;
    this.olderButton = h('button', { type: 'button', class: 'btn btn--ghost btn--small load-older', hidden: true, onclick: () => this.onLoadOlder() }, 'Load earlier messages');
    this.list = h('ol', { class: 'msg-list', 'aria-live': 'polite' });
    this.placeholder = h('div', { class: 'msg-placeholder' }, h('p', {}, 'Pick a conversation on the left.'));
    this.el = h('section', { class: 'messages', 'aria-label': 'Messages' }, this.olderButton, this.list, this.placeholder);
    // A tap outside any row closes a row's bar (touch screens have no hover).
    this.el.addEventListener('click', (e) => {
      if (!e.target.closest('.msg')) this.select(null);
    });
  }

  name(uid) {
    return uid === this.me ? 'You' : this.names.get(uid) || uid || 'System';
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

  /** Scroll a message into view and flash it; false when it is not in the list. */
  reveal(messageId) {
    const row = this.rows.get(String(messageId));
    if (!row) return false;
    row.scrollIntoView({ block: 'center', behavior: 'smooth' });
    row.classList.remove('is-flash');
    void row.offsetWidth; // restart the animation
    row.classList.add('is-flash');
    return true;
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

  /** The extensions (or reactions) of these messages changed: patch exactly their elements,
   * and the previews of replies quoting them. */
  refresh(keys) {
    if (!this.state) return;
    const pinned = this.nearEnd();
    const changed = new Set(keys.map(String));
    for (const key of changed) {
      const row = this.rows.get(key);
      const message = this.state.messages.get(key);
      if (row && message) this.patch(row, message);
    }
    for (const row of this.rows.values()) {
      const reply = row.__message && row.__message.content && row.__message.content.reply;
      if (reply && changed.has(String(reply.messageID))) this.paintReply(row.querySelector('.msg-reply'), row.__message);
    }
    if (pinned) this.scrollToEnd(); // a chip or note under the last message stays in view
  }

  /** Repaint the presence dots (the online set changed). */
  refreshPresence() {
    for (const row of this.rows.values()) this.paintPresence(row);
  }

  row(message) {
    const mine = message.fromUID === this.me;
    const card = isCard(message);
    const row = h('li', {
      class: `msg${mine ? ' msg--mine' : ''}${card ? ' msg--card' : ''}`,
      tabindex: '-1',
      onclick: (e) => {
        if (!e.target.closest('button, a, input, textarea, .card')) this.select(row);
      },
    });
    const who = message.fromUID || 'system';
    row.append(
      h('span', { class: 'msg-avatar-wrap' }, avatar(who, this.names.get(message.fromUID) || message.fromUID || 'S', 'msg-avatar'), h('span', { class: 'presence-dot', dataset: { uid: who } })),
      h(
        'div',
        { class: 'msg-body' },
        h('div', { class: 'msg-meta' }, h('span', { class: 'msg-from' }, mine ? 'You' : this.names.get(message.fromUID) || message.fromUID || 'System'), h('time', { class: 'msg-time' })),
        h('button', { type: 'button', class: 'msg-reply', hidden: true, onclick: () => this.openQuoted(row) }),
        card ? this.cards.element(message) : h('div', { class: 'msg-bubble' }),
        h('div', { class: 'msg-reactions' }),
        h('div', { class: 'msg-ext' }),
      ),
      this.actions ? this.actionBar(row) : null,
    );
    this.rows.set(messageKey(message), row);
    this.patch(row, message, false);
    return row;
  }

  /** Mark one row as selected (its action bar stays visible); null clears. */
  select(row) {
    for (const el of this.list.querySelectorAll('.msg.is-selected')) if (el !== row) el.classList.remove('is-selected');
    if (row) row.classList.add('is-selected');
  }

  actionBar(row) {
    const act = (name, arg) => (e) => {
      e.stopPropagation();
      if (name === 'pick') {
        row.classList.toggle('is-picking');
        return;
      }
      row.classList.remove('is-picking');
      this.actions.run(name, row.__message, arg, e.currentTarget);
    };
    const button = (name, label, title) => h('button', { type: 'button', class: `msg-action msg-action--${name}`, dataset: { action: name }, title, 'aria-label': title, onclick: act(name) }, label);
    return h(
      'div',
      { class: 'msg-actions', role: 'toolbar', 'aria-label': 'Message actions' },
      h('div', { class: 'emoji-picker', role: 'group', 'aria-label': 'React with' }, QUICK_EMOJI.map((emoji) => h('button', { type: 'button', class: 'emoji-option', dataset: { emoji }, onclick: act('react', emoji) }, emoji))),
      button('pick', '😊', 'Add a reaction'),
      button('reply', '↩', 'Reply'),
      button('edit', '✎', 'Edit'),
      button('revoke', '🗑', 'Withdraw'),
      button('link', '🔗', 'Copy link'),
    );
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
    row.dataset.revoked = extra.revoke ? '1' : '0';
    row.querySelector('.msg-time').textContent = formatTime(message.timestamp);
    row.classList.toggle('msg--revoked', Boolean(extra.revoke));
    row.classList.toggle('msg--mentions-me', mentionsMe(message, this.me));
    if (isCard(message)) {
      if (live) this.cards.refresh(message);
    } else {
      this.paintBubble(row.querySelector('.msg-bubble'), message);
    }
    this.paintReply(row.querySelector('.msg-reply'), message);
    this.paintReactions(row.querySelector('.msg-reactions'), message);
    this.paintExt(row.querySelector('.msg-ext'), message, status);
    this.paintActions(row, message);
    this.paintPresence(row);
  }

  paintPresence(row) {
    const dot = row.querySelector('.presence-dot');
    if (!dot || !this.presence) return;
    const online = this.presence.isOnline(dot.dataset.uid);
    dot.dataset.online = online ? '1' : '0';
    dot.title = online ? 'Online' : 'Offline';
  }

  paintActions(row, message) {
    if (!this.actions) return;
    for (const button of row.querySelectorAll('.msg-actions .msg-action')) {
      const name = button.dataset.action;
      button.hidden = !this.actions.can(name === 'pick' ? 'react' : name, message);
    }
  }

  paintBubble(bubble, message) {
    bubble.classList.toggle('md', false);
    const extra = message.remoteExtra || {};
    if (extra.revoke) {
      const text = extra.revoker && extra.revoker !== message.fromUID ? `Message withdrawn by ${this.name(extra.revoker)}` : 'Message withdrawn';
      if (bubble.dataset.kind !== 'revoked' || bubble.textContent !== text) {
        bubble.dataset.kind = 'revoked';
        bubble.__markdown = undefined;
        bubble.textContent = text;
      }
      return;
    }
    const type = message.content && message.content.contentType;
    if (type === IMAGE) return this.paintImage(bubble, message);
    if (type === FILE) return this.paintFile(bubble, message);
    const text = textOf(message);
    if (text === null) {
      const payload = payloadOf(message);
      bubble.dataset.kind = 'unknown';
      bubble.__markdown = undefined;
      bubble.textContent = `[message type ${payload.type ?? '?'}]`;
      return;
    }
    bubble.dataset.kind = 'text';
    bubble.classList.toggle('md', true);
    renderMarkdown(bubble, text);
  }

  paintImage(bubble, message) {
    const content = message.content;
    const source = content.remoteUrl || (content.file ? `local:${message.clientSeq}` : '');
    bubble.dataset.kind = 'image';
    bubble.classList.add('msg-bubble--media');
    if (bubble.dataset.src === source) return;
    bubble.dataset.src = source;
    const w = content.width || 0;
    const hgt = content.height || 0;
    const img = h('img', { class: 'msg-image', alt: content.name || 'Image', loading: 'lazy', decoding: 'async' });
    if (w > 0 && hgt > 0) img.style.aspectRatio = `${w} / ${hgt}`;
    setChildren(bubble, img);
    if (content.file && !content.remoteUrl) {
      img.src = localUrl(content);
      return;
    }
    if (content.file) img.src = localUrl(content); // the local copy until the server's arrives
    if (content.remoteUrl && this.media) {
      this.media
        .objectUrl(content.remoteUrl)
        .then((url) => {
          img.src = url;
          img.dataset.loaded = '1';
        })
        .catch((err) => {
          img.replaceWith(h('span', { class: 'msg-media-error' }, `Image unavailable (${err.status || 'error'})`));
        });
    }
  }

  paintFile(bubble, message) {
    const content = message.content;
    bubble.dataset.kind = 'file';
    const sig = `${content.remoteUrl}|${content.name}|${content.size}`;
    if (bubble.dataset.sig === sig) return;
    bubble.dataset.sig = sig;
    setChildren(
      bubble,
      h(
        'button',
        {
          type: 'button',
          class: 'msg-file',
          disabled: !content.remoteUrl,
          onclick: () => this.media && this.media.download(content.remoteUrl, content.name || 'file'),
        },
        h('span', { class: 'msg-file-icon', 'aria-hidden': 'true' }, '📎'),
        h('span', { class: 'msg-file-name' }, content.name || 'file'),
        h('span', { class: 'msg-file-size' }, formatSize(content.size)),
      ),
    );
  }

  /** The quoted message of a reply: its current state when it is loaded here, else the copy
   * the server put in the payload (`reply.revoke` once the original was withdrawn). */
  paintReply(el, message) {
    const reply = message.content && message.content.reply;
    if (!reply || (message.remoteExtra && message.remoteExtra.revoke)) {
      el.hidden = true;
      return;
    }
    const id = String(reply.messageID || '');
    const original = this.state && this.state.messages.get(id);
    const originalExtra = original ? original.remoteExtra || {} : {};
    const raw = (message.content.contentObj && message.content.contentObj.reply) || {};
    let text;
    if (originalExtra.revoke || raw.revoke) text = 'Message withdrawn';
    else if (original) text = previewOf(originalExtra.contentEdit || original.content);
    else text = previewOf(reply.content);
    el.hidden = false;
    el.dataset.replyTo = id;
    el.dataset.revoked = originalExtra.revoke || raw.revoke ? '1' : '0';
    setChildren(el, h('span', { class: 'msg-reply-from' }, this.name(reply.fromUID) || reply.fromName), h('span', { class: 'msg-reply-text' }, text));
  }

  openQuoted(row) {
    const reply = row.__message && row.__message.content && row.__message.content.reply;
    if (reply && !this.reveal(reply.messageID) && this.actions) this.actions.run('quoted', row.__message, reply);
  }

  paintReactions(el, message) {
    const reactions = (message.reactions || []).filter((r) => r.count > 0);
    const revoked = Boolean(message.remoteExtra && message.remoteExtra.revoke);
    const sig = revoked ? '' : reactions.map((r) => `${r.emoji}:${r.users.join(',')}`).join('|');
    if (el.dataset.sig === sig) return;
    el.dataset.sig = sig;
    if (revoked || reactions.length === 0) {
      el.replaceChildren();
      return;
    }
    setChildren(
      el,
      reactions.map((r) => {
        const mine = hasReacted(message, this.me, r.emoji);
        const who = r.users.map((uid) => this.name(uid)).join(', ');
        return h(
          'button',
          {
            type: 'button',
            class: `reaction${mine ? ' is-mine' : ''}`,
            dataset: { emoji: r.emoji, count: String(r.count), users: r.users.join(',') },
            'aria-pressed': String(mine),
            title: `${who} reacted with ${r.emoji}`,
            onclick: (e) => {
              e.stopPropagation();
              if (this.actions) this.actions.run('react', message, r.emoji);
            },
          },
          h('span', { class: 'reaction-emoji' }, r.emoji),
          h('span', { class: 'reaction-count' }, String(r.count)),
        );
      }),
    );
  }

  paintExt(el, message, status) {
    const extra = message.remoteExtra || {};
    const parts = [];
    if (status && !isCard(message)) {
      const chip = h('span', { class: `chip chip--${toneOf(status)}`, dataset: { status } }, h('span', { class: 'chip-mark', 'aria-hidden': 'true' }), humanize(status));
      parts.push(chip);
    }
    if (extra.isEdit && !extra.revoke) parts.push(h('span', { class: 'msg-note msg-note--edited' }, 'edited'));
    const mine = message.fromUID === this.me;
    const receipt = mine && message.setting && message.setting.receiptEnabled && !extra.revoke;
    if (receipt && extra.readedCount > 0) {
      parts.push(
        h(
          'button',
          {
            type: 'button',
            class: 'msg-note msg-readers',
            dataset: { readed: String(extra.readedCount), unread: String(extra.unreadCount || 0) },
            title: 'Who read it',
            onclick: (e) => {
              e.stopPropagation();
              if (this.actions) this.actions.run('readers', message, null, e.currentTarget);
            },
          },
          `Read by ${extra.readedCount}`,
        ),
      );
    }
    if (message.status === 0) parts.push(h('span', { class: 'msg-note msg-note--sending' }, message.__uploading ? 'Uploading…' : 'Sending…'));
    if (message.status === 2) parts.push(h('span', { class: 'msg-note msg-note--failed' }, message.__failure || 'Not sent'));
    const sig = `${status}|${extra.isEdit}|${extra.revoke}|${receipt ? extra.readedCount : ''}|${message.status}|${message.__uploading}|${message.__failure}|${isCard(message)}`;
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
    const quoted = b && b.content && b.content.reply;
    const continued = Boolean(a && b && !quoted && a.fromUID === b.fromUID && !isCard(a) && !isCard(b) && Math.abs((b.timestamp || 0) - (a.timestamp || 0)) < GROUP_SECONDS);
    row.classList.toggle('msg--continued', continued);
  }
}

function mentionsMe(message, me) {
  const mention = message.content && message.content.mention;
  if (!mention || message.fromUID === me) return false;
  return Boolean(mention.all || (mention.uids && mention.uids.includes(me)));
}

function localUrl(content) {
  if (!content.__localUrl) content.__localUrl = URL.createObjectURL(content.file);
  return content.__localUrl;
}
