-- A lane's ring (lib/fair.lua) lists the sub-queues with jobs waiting, each once: every script that fills
-- or empties a sub-queue keeps that invariant (shared/fair.py).
-- Put sub-queue `sub` in its lane's ring unless it is there already: called after a push to a sub-queue that
-- was empty, by the scripts off the hot path (the API's submit relies on the invariant and only pushes).
local function ring_join(ring, sub)
  if not redis.call('LPOS', ring, sub) then redis.call('RPUSH', ring, sub) end
end

-- Take sub-queue `sub`, just emptied, out of its lane's ring (every copy) and forget its deficit; a ring left
-- with one member (alone: it owes nothing) or none keeps no deficits, as the claim's own leave does.
local function ring_leave(ring, deficits, sub)
  redis.call('LREM', ring, 0, sub)
  if redis.call('LLEN', ring) <= 1 then redis.call('DEL', deficits) else redis.call('HDEL', deficits, sub) end
end
