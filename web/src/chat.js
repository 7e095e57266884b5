// The chat page: wires the official SDK (wukongimjssdk 1.0.4) to the views.
//
//   SDK config     uid, token, addr (from the login), deviceFlag 1 (web)
//   providers      syncConversationsCallback -> POST /conversation/sync
//                  syncMessagesCallback      -> POST /channel/messagesync
//                  syncMessageExtraCallback  -> POST /message/extra/sync
//                  syncSubscribersCallback   -> POST /channel/members (members.js)
//                  messageUploadTaskCallback -> UploadTask: POST /file/upload (upload.js)
//   listeners      connect status -> indicator (+ resync after a reconnect)
//                  messages       -> cache + message list (dedup by id, I4)
//                  message status -> SENDACK: the local echo gets its id and seq
//                  CMD syncMessageExtra -> chatManager.syncMessageExtras(channel, highest)
//                  CMD syncMessageReaction -> POST /reaction/sync (reactions.js)
//                  CMD typing     -> "Bob is typing…" (typing.js)
//                  CMD cardEphemeral -> a note under the card for this user (cards/card.js)
//                  conversations  -> conversation list (unread counts)
//   actions        a message's action bar: react, reply, edit, revoke, copy link
//   presence       POST /channel/online: dots on avatars and direct chats (presence.js)
//   search         POST /message/search: results open the message (views/search.js)
//
// The SDK is a set of singletons: one user per page (a tab, or a browser context in tests).

import WKSDK from 'wukongimjssdk';
import { Channel, ConversationExtra, Mention, MessageStatus, Reply } from 'wukongimjssdk/lib/model';
import { Setting } from 'wukongimjssdk/lib/proto';
import { h, avatar } from './dom.js';
import { rowsOf } from './http.js';
import { idString, toConversation, toMessage, toMessageExtra } from './convert.js';
import { ExtrasSync } from './extras.js';
import { MessageCache, messageKey } from './state.js';
import { FileContent, ImageContent, registerContents } from './content.js';
import { Members } from './members.js';
import { ReactionSync, applyRow, carryOver, hasReacted } from './reactions.js';
import { TypingNotifier, TypingState, TypingView } from './typing.js';
import { Media, UploadTask, imageSize } from './upload.js';
import { linkFor, parseLink } from './links.js';
import { ReadState } from './readstate.js';
import { Presence } from './presence.js';
import { CardController } from './cards/card.js';
import { CardFormDialog } from './cards/create.js';
import { ComposerView, MENTION_ALL } from './views/composer.js';
import { ConversationListView, PeopleView } from './views/conversations.js';
import { MessageListView, previewOf, textOf } from './views/messages.js';
import { SearchView } from './views/search.js';
import { StatusView } from './views/status.js';

