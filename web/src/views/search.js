// The search box: POST /message/search over the caller's readable channels (newest first,
// paged by message id). Results replace the conversation list while the box holds a query;
// clicking one opens its conversation scrolled to the message (ChatApp.revealMessage).

import { h, formatTime, setChildren } from '../dom.js';
import { digestOf, toMessage } from '../convert.js';

/** Results per page. */
const PAGE = 20;
/** Wait after the last key before asking (ms). */
const DEBOUNCE_MS = 250;

export class SearchView {
  /**
   * @param api       http.Api
   * @param names     uid -> display name
   * @param me        the user's uid
   * @param onOpen    (channel, messageId) -> open the conversation at the message
   * @param onActive  (bool) -> results shown (true) or the conversation list back (false)
   */
  constructor({ api, names, me, onOpen, onActive }) {
    this.api = api;
    this.names = names;
    this.me = me;
    this.onOpen = onOpen;
    this.onActive = onActive;
    this.query = '';
    this.next = null;
    this.asked = 0; // the newest request: older answers are dropped
    this.input = h('input', {
      type: 'search',
      class: 'search-input',
      placeholder: 'Search messages',
      'aria-label': 'Search messages',
      maxlength: '200',
      oninput: () => this.typed(),
      onkeydown: (e) => {
        if (e.key === 'Enter') {
          e.preventDefault();
          this.run(this.input.value);
        } else if (e.key === 'Escape') this.clear();
      },
    });
    this.list = h('ul', { class: 'search-results', role: 'listbox', 'aria-label': 'Search results' });
    this.note = h('p', { class: 'search-note', role: 'status', 'aria-live': 'polite' });
    this.more = h('button', { type: 'button', class: 'btn btn--ghost btn--small search-more', hidden: true, onclick: () => this.page() }, 'More results');
    this.panel = h('div', { class: 'search-panel', hidden: true }, h('h3', { class: 'side-heading' }, 'Search results'), this.note, this.list, this.more);
    this.el = h('div', { class: 'search' }, this.input);
  }

  typed() {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.run(this.input.value), DEBOUNCE_MS);
  }

  clear() {
    this.input.value = '';
    this.run('');
  }

  async run(text) {
    clearTimeout(this.timer);
    const query = String(text || '').trim();
    if (query === this.query && query) return;
    this.query = query;
    this.next = null;
    setChildren(this.list, []);
    this.more.hidden = true;
    if (!query) {
      this.panel.hidden = true;
      this.onActive(false);
      return;
    }
    this.panel.hidden = false;
    this.onActive(true);
    this.note.textContent = 'Searching…';
    await this.page();
  }

  async page() {
    const ask = ++this.asked;
    const body = { keyword: this.query, limit: PAGE };
    if (this.next) body.before_message_id = this.next;
    let answer;
    try {
      answer = await this.api.post('/message/search', body);
    } catch (err) {
      if (ask === this.asked) this.note.textContent = err.status === 400 ? 'Type letters or digits to search.' : `Search failed: ${err.message}`;
      return;
    }
    if (ask !== this.asked) return;
    const data = (answer && answer.data) || {};
    const found = Array.isArray(data.messages) ? data.messages : [];
    for (const resp of found) this.list.append(this.item(resp));
    this.next = data.more ? data.next : null;
    this.more.hidden = !this.next;
    const n = this.list.children.length;
    this.note.textContent = n ? `${n}${this.next ? '+' : ''} message${n === 1 ? '' : 's'}` : `No messages match “${this.query}”.`;
  }

  item(resp) {
    const message = toMessage(resp);
    const channel = message.channel;
    const where = channel.channelType === 1 ? this.names.get(channel.channelID) || channel.channelID : `#${channel.channelID}`;
    const who = message.fromUID === this.me ? 'You' : this.names.get(message.fromUID) || message.fromUID;
    const open = () => this.onOpen(channel, message.messageID);
    return h(
      'li',
      {
        class: 'search-hit',
        role: 'option',
        tabindex: '0',
        dataset: { messageId: message.messageID, channelId: channel.channelID, channelType: String(channel.channelType) },
        onclick: open,
        onkeydown: (e) => {
          if (e.key === 'Enter' || e.key === ' ') {
            e.preventDefault();
            open();
          }
        },
      },
      h('div', { class: 'search-top' }, h('span', { class: 'search-where' }, where), h('time', { class: 'search-time' }, formatTime(message.timestamp))),
      h('div', { class: 'search-text' }, h('strong', {}, `${who}: `), digestOf(message)),
    );
  }
}
