// The chat page: wires the official SDK (wukongimjssdk 1.0.4) to the views.
//
//   SDK config     uid, token, addr (from the login), deviceFlag 1 (web)
//   providers      syncConversationsCallback -> POST /conversation/sync
//                  syncMessagesCallback      -> POST /channel/messagesync
//                  syncMessageExtraCallback  -> POST /message/extra/sync
//   listeners      connect status -> indicator (+ resync after a reconnect)
//                  messages       -> cache + message list (dedup by id, I4)
//                  message status -> SENDACK: the local echo gets its id and seq
//                  CMD syncMessageExtra -> chatManager.syncMessageExtras(channel, highest)
//                  conversations  -> conversation list (unread counts)
//
// The SDK is a set of singletons: one user per page (a tab, or a browser context in tests).

import WKSDK from 'wukongimjssdk';
import { Channel, MessageStatus } from 'wukongimjssdk/lib/model';
import { h, avatar } from './dom.js';
import { rowsOf } from './http.js';
import { idString, toConversation, toMessage, toMessageExtra } from './convert.js';
import { ExtrasSync } from './extras.js';
import { MessageCache, messageKey } from './state.js';
import { CardController } from './cards/card.js';
import { CardFormDialog } from './cards/create.js';
import { ComposerView } from './views/composer.js';
import { ConversationListView, PeopleView } from './views/conversations.js';
import { MessageListView } from './views/messages.js';
import { StatusView } from './views/status.js';

/** Messages per history page. */
const PAGE = 30;
/** Recent messages per conversation asked from /conversation/sync (for the digest). */
const RECENTS = 1;
/** SDK heartbeat (ms): a dead socket is noticed after 4 missed pongs. */
const HEARTBEAT_MS = 20000;
const CMD_SYNC_EXTRA = 'syncMessageExtra';

const ConnectStatus = { Disconnect: 0, Connected: 1, Connecting: 2, ConnectFail: 3, ConnectKick: 4 };

export class ChatApp {
  /**
   * @param root     element to render into
   * @param session  {uid, token, ws_addr, api_base}
   * @param api      http.Api with the user's token
   * @param people   [{uid, name}] demo users (may be empty)
   * @param onLogout called after the user logged out
   */
  constructor(root, session, api, people, onLogout) {
    this.root = root;
    this.session = session;
    this.me = session.uid;
    this.api = api;
    this.people = people;
    this.onLogout = onLogout;
    this.names = new Map(people.map((p) => [p.uid, p.name]));
    this.sdk = WKSDK.shared();
    this.cache = new MessageCache();
    this.extras = new ExtrasSync(this.sdk, this.cache, (state, keys) => this.onExtrasApplied(state, keys));
    this.cards = new CardController(api, this.me, { names: this.names, people });
    this.cardForm = new CardFormDialog({ api, me: this.me, people, names: this.names });
    this.openChannel = null;
    this.everConnected = false;
    this.sending = new Map(); // clientSeq -> message (local echoes awaiting SENDACK)
    this.readSeqs = loadReadSeqs(this.me);
    this.api.holdsData = () => this.cache.holdsData();
    this.api.onEpochChange(() => this.onStoreReplaced());
  }

  /**
   * The server's store epoch changed (a restore, another store), or the first epoch came
   * while the page held data of unknown origin (I7): every cached message, cursor and card
   * version is dropped, and what is shown is loaded again from the server.
   */
  onStoreReplaced() {
    console.warn('[magpie] the server store changed: dropping the cached messages');
    this.cards.reset(); // card versions restart with the store: accept whatever comes next
    this.cache.clear();
    this.extras.reset(); // nothing cached is left to reset: in-flight pulls are ignored
    const channel = this.openChannel;
    if (channel) this.messages.show(this.cache.get(channel));
    // After the request that noticed it has finished with the old state.
    setTimeout(() => this.reloadAfterReset(), 0);
  }

  async reloadAfterReset() {
    await this.syncConversations();
    const channel = this.openChannel;
    if (!channel) return;
    const state = this.cache.get(channel);
    if (!state.loaded) await this.loadLatest(state);
    if (this.openChannel === channel) await this.extras.sync(channel);
  }

  start() {
    this.buildLayout();
    this.configureSdk();
    this.addListeners();
    this.status.set('connecting');
    this.sdk.connect();
    this.syncConversations();
    window.magpie = this; // for debugging in the console (and browser tests)
  }

  // --- layout ------------------------------------------------------------------------------

