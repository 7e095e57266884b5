// Channel members and their roles (docs/conversation.md, *Roles*), through the SDK:
// channelManager.syncSubscribes(channel) asks provider.syncSubscribersCallback, which is
// POST /channel/members {channel_id, channel_type} (a bare array of {uid, role}). The SDK
// merges the answer into its cache by uid, so members that left are returned as deleted
// subscribers. Used for @mention completion and for "may I revoke this" (admins: 1 owner,
// 2 admin).

import { Subscriber } from 'wukongimjssdk/lib/model';
import { rowsOf } from './http.js';

export const ROLE_OWNER = 1;
export const ROLE_ADMIN = 2;

export class Members {
  /** `api`: http.Api; `sdk`: WKSDK.shared(). */
  constructor(api, sdk) {
    this.api = api;
    this.sdk = sdk;
  }

  /** The provider behind channelManager.syncSubscribes (the SDK passes a version: unused). */
  async provide(channel) {
    const body = await this.api.post('/channel/members', { channel_id: channel.channelID, channel_type: channel.channelType });
    const rows = rowsOf(body, '/channel/members');
    const present = new Set(rows.map((r) => r.uid));
    const subscribers = rows.map((row) => toSubscriber(row, channel, false));
    for (const old of this.sdk.channelManager.getSubscribes(channel)) {
      if (!present.has(old.uid)) subscribers.push(toSubscriber({ uid: old.uid, role: old.role }, channel, true));
    }
    return subscribers;
  }

  /** Load (or refresh) a channel's members; never throws. */
  async load(channel) {
    try {
      await this.sdk.channelManager.syncSubscribes(channel);
    } catch (err) {
      console.warn('[magpie] members failed', err);
    }
    return this.list(channel);
  }

  /** The cached members of a channel (SDK Subscriber objects). */
  list(channel) {
    return this.sdk.channelManager.getSubscribes(channel);
  }

  /** The role of `uid` in the channel (0 when unknown). */
  role(channel, uid) {
    const found = this.list(channel).find((s) => s.uid === uid);
    return found ? found.role || 0 : 0;
  }

  /** Whether `uid` is an owner or admin of a group. */
  isAdmin(channel, uid) {
    if (!channel || channel.channelType === 1) return false;
    const role = this.role(channel, uid);
    return role === ROLE_OWNER || role === ROLE_ADMIN;
  }
}

function toSubscriber(row, channel, deleted) {
  const s = new Subscriber();
  s.uid = String(row.uid);
  s.role = Number(row.role) || 0;
  s.channel = channel;
  s.version = 0;
  s.isDeleted = deleted;
  s.name = '';
  s.remark = '';
  s.avatar = '';
  s.status = 0;
  s.orgData = row;
  return s;
}
