// Presence dots: which people are online. POST /channel/online (members only) answers each
// member of a channel with online 0/1; there is no presence CMD, so the page asks when a
// conversation opens and every POLL_MS for the open channel and the direct chats listed.

/** How often the page asks again (ms). */
const POLL_MS = 8000;
/** Direct chats asked about per round (one request each). */
const MAX_PEERS = 12;

export class Presence {
  /** `onChange()` is called after the online set changed. */
  constructor(api, onChange) {
    this.api = api;
    this.onChange = onChange;
    this.state = new Map(); // uid -> true/false (unknown: absent)
    this.timer = null;
  }

  isOnline(uid) {
    return this.state.get(uid) === true;
  }

  known(uid) {
    return this.state.has(uid);
  }

  /** Ask about the members of `channel` (an SDK Channel). */
  async refresh(channel) {
    if (!channel || this.api.refused) return;
    let rows;
    try {
      rows = await this.api.post('/channel/online', { channel_id: channel.channelID, channel_type: channel.channelType });
    } catch (_err) {
      return; // not a member (any more), or the server is away: keep what is shown
    }
    if (!Array.isArray(rows)) return;
    let changed = false;
    for (const row of rows) {
      const online = row.online === 1;
      if (this.state.get(row.uid) !== online) {
        this.state.set(row.uid, online);
        changed = true;
      }
    }
    if (changed) this.onChange();
  }

  /** Poll: `channels()` returns the channels to ask about (the open one first). */
  start(channels) {
    const round = async () => {
      const seen = new Set();
      let peers = 0;
      for (const channel of channels()) {
        const key = `${channel.channelType}:${channel.channelID}`;
        if (seen.has(key)) continue;
        seen.add(key);
        if (channel.channelType === 1 && ++peers > MAX_PEERS) continue;
        await this.refresh(channel);
      }
    };
    round();
    this.timer = setInterval(round, POLL_MS);
  }

  stop() {
    clearInterval(this.timer);
  }
}