  buildLayout() {
    this.status = new StatusView();
    this.conversations = new ConversationListView({ me: this.me, names: this.names, onOpen: (c) => this.open(c) });
    this.peopleView = new PeopleView({ onOpen: (uid) => this.open(new Channel(uid, 1)) });
    this.messages = new MessageListView({ me: this.me, names: this.names, cards: this.cards, onLoadOlder: () => this.loadOlder() });
    this.composer = new ComposerView((text) => this.sendText(text), { onNewCard: (type) => this.openChannel && this.cardForm.open(type, this.openChannel) });
    this.headerTitle = h('h2', { class: 'chat-title' }, 'Magpie');
    this.headerSub = h('p', { class: 'chat-sub' }, '');
    const me = this.names.get(this.me) || this.me;
    const sidebar = h(
      'aside',
      { class: 'sidebar' },
      h(
        'div',
        { class: 'me' },
        avatar(this.me, me),
        h('div', { class: 'me-text' }, h('strong', { class: 'me-name', dataset: { uid: this.me } }, me), this.status.el),
        h('button', { type: 'button', class: 'btn btn--ghost btn--small logout', onclick: () => this.logout() }, 'Log out'),
      ),
      h('h3', { class: 'side-heading' }, 'Conversations'),
      this.conversations.el,
      this.peopleView.el,
      h('p', { class: 'brand' }, h('span', { class: 'brand-mark' }, '◆'), ' Magpie · WuKongIM JS SDK 1.0.4'),
    );
    const main = h('main', { class: 'chat' }, h('header', { class: 'chat-header' }, this.headerTitle, this.headerSub), this.messages.el, this.composer.el);
    this.root.replaceChildren(h('div', { class: 'app' }, sidebar, main));
    this.renderPeople();
  }

  renderPeople() {
    const known = new Set((this.sdk.conversationManager.conversations || []).filter((c) => c.channel.channelType === 1).map((c) => c.channel.channelID));
    this.peopleView.render(this.people.filter((p) => p.uid !== this.me && !known.has(p.uid)));
  }

  title(channel) {
    return channel.channelType === 1 ? this.names.get(channel.channelID) || channel.channelID : channel.channelID;
  }

  // --- SDK ---------------------------------------------------------------------------------

  configureSdk() {
    const config = this.sdk.config;
    config.uid = this.me;
    config.token = this.session.token;
    config.addr = this.session.ws_addr;
    config.deviceFlag = 1;
    config.protoVersion = 2;
    config.heartbeatInterval = HEARTBEAT_MS;
    const provider = config.provider;
    provider.syncConversationsCallback = () => this.provideConversations();
    provider.syncMessagesCallback = (channel, opts) => this.provideMessages(channel, opts);
    provider.syncMessageExtraCallback = (channel, extraVersion, limit) => this.provideExtras(channel, extraVersion, limit);
    // SDK 1.0.4 keeps its heartbeat timer running while it reconnects, and WebSocket.send on
    // a socket that is still CONNECTING throws from inside that timer (an uncaught error).
    // A packet that cannot be written now is not lost: SENDs stay in the SDK's sending queue
    // and are flushed after the next CONNACK; a missed PING does not matter.
    const connectManager = this.sdk.connectManager;
    const sendPacket = connectManager.sendPacket.bind(connectManager);
    connectManager.sendPacket = (packet) => {
      try {
        sendPacket(packet);
      } catch (err) {
        console.warn('[magpie] packet not written (socket not open); the SDK resends it', err);
      }
    };
    // Read receipts are not sent by this page; the receipt manager only needs the hook set.
    provider.messageReadedCallback = async () => {};
    provider.syncRemindersCallback = async () => [];
  }

  async provideConversations() {
    const body = await this.api.post('/conversation/sync', { uid: this.me, version: 0, msg_count: RECENTS });
    return rowsOf(body, '/conversation/sync').map((row) => {
      const conv = toConversation(row);
      const read = this.readSeqs[conv.channel.getChannelKey()] || 0;
      const last = conv.extra.lastMsgSeq;
      if (read > 0) conv.unread = Math.max(0, Math.min(conv.unread, last - read));
      return conv;
    });
  }

  async provideMessages(channel, opts) {
    const body = await this.api.post('/channel/messagesync', {
      login_uid: this.me,
      channel_id: channel.channelID,
      channel_type: channel.channelType,
      start_message_seq: opts.startMessageSeq || 0,
      end_message_seq: opts.endMessageSeq || 0,
      limit: opts.limit || PAGE,
      pull_mode: opts.pullMode || 0,
    });
    return ((body && body.messages) || []).map(toMessage);
  }

