"""The Lua scripts of the Redis bus. Each runs atomically inside Redis (one round trip).

Keys and channels, all under the cluster prefix ``P`` (``"<cluster_name>:"``)::

    P presence            HASH  uid -> "3" or "3,7": the ids of the nodes holding the uid
    P node:<id>           STRING the node's incarnation token, with a TTL: liveness and the
                                 node id's lease (refreshed by heartbeats)
    P node:<id>:uids      SET   the uids registered by node <id> (to clean up after it)
    P nodes               SET   node ids that may have registrations
    P events:<id>         pub/sub channel of node <id>

The scripts name keys they build from ARGV instead of declaring KEYS, which plain (standalone
or replicated) Redis allows; Redis Cluster does not, and is not supported.
"""

from __future__ import annotations

__all__ = ["HEARTBEAT", "PRESENCE", "PURGE", "RELEASE", "ROUTE"]

#: Publish events to the other live nodes holding their recipients.
#: ARGV: prefix, own node id, then per event three values: body, recipients (a MessagePack
#: array of uids), queue seqs (a MessagePack array of decimal strings, or "" for none).
#: Returns the number of frames published. Recipients are looked up in chunks (Lua's
#: unpack has a stack limit); node liveness is looked up once per call.
ROUTE = """
local prefix, me = ARGV[1], ARGV[2]
local pkey = prefix .. 'presence'
local live, frames = {}, 0
for e = 3, #ARGV, 3 do
  local body, uids = ARGV[e], cmsgpack.unpack(ARGV[e + 1])
  local seqs = ARGV[e + 2] ~= '' and cmsgpack.unpack(ARGV[e + 2]) or nil
  local n = #uids
  local out, order = {}, {}
  local first = 1
  while first <= n do
    local last = math.min(first + 499, n)
    local found = redis.call('HMGET', pkey, unpack(uids, first, last))
    for k = 1, last - first + 1 do
      local v = found[k]
      if v then
        local i = first + k - 1
        for node in string.gmatch(v, '[^,]+') do
          if node ~= me then
            local ok = live[node]
            if ok == nil then
              ok = redis.call('EXISTS', prefix .. 'node:' .. node) == 1
              live[node] = ok
            end
            if ok then
              local dest = out[node]
              if not dest then
                dest = {{}, {}}
                out[node] = dest
                order[#order + 1] = node
              end
              dest[1][#dest[1] + 1] = uids[i]
              if seqs then dest[2][#dest[2] + 1] = seqs[i] end
            end
          end
        end
      end
    end
    first = last + 1
  end
  for _, node in ipairs(order) do
    local header = cmsgpack.pack(out[node])
    redis.call('PUBLISH', prefix .. 'events:' .. node,
               struct.pack('>I4', #header) .. header .. body)
  end
  frames = frames + #order
end
return frames
"""

#: Add and remove this node's registrations, if it still holds its lease.
#: ARGV: prefix, node id, incarnation, n_add, added uids..., removed uids...
#: Returns -1 when the lease is not ours (nothing changed), else the number of uids.
PRESENCE = """
local prefix, me, inc = ARGV[1], ARGV[2], ARGV[3]
if redis.call('GET', prefix .. 'node:' .. me) ~= inc then return -1 end
local n_add = tonumber(ARGV[4])
local pkey, skey = prefix .. 'presence', prefix .. 'node:' .. me .. ':uids'
for i = 5, #ARGV do
  local uid, add = ARGV[i], i < 5 + n_add
  local v = redis.call('HGET', pkey, uid)
  local nodes, had = {}, false
  if v then
    for node in string.gmatch(v, '[^,]+') do
      if node == me then had = true else nodes[#nodes + 1] = node end
    end
  end
  if add then
    nodes[#nodes + 1] = me
    if not had then redis.call('HSET', pkey, uid, table.concat(nodes, ',')) end
    redis.call('SADD', skey, uid)
  else
    if had then
      if #nodes == 0 then redis.call('HDEL', pkey, uid)
      else redis.call('HSET', pkey, uid, table.concat(nodes, ',')) end
    end
    redis.call('SREM', skey, uid)
  end
end
if n_add > 0 then redis.call('SADD', prefix .. 'nodes', me) end
return #ARGV - 4
"""

#: Claim or refresh the node's lease. ARGV: prefix, node id, incarnation, ttl ms.
#: Returns 1 when the lease is ours (refreshed), 2 when it was free and is now ours, 0 when
#: another incarnation holds it.
HEARTBEAT = """
local key = ARGV[1] .. 'node:' .. ARGV[2]
local v = redis.call('GET', key)
if v == ARGV[3] then
  redis.call('PEXPIRE', key, ARGV[4])
  return 1
end
if not v then
  redis.call('SET', key, ARGV[3], 'PX', ARGV[4])
  return 2
end
return 0
"""

#: Remove the registrations of nodes whose lease is gone, at most ``batch`` uids per node
#: and call. ARGV: prefix, batch. Returns the number of uids removed.
PURGE = """
local prefix, batch = ARGV[1], tonumber(ARGV[2])
local pkey = prefix .. 'presence'
local removed = 0
for _, node in ipairs(redis.call('SMEMBERS', prefix .. 'nodes')) do
  if redis.call('EXISTS', prefix .. 'node:' .. node) == 0 then
    local skey = prefix .. 'node:' .. node .. ':uids'
    for _, uid in ipairs(redis.call('SPOP', skey, batch)) do
      local v = redis.call('HGET', pkey, uid)
      if v then
        local nodes = {}
        for other in string.gmatch(v, '[^,]+') do
          if other ~= node then nodes[#nodes + 1] = other end
        end
        if #nodes == 0 then redis.call('HDEL', pkey, uid)
        else redis.call('HSET', pkey, uid, table.concat(nodes, ',')) end
      end
      removed = removed + 1
    end
    if redis.call('SCARD', skey) == 0 then redis.call('SREM', prefix .. 'nodes', node) end
  end
end
return removed
"""

#: Give the lease up if it is still ours (and forget the node if it has no registrations).
#: ARGV: prefix, node id, incarnation.
RELEASE = """
local key = ARGV[1] .. 'node:' .. ARGV[2]
if redis.call('GET', key) ~= ARGV[3] then return 0 end
if redis.call('SCARD', key .. ':uids') == 0 then
  redis.call('SREM', ARGV[1] .. 'nodes', ARGV[2])
end
return redis.call('DEL', key)
"""
