-- Put a sub-queue in its lane's ring unless it is there already (lib/ring.lua): after a bulk batch's chunks
-- are pushed, in the same transaction. KEYS: [1] the lane's ring. ARGV: [1] the sub-queue's name.
ring_join(KEYS[1], ARGV[1])
return 1