  async provideExtras(channel, extraVersion, limit) {
    const body = await this.api.post('/message/extra/sync', {
      channel_id: channel.channelID,
      channel_type: channel.channelType,
      extra_version: extraVersion,
      limit,
    });
    return rowsOf(body, '/message/extra/sync').map((row) => toMessageExtra(row, channel));
  }

  addListeners() {
    const sdk = this.sdk;
    sdk.connectManager.addConnectStatusListener((status, reason) => this.onConnectStatus(status, reason));
    sdk.chatManager.addMessageListener((message) => this.onMessage(message));
    sdk.chatManager.addMessageStatusListener((ack) => this.onSendack(ack));
    sdk.chatManager.addCMDListener((message) => this.onCmd(message));
    sdk.conversationManager.addConversationListener(() => this.renderConversations());
    // The browser knows first when the network goes away: drop the socket then, and connect
    // again (and resync) as soon as it is back, instead of waiting for missed heartbeats.
    window.addEventListener('offline', () => {
      sdk.disconnect();
      this.status.set('offline');
    });
    window.addEventListener('online', () => {
      this.status.set('connecting');
      sdk.connect();
    });
  }

  onConnectStatus(status, reason) {
    // Runs inside the SDK's decode try/catch (spec §3): never throw from here.
    try {
      if (status === ConnectStatus.Connected) {
        this.status.set('connected');
        if (this.everConnected) this.resync();
        this.everConnected = true;
      } else if (status === ConnectStatus.Disconnect) {
        this.status.set(navigator.onLine ? 'reconnecting' : 'offline');
        for (const state of this.cache.all()) state.stale = true;
      } else if (status === ConnectStatus.ConnectFail) {
        this.status.set('failed', `reason code ${reason}`);
      } else if (status === ConnectStatus.ConnectKick) {
        this.status.set('kicked', `reason code ${reason}`);
      }
    } catch (err) {
      console.error('[magpie] status listener', err);
    }
  }

  /** After a reconnect: conversations, the open channel's missed messages and extras. */
  resync() {
    this.syncConversations();
    if (this.openChannel) {
      const state = this.cache.get(this.openChannel);
      this.catchUp(state).then(() => this.extras.sync(state.channel));
    }
  }

  async syncConversations() {
    try {
      await this.sdk.conversationManager.sync({});
    } catch (err) {
      console.warn('[magpie] conversation sync failed', err);
    }
    this.renderConversations();
  }

  renderConversations() {
    const cm = this.sdk.conversationManager;
    const list = cm.conversations || [];
    if (this.openChannel) {
      const open = list.find((c) => c.channel.isEqual(this.openChannel));
      if (open) {
        open.unread = 0;
        cm.openConversation = open;
      }
    }
    this.conversations.render(list);
    this.conversations.setActive(this.openChannel ? this.openChannel.getChannelKey() : '');
    this.renderPeople();
  }

  // --- channels and history ----------------------------------------------------------------

  async open(channel) {
    const cm = this.sdk.conversationManager;
    let conv = cm.findConversation(channel);
    if (!conv) {
      conv = cm.createEmptyConversation(channel);
      if (!cm.findConversation(channel)) cm.conversations = [conv, ...(cm.conversations || [])];
    }
    cm.openConversation = conv;
    this.openChannel = channel;
    const state = this.cache.get(channel);
    this.headerTitle.textContent = this.title(channel);
    this.headerSub.textContent = channel.channelType === 1 ? 'Direct chat' : 'Group';
    this.messages.show(state);
    this.composer.setEnabled(true);
    this.markRead(conv);
    this.renderConversations();
    if (!state.loaded) await this.loadLatest(state);
    else if (state.stale) await this.catchUp(state);
    if (this.openChannel !== channel) return;
    this.markRead(conv);
    this.composer.focus();
    await this.extras.sync(channel);
  }

  markRead(conv) {
    conv.unread = 0;
    const key = conv.channel.getChannelKey();
    const state = this.cache.peek(conv.channel);
    const seq = Math.max(state ? state.maxSeq : 0, (conv.extra && conv.extra.lastMsgSeq) || 0, (conv.lastMessage && conv.lastMessage.messageSeq) || 0);
    if (seq > (this.readSeqs[key] || 0)) {
      this.readSeqs[key] = seq;
      saveReadSeqs(this.me, this.readSeqs);
    }
  }

  addToCache(state, messages) {
    const added = [];
    for (const message of messages) {
      this.extras.adopt(state, message);
      if (state.add(message)) added.push(message);
    }
    return added;
  }

