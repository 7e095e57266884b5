// The conversation list: one keyed element per channel, patched in place and re-ordered by
// the time of the last message; unread counts come from the SDK's conversations (the
// server's counts), "@you" from their reminders.

import { h, avatar, formatTime, setChildren } from '../dom.js';
import { digestOf } from '../convert.js';

export class ConversationListView {
  /** `names`: uid -> display name; `onOpen(channel)`. */
  constructor({ me, names, onOpen, presence = null }) {
    this.me = me;
    this.presence = presence;
    this.names = names;
    this.onOpen = onOpen;
    this.items = new Map(); // channel key -> element
    this.activeKey = '';
    this.list = h('ul', { class: 'conv-list', role: 'listbox', 'aria-label': 'Conversations' });
    this.empty = h('p', { class: 'conv-empty' }, 'No conversations yet.');
    this.el = h('div', { class: 'conv-panel' }, this.list, this.empty);
  }

  title(channel) {
    if (channel.channelType === 1) return this.names.get(channel.channelID) || channel.channelID;
    return channel.channelID;
  }

  /** Render `conversations` (SDK Conversation objects), newest first. */
  render(conversations) {
    const sorted = [...conversations].sort((a, b) => (b.timestamp || 0) - (a.timestamp || 0));
    const seen = new Set();
    sorted.forEach((conv, index) => {
      const key = conv.channel.getChannelKey();
      seen.add(key);
      let item = this.items.get(key);
      if (!item) {
        item = this.create(conv);
        this.items.set(key, item);
      }
      this.patch(item, conv);
      if (this.list.children[index] !== item) this.list.insertBefore(item, this.list.children[index] || null);
    });
    for (const [key, item] of this.items) {
      if (!seen.has(key)) {
        item.remove();
        this.items.delete(key);
      }
    }
    this.empty.hidden = sorted.length > 0;
  }

  create(conv) {
    const channel = conv.channel;
    const group = channel.channelType !== 1;
    const item = h('li', {
      class: 'conv-item',
      role: 'option',
      tabindex: '0',
      dataset: { channel: channel.getChannelKey(), channelId: channel.channelID, channelType: String(channel.channelType) },
      onclick: () => this.onOpen(channel),
      onkeydown: (e) => {
        if (e.key === 'Enter' || e.key === ' ') {
          e.preventDefault();
          this.onOpen(channel);
        }
      },
    });
    const face = avatar(channel.channelID, group ? '#' + channel.channelID.replace(/^demo-?/, '') : this.title(channel), group ? 'avatar--group' : '');
    item.append(
      group ? face : h('span', { class: 'avatar-wrap' }, face, h('span', { class: 'presence-dot', dataset: { uid: channel.channelID } })),
      h(
        'div',
        { class: 'conv-main' },
        h('div', { class: 'conv-top' }, h('span', { class: 'conv-title' }, this.title(channel)), h('time', { class: 'conv-time' })),
        h('div', { class: 'conv-bottom' }, h('span', { class: 'conv-mention', hidden: true }), h('span', { class: 'conv-digest' }), h('span', { class: 'badge conv-unread' })),
      ),
    );
    return item;
  }

  patch(item, conv) {
    const last = conv.lastMessage;
    let digest = last ? digestOf(last) : '';
    if (last && conv.channel.channelType !== 1 && last.fromUID) {
      digest = `${last.fromUID === this.me ? 'You' : this.names.get(last.fromUID) || last.fromUID}: ${digest}`;
    } else if (last && last.fromUID === this.me) digest = `You: ${digest}`;
    item.querySelector('.conv-digest').textContent = digest || ' ';
    item.querySelector('.conv-time').textContent = formatTime(conv.timestamp);
    const unread = conv.unread || 0;
    const badge = item.querySelector('.conv-unread');
    badge.textContent = unread > 99 ? '99+' : String(unread);
    badge.hidden = unread === 0;
    item.dataset.unread = String(unread);
    item.classList.toggle('has-unread', unread > 0);
    // "@you": a mention reminder of this conversation not done yet (server-synced).
    const reminder = (conv.reminders || []).find((r) => !r.done && r.reminderType === 1);
    const mention = item.querySelector('.conv-mention');
    mention.hidden = !reminder;
    mention.textContent = reminder && /all/i.test(reminder.text || '') ? '@all' : '@you';
    item.dataset.mentioned = reminder ? '1' : '0';
  }

  /** Repaint the presence dots of the direct chats (the online set changed). */
  refreshPresence() {
    if (!this.presence) return;
    for (const dot of this.list.querySelectorAll('.presence-dot')) {
      if (!this.presence.known(dot.dataset.uid)) continue;
      const online = this.presence.isOnline(dot.dataset.uid);
      dot.dataset.online = online ? '1' : '0';
      dot.title = online ? 'Online' : 'Offline';
    }
  }

  setActive(key) {
    this.activeKey = key;
    for (const [k, item] of this.items) {
      item.classList.toggle('is-active', k === key);
      item.setAttribute('aria-selected', String(k === key));
    }
  }
}

/** "Start a chat" list: the demo users one has no conversation with yet. */
export class PeopleView {
  constructor({ onOpen }) {
    this.onOpen = onOpen;
    this.list = h('ul', { class: 'people-list' });
    this.el = h('div', { class: 'people' }, h('h3', { class: 'side-heading' }, 'Start a chat'), this.list);
  }

  render(people) {
    setChildren(
      this.list,
      people.map((p) =>
        h(
          'li',
          {},
          h('button', { type: 'button', class: 'person', dataset: { uid: p.uid }, onclick: () => this.onOpen(p.uid) }, avatar(p.uid, p.name, 'avatar--small'), h('span', {}, p.name)),
        ),
      ),
    );
    this.el.hidden = people.length === 0;
  }
}
