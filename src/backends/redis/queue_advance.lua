--[[ queue_advance.lua — moves a waiting room's admission frontier to `now` and returns the
queue's state (distributed mode; RedisWaitingRoom::Advance). Runs after queue_frontier.lua
(prepended by the build; its header gives the rule, the keys KEYS[1..4], ARGV[1] = now and the
reply), which answered UNKNOWN_PRODUCT / NO_WAITING_ROOM already.

Replies code "OK", position 0. Writes admitted and as_of when now > as_of (creating the queue
hash on the first advance); nothing otherwise.
]]

if moved then redis.call('HSET', KEYS[4], 'admitted', admitted_text, 'as_of', as_of_text) end
return reply('OK', 0, q[4] or '')