/** Messages per history page. */
const PAGE = 30;
/** Recent messages per conversation asked from /conversation/sync (for the digest). */
const RECENTS = 1;
/** SDK heartbeat (ms): a dead socket is noticed after 4 missed pongs. */
const HEARTBEAT_MS = 20000;
const CMD_SYNC_EXTRA = 'syncMessageExtra';
const CMD_SYNC_REACTION = 'syncMessageReaction';
const CMD_TYPING = 'typing';
const CMD_UNREAD_CLEAR = 'unreadClear';
const CMD_SYNC_REMINDERS = 'syncReminders';
const CMD_CARD_EPHEMERAL = 'cardEphemeral';
/** Older pages a message link may load to find its message. */
const LINK_PAGES = 10;

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
    this.reactions = new ReactionSync(api, this.cache, (state, keys) => this.onExtrasApplied(state, keys));
    this.members = new Members(api, this.sdk);
    this.typingOut = new TypingNotifier(api);
    this.typing = new TypingState((key) => this.onTypingChanged(key));
    this.media = new Media(api);
    this.uploading = new Set(); // clientSeqs of messages whose upload has not finished
    this.cards = new CardController(api, this.me, { names: this.names, people });
    this.cardForm = new CardFormDialog({ api, me: this.me, people, names: this.names });
    this.openChannel = null;
    this.everConnected = false;
    this.sending = new Map(); // clientSeq -> message (local echoes awaiting SENDACK)
    this.read = new ReadState(api, this.sdk, this.me);
    this.presence = new Presence(api, () => this.onPresenceChanged());
    this.api.holdsData = () => this.cache.holdsData();
    this.api.onRefused(() => this.onTokenRefused());
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
    this.read.reset();
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
    if (this.openChannel === channel) await Promise.all([this.extras.sync(channel), this.reactions.sync(channel)]);
  }

  start() {
    this.buildLayout();
    this.configureSdk();
    this.addListeners();
    this.status.set('connecting');
    this.sdk.connect();
    this.syncConversations().then(() => {
      this.read.syncReminders();
      this.followLink();
      this.presence.start(() => this.presenceChannels());
    });
    window.addEventListener('hashchange', () => this.followLink());
    window.magpie = this; // for debugging in the console (and browser tests)
  }

  // --- layout ------------------------------------------------------------------------------

  buildLayout() {
    this.status = new StatusView();
    this.conversations = new ConversationListView({ me: this.me, names: this.names, onOpen: (c) => this.open(c), presence: this.presence });
    this.search = new SearchView({
      api: this.api,
      names: this.names,
      me: this.me,
      onOpen: (channel, messageId) => this.revealMessage(channel, messageId),
      onActive: (on) => {
        this.searching = on;
        for (const el of this.listParts) el.hidden = on;
        this.renderPeople();
      },
    });
    this.peopleView = new PeopleView({ onOpen: (uid) => this.open(new Channel(uid, 1)) });
    this.messages = new MessageListView({
      me: this.me,
      names: this.names,
      cards: this.cards,
      onLoadOlder: () => this.loadOlder(),
      actions: { can: (name, message) => this.can(name, message), run: (name, message, arg, anchor) => this.act(name, message, arg, anchor) },
      media: this.media,
      presence: this.presence,
    });
    this.composer = new ComposerView((draft) => this.send(draft), {
      onNewCard: (type) => this.openChannel && this.cardForm.open(type, this.openChannel),
      onTyping: () => this.typingOut.typed(this.openChannel),
      onFiles: (files) => this.sendFiles(files),
      mentionCandidates: () => this.mentionCandidates(),
    });
    this.typingView = new TypingView();
    this.toast = h('div', { class: 'toast', role: 'status', 'aria-live': 'polite', hidden: true });
    this.headerTitle = h('h2', { class: 'chat-title' }, 'Magpie');
    this.headerSub = h('p', { class: 'chat-sub' }, '');
    this.backButton = h('button', { type: 'button', class: 'btn btn--ghost btn--small chat-back', 'aria-label': 'Back to conversations', onclick: () => this.showList() }, '‹');
    const me = this.names.get(this.me) || this.me;
    this.listParts = [h('h3', { class: 'side-heading' }, 'Conversations'), this.conversations.el, this.peopleView.el];
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
      this.search.el,
      this.search.panel,
      ...this.listParts,
      h('p', { class: 'brand' }, h('span', { class: 'brand-mark' }, '◆'), ' Magpie · WuKongIM JS SDK 1.0.4'),
    );
    const main = h(
      'main',
      { class: 'chat' },
      h('header', { class: 'chat-header' }, this.backButton, h('div', { class: 'chat-heading' }, this.headerTitle, this.headerSub)),
      this.messages.el,
      h('footer', { class: 'chat-foot' }, this.typingView.el, this.composer.el),
      this.toast,
    );
    this.composer.attachDropTarget(main);
    this.appEl = h('div', { class: 'app' }, sidebar, main);
    this.root.replaceChildren(this.appEl);
    this.renderPeople();
  }

  renderPeople() {
    const known = new Set((this.sdk.conversationManager.conversations || []).filter((c) => c.channel.channelType === 1).map((c) => c.channel.channelID));
    this.peopleView.render(this.people.filter((p) => p.uid !== this.me && !known.has(p.uid)));
    if (this.searching) this.peopleView.el.hidden = true;
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
    provider.syncSubscribersCallback = (channel) => this.members.provide(channel);
    provider.messageUploadTaskCallback = (message) => this.uploadTask(message);
    registerContents(this.sdk);
    // SDK 1.0.4 keeps its heartbeat timer running while it reconnects, and WebSocket.send on
    // a socket that is still CONNECTING throws from inside that timer (an uncaught error).
    // A packet that cannot be written now is not lost: SENDs stay in the SDK's sending queue
    // and are flushed after the next CONNACK; a missed PING does not matter.
    const connectManager = this.sdk.connectManager;
    const sendPacket = connectManager.sendPacket.bind(connectManager);
    connectManager.sendPacket = (packet) => {
      // The SDK re-sends its whole sending queue after a CONNACK, including a media message
      // whose upload is still running: that one goes out when its upload task succeeds.
      if (packet && packet.clientSeq && this.uploading.has(packet.clientSeq)) return;
      try {
        sendPacket(packet);
      } catch (err) {
        console.warn('[magpie] packet not written (socket not open); the SDK resends it', err);
      }
    };
    provider.messageReadedCallback = (channel, messages) => this.read.provideReaded(channel, messages);
    provider.syncRemindersCallback = (version) => this.read.provideReminders(version);
    provider.reminderDoneCallback = (ids) => this.read.provideReminderDone(ids);
    provider.syncConversationExtrasCallback = (version) => this.provideConversationExtras(version);
  }

  async provideConversations() {
    const body = await this.api.post('/conversation/sync', { uid: this.me, version: 0, msg_count: RECENTS });
    // Unread counts are the server's (cleared with this user's token, on any device).
    return rowsOf(body, '/conversation/sync').map((row) => {
      const conv = toConversation(row);
      conv.reminders = this.sdk.reminderManager.getWaitDoneReminders(conv.channel);
      return conv;
    });
  }

  /** provider.syncConversationExtrasCallback: read positions as TSDD conversation extras. */
  async provideConversationExtras(version) {
    const body = await this.api.post('/conversation/extra/sync', { version: version || 0 });
    return rowsOf(body, '/conversation/extra/sync').map((row) => {
      const extra = new ConversationExtra();
      extra.channel = new Channel(String(row.channel_id), Number(row.channel_type));
      extra.browseTo = Number(row.browse_to) || 0;
      extra.keepMessageSeq = Number(row.keep_message_seq) || 0;
      extra.keepOffsetY = Number(row.keep_offset_y) || 0;
      extra.draft = row.draft || '';
      extra.version = Number(row.version) || 0;
      return extra;
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
    document.addEventListener('visibilitychange', () => this.onVisible());
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
    this.syncConversations().then(() => this.read.syncReminders());
    if (this.openChannel) {
      const state = this.cache.get(this.openChannel);
      this.catchUp(state).then(() => Promise.all([this.extras.sync(state.channel), this.reactions.sync(state.channel)]));
      this.members.load(state.channel);
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
    if (this.reading()) {
      const open = list.find((c) => c.channel.isEqual(this.openChannel));
      if (open) {
        cm.openConversation = open;
        if (open.unread > 0) this.markRead(open);
      }
    }
    this.conversations.render(list);
    this.conversations.refreshPresence();
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
    const switched = !this.openChannel || !this.openChannel.isEqual(channel);
    this.openChannel = channel;
    const state = this.cache.get(channel);
    this.headerTitle.textContent = this.title(channel);
    this.paintHeaderPresence();
    this.presence.refresh(channel);
    this.appEl.classList.add('is-chat-open');
    this.messages.show(state);
    if (switched) this.composer.clearMode();
    this.composer.setEnabled(true);
    this.onTypingChanged(channel.getChannelKey());
    this.members.load(channel).then(() => this.openChannel === channel && this.messages.refresh([...state.messages.keys()]));
    this.markRead(conv);
    this.renderConversations();
    if (!state.loaded) await this.loadLatest(state);
    else if (state.stale) await this.catchUp(state);
    if (this.openChannel !== channel) return;
    this.markRead(conv);
    if (!matchMedia('(max-width: 760px)').matches) this.composer.focus();
    await Promise.all([this.extras.sync(channel), this.reactions.sync(channel)]);
  }

  /** The open chat's subtitle: a direct chat says whether the peer is online. */
  paintHeaderPresence() {
    const channel = this.openChannel;
    if (!channel) return;
    if (channel.channelType !== 1) {
      this.headerSub.textContent = 'Group';
      return;
    }
    const peer = channel.channelID;
    const state = this.presence.known(peer) ? (this.presence.isOnline(peer) ? ' · Online' : ' · Offline') : '';
    this.headerSub.textContent = `Direct chat${state}`;
    this.headerSub.dataset.online = this.presence.known(peer) ? (this.presence.isOnline(peer) ? '1' : '0') : '';
  }

  onPresenceChanged() {
    this.messages.refreshPresence();
    this.conversations.refreshPresence();
    this.paintHeaderPresence();
  }

  /** The channels whose members' presence is shown: the open one, then the direct chats. */
  presenceChannels() {
    const out = this.openChannel ? [this.openChannel] : [];
    for (const conv of this.sdk.conversationManager.conversations || []) if (conv.channel.channelType === 1) out.push(conv.channel);
    return out;
  }

  /** Phone width: back from the open chat to the conversation list (nothing is read
   * while the list covers the chat). */
  showList() {
    this.appEl.classList.remove('is-chat-open');
    this.sdk.conversationManager.openConversation = undefined;
  }

  /** Whether the person can see the open chat now (the page is visible, the chat shown). */
  reading() {
    return Boolean(this.openChannel) && document.visibilityState === 'visible' && this.appEl.classList.contains('is-chat-open');
  }

  /** The open conversation is being read: clear its unread count on the server (every
   * device of the user follows), report read receipts, mark its @-reminders done. */
  markRead(conv) {
    if (!this.reading() || !conv.channel.isEqual(this.openChannel)) return;
    conv.unread = 0;
    const state = this.cache.peek(conv.channel);
    const seq = Math.max(state ? state.maxSeq : 0, (conv.lastMessage && conv.lastMessage.messageSeq) || 0);
    this.read.clear(conv.channel, seq);
    if (state && state.loaded) this.read.shown(conv.channel, [...state.messages.values()]);
    if (conv.reminders && conv.reminders.some((r) => !r.done)) this.read.doneFor(conv.channel);
  }

  /** The page became visible again: what the open chat shows is read now. */
  onVisible() {
    if (!this.reading()) return;
    const cm = this.sdk.conversationManager;
    const conv = cm.findConversation(this.openChannel);
    if (conv) {
      cm.openConversation = conv;
      this.markRead(conv);
      this.renderConversations();
    }
  }

  addToCache(state, messages) {
    const added = [];
    for (const message of messages) {
      this.extras.adopt(state, message);
      this.adoptReactions(state, message);
      if (state.add(message)) added.push(message);
    }
    return added;
  }

  /** A message entered the cache: its summaries, rows that came before it, state of an older copy. */
  adoptReactions(state, message) {
    this.reactions.adopt(state, message, message.__summaries);
    message.__summaries = undefined;
    carryOver(state.messages.get(messageKey(message)), message);
    this.reactions.take(state, message);
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
      this.adoptReactions(state, message);
      this.typing.stopped(state.key, message.fromUID);
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
    const param = content.param || {};
    const channel =
      message.channel && message.channel.channelID ? message.channel : param.channel_id ? new Channel(String(param.channel_id), Number(param.channel_type)) : null;
    if (!channel) return;
    if (content.cmd === CMD_SYNC_EXTRA) this.extras.sync(channel, Number(param.extra_version) || 0);
    else if (content.cmd === CMD_SYNC_REACTION) this.reactions.sync(channel, Number(param.seq) || 0);
    else if (content.cmd === CMD_TYPING) this.onTypingCmd(param);
    else if (content.cmd === CMD_UNREAD_CLEAR) this.onUnreadClear(param);
    else if (content.cmd === CMD_SYNC_REMINDERS) this.read.syncReminders();
    else if (content.cmd === CMD_CARD_EPHEMERAL) this.cards.ephemeral(param);
  }

  /** CMD unreadClear (sent to the user, so the conversation is the one in `param`, as
   * this user sees it): this user read the conversation on some device. */
  onUnreadClear(param) {
    if (!param.channel_id) return;
    const channel = new Channel(String(param.channel_id), Number(param.channel_type));
    const conv = this.sdk.conversationManager.findConversation(channel);
    if (!conv) return;
    const unread = Math.max(0, Number(param.unread) || 0);
    if (conv.unread === unread) return;
    conv.unread = unread;
    this.renderConversations();
  }

  /** CMD typing: param.channel_id is the channel as this user sees it. */
  onTypingCmd(param) {
    const from = String(param.from_uid || '');
    if (!from || from === this.me || !param.channel_id) return;
    const channel = new Channel(String(param.channel_id), Number(param.channel_type));
    this.typing.notice(channel.getChannelKey(), from, Number(param.expires_in_ms) || 0);
  }

  onTypingChanged(key) {
    if (!this.openChannel || this.openChannel.getChannelKey() !== key) return;
    this.typingView.show(this.typing.who(key).map((uid) => this.names.get(uid) || uid));
  }

  onExtrasApplied(state, keys) {
    if (this.isOpen(state)) this.messages.refresh(keys);
    else for (const key of keys) {
      const message = state.messages.get(String(key));
      if (message) this.cards.refresh(message);
    }
  }

  // --- sending -----------------------------------------------------------------------------

  /** The composer's draft: a new message (maybe a reply, with mentions), or an edit. */
  send({ text, mentionUids = [], mentionAll = false, mode = null }) {
    if (!this.openChannel) return;
    if (mode && mode.kind === 'edit') {
      this.editMessage(mode.message, text);
      return;
    }
    const content = this.sdk.newMessageText(text);
    if (mentionUids.length > 0 || mentionAll) {
      content.mention = new Mention();
      if (mentionUids.length > 0) content.mention.uids = mentionUids;
      if (mentionAll) content.mention.all = true;
    }
    if (mode && mode.kind === 'reply') content.reply = this.replyTo(mode.message);
    this.sendContent(content);
  }

  sendContent(content, channel = this.openChannel) {
    // Every message asks for read receipts, so its sender sees "Read by N".
    const setting = new Setting();
    setting.receiptEnabled = true;
    // The SDK queues the SEND and re-sends it after the next CONNACK if the socket is down.
    return this.sdk.chatManager.send(content, channel, setting).catch((err) => console.warn('[magpie] send deferred', err));
  }

  /** The `reply` object quoting `message` (the server checks it and sets the preview). */
  replyTo(message) {
    const reply = new Reply();
    reply.messageID = String(message.messageID);
    reply.messageSeq = message.messageSeq;
    reply.fromUID = message.fromUID;
    reply.fromName = this.names.get(message.fromUID) || message.fromUID;
    const extra = message.remoteExtra || {};
    reply.content = extra.contentEdit || message.content;
    return reply;
  }

  /** Attachments from the button, a drop or a paste: one message each (images inline). */
  async sendFiles(files) {
    const channel = this.openChannel;
    if (!channel) return;
    for (const file of files) {
      let content;
      if (/^image\/(png|jpeg|gif|webp)$/.test(file.type)) {
        const { width, height } = await imageSize(file);
        content = new ImageContent(file, width, height);
      } else content = new FileContent(file);
      await this.sendContent(content, channel);
    }
  }

  /** provider.messageUploadTaskCallback: the SDK sends the message when this task succeeds. */
  uploadTask(message) {
    this.uploading.add(message.clientSeq);
    message.__uploading = true;
    return new UploadTask(message, this.api, (msg, err) => this.onUploaded(msg, err));
  }

  onUploaded(message, err) {
    this.uploading.delete(message.clientSeq);
    message.__uploading = false;
    if (err) {
      console.warn('[magpie] upload failed', err);
      this.sdk.chatManager.deleteMessageFromSendingQueue(message.clientSeq);
      this.sending.delete(message.clientSeq);
      message.status = MessageStatus.Fail;
      message.__failure = `Upload failed: ${err.code || err.status || err.message}`;
      this.showToast(err.status === 413 ? 'That file is too large to send.' : `The file could not be uploaded (${err.message || err}).`);
    }
    const state = this.cache.get(message.channel);
    if (this.isOpen(state)) this.messages.upsert(message);
  }

  // --- the action bar ----------------------------------------------------------------------

  /** Whether the action bar offers `name` on `message`. */
  can(name, message) {
    const extra = message.remoteExtra || {};
    const sent = Boolean(message.messageID) && message.messageSeq > 0;
    if (!sent || extra.revoke) return false;
    const mine = message.fromUID === this.me;
    switch (name) {
      case 'react':
      case 'reply':
      case 'link':
        return true;
      case 'edit':
        return mine && textOf(message) !== null && message.content.contentType === 1;
      case 'revoke':
        return mine || this.members.isAdmin(message.channel, this.me);
      default:
        return false;
    }
  }

  /** Run an action of a message's bar (or of its reaction chips / reply preview). */
  act(name, message, arg, anchor) {
    switch (name) {
      case 'react':
        return this.toggleReaction(message, arg);
      case 'reply':
        return this.composer.setReply(message, `Replying to ${this.names.get(message.fromUID) || message.fromUID}: ${previewOf((message.remoteExtra || {}).contentEdit || message.content)}`);
      case 'edit':
        return this.composer.setEdit(message, textOf(message) || '', 'Editing your message');
      case 'revoke':
        return this.revokeMessage(message);
      case 'link':
        return this.copyLink(message);
      case 'quoted':
        return this.revealMessage(message.channel, String(arg.messageID));
      case 'readers':
        return this.showReaders(message, anchor);
      default:
        return undefined;
    }
  }

  async toggleReaction(message, emoji) {
    const add = !hasReacted(message, this.me, emoji);
    try {
      const body = await this.api.post('/reactions', {
        channel_id: message.channel.channelID,
        channel_type: message.channel.channelType,
        message_id: String(message.messageID),
        emoji,
        action: add ? 'add' : 'remove',
      });
      const row = body && body.data && body.data.row;
      const state = this.cache.get(message.channel);
      if (row && applyRow(message, row) && this.isOpen(state)) this.messages.refresh([messageKey(message)]);
    } catch (err) {
      this.showToast(err.code === 'too_many_emoji' ? 'This message has as many different reactions as it may have.' : `Reaction failed: ${err.message || err}`);
    }
  }

  async editMessage(message, text) {
    if (text === textOf(message)) return;
    try {
      await this.api.post('/message/edit', {
        message_id: String(message.messageID),
        channel_id: message.channel.channelID,
        channel_type: message.channel.channelType,
        content_edit: { type: 1, content: text },
      });
      await this.extras.sync(message.channel);
    } catch (err) {
      this.showToast(`The message could not be edited: ${err.message || err}`);
    }
  }

  async revokeMessage(message) {
    const mine = message.fromUID === this.me;
    const who = mine ? 'your message' : `${this.names.get(message.fromUID) || message.fromUID}'s message`;
    if (!window.confirm(`Withdraw ${who}? Everybody will see “Message withdrawn”.`)) return;
    try {
      await this.api.post('/message/revoke', {
        message_id: String(message.messageID),
        channel_id: message.channel.channelID,
        channel_type: message.channel.channelType,
      });
      await this.extras.sync(message.channel);
    } catch (err) {
      this.showToast(`The message could not be withdrawn: ${err.message || err}`);
    }
  }

  async copyLink(message) {
    const url = `${location.origin}${location.pathname}${linkFor(message.channel, String(message.messageID), this.me)}`;
    try {
      await navigator.clipboard.writeText(url);
      this.showToast('Link copied');
    } catch (_err) {
      window.prompt('Copy this link', url);
    }
  }

  /** "Read by N" was clicked: who read it (GET /messages/{id}/receipt, the sender's right). */
  async showReaders(message, anchor) {
    const host = anchor && anchor.closest('.msg-ext');
    if (!host) return;
    const open = host.querySelector('.readers-pop');
    if (open) {
      open.remove();
      return;
    }
    const pop = h('div', { class: 'readers-pop', dataset: { testid: 'readers' } }, 'Loading…');
    host.append(pop);
    try {
      const rows = await this.read.readers(message);
      const names = rows.map((r) => this.names.get(r.uid) || r.uid);
      pop.dataset.uids = rows.map((r) => r.uid).join(',');
      pop.textContent = names.length ? `Read by ${names.join(', ')}` : 'Nobody has read it yet';
    } catch (err) {
      pop.textContent = `Could not load the readers (${err.status || err.message})`;
    }
  }

  /** Members for @mention completion: the channel's other members, "@all" for admins. */
  mentionCandidates() {
    const channel = this.openChannel;
    if (!channel || channel.channelType === 1) return [];
    const list = this.members
      .list(channel)
      .filter((s) => s.uid !== this.me)
      .map((s) => ({ uid: s.uid, name: this.names.get(s.uid) || s.uid, role: s.role || 0 }))
      .sort((a, b) => a.name.localeCompare(b.name));
    if (this.members.isAdmin(channel, this.me)) list.unshift({ uid: MENTION_ALL, name: 'all', role: 0 });
    return list;
  }

  // --- message links -----------------------------------------------------------------------

  /** The page's address names a message (#/m/<type>/<channel>/<id>): show it. */
  async followLink() {
    const link = parseLink(location.hash, this.me);
    if (!link) return;
    await this.revealMessage(link.channel, link.messageId);
  }

  /** Open a channel and scroll to one of its messages (loading older pages to find it). */
  async revealMessage(channel, messageId) {
    if (!this.openChannel || !this.openChannel.isEqual(channel)) await this.open(channel);
    const state = this.cache.get(channel);
    for (let page = 0; page < LINK_PAGES && !state.messages.has(messageId) && state.hasOlder; page++) await this.loadOlder();
    if (!this.messages.reveal(messageId)) this.showToast('That message is not available.');
  }

  showToast(text) {
    this.toast.textContent = text;
    this.toast.hidden = false;
    clearTimeout(this.toastTimer);
    this.toastTimer = setTimeout(() => {
      this.toast.hidden = true;
    }, 3500);
  }

  /** The server refused this page's token (a newer login of this user on the web replaced
   * it: one token per user and device kind). Live traffic still arrives on the open socket;
   * anything that needs the HTTP API asks for a new login. */
  onTokenRefused() {
    this.status.set('replaced');
    if (this.sessionBanner) return;
    this.sessionBanner = h(
      'div',
      { class: 'session-banner', role: 'alert', dataset: { testid: 'session-replaced' } },
      h('span', {}, 'You signed in again in another window, so this one can only watch. '),
      h('button', { type: 'button', class: 'btn btn--small btn--primary', onclick: () => this.logout() }, 'Log in again'),
    );
    this.appEl.querySelector('.chat').prepend(this.sessionBanner);
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
