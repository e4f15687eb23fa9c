"""Pre-started one-shot jails: the engine's second way to start a run, beside the cold one.

`JailPool` keeps jails waiting; `forms` says which command lines they can run; `warm_jail`
starts one and hands it its program; `launcher` is what its interpreter runs while it waits.
"""

from snekbox.pool.pool import EVENTS, JailPool, PoolSettings, live_pools
from snekbox.pool.warm_jail import JailRecipe

__all__ = ("EVENTS", "JailPool", "JailRecipe", "PoolSettings", "live_pools")
