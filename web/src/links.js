// Links to messages, after the page's address:
//   group   "#/m/2/<group id>/<message id>"
//   person  "#/m/1/<uid>/<uid>/<message id>"  (both parties: each reader's peer is the other)

import { Channel } from 'wukongimjssdk/lib/model';

const PREFIX = '#/m/';
const PERSON = 1;

/** The hash naming `messageId` in `channel` as `me` sees it. */
export function linkFor(channel, messageId, me) {
  const id = encodeURIComponent(channel.channelID);
  if (channel.channelType === PERSON) return `${PREFIX}${PERSON}/${encodeURIComponent(me)}/${id}/${messageId}`;
  return `${PREFIX}${channel.channelType}/${id}/${messageId}`;
}

/** {channel, messageId} of a hash made by linkFor, as `me` sees it, or null. */
export function parseLink(hash, me) {
  if (!hash || !hash.startsWith(PREFIX)) return null;
  const parts = hash.slice(PREFIX.length).split('/');
  const type = Number(parts[0]);
  const messageId = parts[parts.length - 1];
  if (!Number.isInteger(type) || type <= 0 || !/^\d{1,20}$/.test(messageId)) return null;
  let names;
  try {
    names = parts.slice(1, -1).map(decodeURIComponent);
  } catch (_err) {
    return null;
  }
  if (names.some((n) => !n)) return null;
  if (type === PERSON) {
    if (names.length !== 2) return null;
    const peer = names[0] === me ? names[1] : names[0];
    return { channel: new Channel(peer, PERSON), messageId };
  }
  if (names.length !== 1) return null;
  return { channel: new Channel(names[0], type), messageId };
}
