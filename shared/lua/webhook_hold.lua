-- Take due webhook deliveries on hold: each one's score moves to the end of its hold, so a sender that
-- dies mid-call leaves it due again once the hold ends.
-- KEYS: [1] the deliveries set. ARGV: [1] now (Unix), [2] hold end (Unix), [3] most to take.
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
for _, member in ipairs(due) do redis.call('ZADD', KEYS[1], ARGV[2], member) end
return due
