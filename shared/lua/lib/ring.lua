-- Put sub-queue `sub` in its lane's ring (lib/fair.lua) unless it is there already: called after a push
-- to a sub-queue that was empty, so a key with work waiting is in the ring exactly once.
local function ring_join(ring, sub)
  if not redis.call('LPOS', ring, sub) then redis.call('RPUSH', ring, sub) end
end
