"""The fleet's rate-limit timelines in Redis: one Lua script call per request.

The same GCRA as :mod:`app.store.rate_limits`, run atomically by Redis
(redis-py's registered scripts, EVALSHA): a hash per limit key with the two
timelines and the cool-down, timed by Redis's own clock (``TIME``). The hash
expires a minute after its last slot, so nothing outlives the processes
that used it.
"""

from __future__ import annotations

from typing import Any

from redis.asyncio import Redis

from judges.limits import Reservation

KEY_PREFIX = "referee:rate_limits:"
IDLE_SECONDS = 60

# KEYS[1] the limit's hash; ARGV: requests_s, tokens_s, idle seconds.
# Numbers travel as strings: Redis would truncate a Lua number to an integer.
RESERVE_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local h = redis.call('HMGET', KEYS[1], 'requests', 'tokens', 'paused')
local paused = tonumber(h[3]) or 0
local floor = math.max(now, paused)
local requests = math.max(tonumber(h[1]) or 0, floor) + tonumber(ARGV[1])
local tokens = math.max(tonumber(h[2]) or 0, floor) + tonumber(ARGV[2])
local f = '%.6f'
redis.call('HSET', KEYS[1], 'requests', string.format(f, requests),
           'tokens', string.format(f, tokens), 'paused', string.format(f, paused))
local last = math.max(requests, tokens, paused)
redis.call('PEXPIRE', KEYS[1], math.ceil((last - now + tonumber(ARGV[3])) * 1000))
return {string.format(f, requests), string.format(f, tokens), string.format(f, paused),
        string.format(f, now)}
"""

# KEYS[1] the limit's hash; ARGV: seconds, idle seconds.
PAUSE_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local paused = math.max(tonumber(redis.call('HGET', KEYS[1], 'paused')) or 0,
                        now + tonumber(ARGV[1]))
redis.call('HSET', KEYS[1], 'paused', string.format('%.6f', paused))
local h = redis.call('HMGET', KEYS[1], 'requests', 'tokens')
local last = math.max(tonumber(h[1]) or 0, tonumber(h[2]) or 0, paused)
redis.call('PEXPIRE', KEYS[1], math.ceil((last - now + tonumber(ARGV[2])) * 1000))
return 1
"""


class RedisBudget:
    """:class:`judges.limits.BudgetStore` in Redis."""

    def __init__(self, client: Redis) -> None:
        self.client = client
        self._reserve = client.register_script(RESERVE_LUA)
        self._pause = client.register_script(PAUSE_LUA)

    async def reserve(self, key: str, requests_s: float, tokens_s: float) -> Reservation:
        reply: list[Any] = await self._reserve(
            keys=[KEY_PREFIX + key], args=[repr(requests_s), repr(tokens_s), IDLE_SECONDS]
        )
        requests, tokens, paused, now = (float(v) for v in reply)
        return Reservation(requests, tokens, paused, now)

    async def pause(self, key: str, seconds: float) -> None:
        await self._pause(keys=[KEY_PREFIX + key], args=[repr(seconds), IDLE_SECONDS])

    async def aclose(self) -> None:
        await self.client.aclose()
