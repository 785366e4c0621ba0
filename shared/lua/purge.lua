-- Purge ended jobs past RESULT_TTL: delete their hashes (one index instead of an EXPIRE per job).
-- KEYS: [1] purge index. ARGV: [1] now (Unix), [2] job key prefix, [3] most jobs to delete in this call.
-- Returns how many were deleted.
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
if #due == 0 then return 0 end
local keys = {}
for i, id in ipairs(due) do keys[i] = ARGV[2] .. id end
redis.call('DEL', unpack(keys))
redis.call('ZREM', KEYS[1], unpack(due))
return #due
