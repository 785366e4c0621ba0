-- Change an idempotency record only while it is still the holder's reservation (not expired, not taken by
-- another request): api/idempotency.py `IdempotencyStore.replace_if_held`.
-- KEYS: [1] the idempotency record. ARGV: [1] the record its holder wrote, [2] the new record ('' deletes),
--       [3] TTL of the new record (s).
-- Returns 1 if changed, 0 if the record was no longer the holder's.
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if ARGV[2] == '' then redis.call('DEL', KEYS[1]) else redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3]) end
return 1