  async loadLatest(state) {
    try {
      const messages = await this.sdk.chatManager.syncMessages(state.channel, { startMessageSeq: 0, endMessageSeq: 0, limit: PAGE, pullMode: 0 });
      this.addToCache(state, messages);
      state.loaded = true;
      state.stale = false;
      if (this.isOpen(state)) this.messages.show(state);
    } catch (err) {
      console.warn('[magpie] history failed', err);
    }
  }

  async loadOlder() {
    const state = this.openChannel && this.cache.get(this.openChannel);
    if (!state || !state.hasOlder) return;
    this.messages.updateOlder(true);
    try {
      const messages = await this.sdk.chatManager.syncMessages(state.channel, { startMessageSeq: state.minSeq - 1, endMessageSeq: 0, limit: PAGE, pullMode: 0 });
      const added = this.addToCache(state, messages);
      if (this.isOpen(state)) this.messages.prepend(added);
    } finally {
      this.messages.updateOlder(false);
    }
  }

  /** Messages newer than the newest cached one (after missing live traffic). */
  async catchUp(state) {
    state.stale = false;
    for (let page = 0; page < 100; page++) {
      let messages;
      try {
        messages = await this.sdk.chatManager.syncMessages(state.channel, { startMessageSeq: state.maxSeq + 1, endMessageSeq: 0, limit: PAGE, pullMode: 1 });
      } catch (err) {
        console.warn('[magpie] catch-up failed', err);
        state.stale = true;
        return;
      }
      const added = this.addToCache(state, messages);
      if (this.isOpen(state)) for (const m of added) this.messages.upsert(m);
      if (messages.length < PAGE) break;
    }
  }

  isOpen(state) {
    return Boolean(this.openChannel && this.openChannel.getChannelKey() === state.key);
  }

  // --- live traffic ------------------------------------------------------------------------

  onMessage(message) {
    const state = this.cache.get(message.channel);
    if (message.status === MessageStatus.Wait) {
      this.sending.set(message.clientSeq, message); // own local echo, awaiting SENDACK
    } else {
      message.messageID = idString(message.messageID);
      this.extras.adopt(state, message);
    }
    if (!state.add(message)) return; // a repeated delivery (I4)
    if (this.isOpen(state)) {
      this.messages.upsert(message);
      const conv = this.sdk.conversationManager.findConversation(message.channel);
      if (conv) this.markRead(conv);
    }
  }

  onSendack(ack) {
    const message = this.sending.get(ack.clientSeq);
    if (!message) return;
    this.sending.delete(ack.clientSeq);
    const state = this.cache.get(message.channel);
    const oldKey = messageKey(message);
    if (ack.reasonCode === 1) {
      message.messageID = idString(ack.messageID);
      message.messageSeq = ack.messageSeq;
      message.status = MessageStatus.Normal;
      state.rekey(oldKey, message);
      this.extras.adopt(state, message);
    } else {
      message.status = MessageStatus.Fail;
    }
    if (this.isOpen(state)) {
      if (ack.reasonCode === 1) this.messages.rekey(oldKey, message);
      else this.messages.upsert(message);
    }
  }

  onCmd(message) {
    const content = message.content || {};
    if (content.cmd !== CMD_SYNC_EXTRA) return;
    const param = content.param || {};
    const channel =
      message.channel && message.channel.channelID ? message.channel : param.channel_id ? new Channel(String(param.channel_id), Number(param.channel_type)) : null;
    if (!channel) return;
    this.extras.sync(channel, Number(param.extra_version) || 0);
  }

  onExtrasApplied(state, keys) {
    if (this.isOpen(state)) this.messages.refresh(keys);
    else for (const key of keys) {
      const message = state.messages.get(String(key));
      if (message) this.cards.refresh(message);
    }
  }

  sendText(text) {
    if (!this.openChannel) return;
    const content = this.sdk.newMessageText(text);
    // The SDK queues the SEND and re-sends it after the next CONNACK if the socket is down.
    this.sdk.chatManager.send(content, this.openChannel).catch((err) => console.warn('[magpie] send deferred', err));
  }

  logout() {
    try {
      this.sdk.disconnect();
    } catch (_err) {
      // already disconnected
    }
    this.onLogout();
  }
}

function readKey(uid) {
  return `magpie.read.${uid}`;
}

/** Read positions per channel (the API has no user-token clearUnread yet). */
function loadReadSeqs(uid) {
  try {
    return JSON.parse(localStorage.getItem(readKey(uid)) || '{}') || {};
  } catch (_err) {
    return {};
  }
}

function saveReadSeqs(uid, seqs) {
  try {
    localStorage.setItem(readKey(uid), JSON.stringify(seqs));
  } catch (_err) {
    // storage full or disabled: unread counts just come back after a reload
  }
}
