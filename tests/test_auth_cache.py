"""The credential caches (app/auth/cache.py): concurrent misses share one load; a drop wins over a load
that was already running."""

from __future__ import annotations

import asyncio

import pytest

from app.auth.cache import TtlCache


def test_concurrent_misses_of_one_key_share_one_load() -> None:
    async def scenario() -> tuple[int, list[str | None]]:
        cache: TtlCache[str, str] = TtlCache(ttl=10)
        loads = 0
        release = asyncio.Event()

        async def load(key: str) -> str:
            nonlocal loads
            loads += 1
            await release.wait()
            return key.upper()

        waiters = [asyncio.create_task(cache.get("k", load)) for _ in range(32)]
        await asyncio.sleep(0)
        release.set()
        values = list(await asyncio.gather(*waiters))
        return loads, values

    loads, values = asyncio.run(scenario())
    assert loads == 1 and values == ["K"] * 32


def test_a_drop_during_a_load_is_not_undone_by_it() -> None:
    async def scenario() -> list[str | None]:
        cache: TtlCache[str, str] = TtlCache(ttl=10)
        versions = iter(["before revocation", "after revocation"])
        release = asyncio.Event()

        async def slow(key: str) -> str:
            await release.wait()
            return next(versions)

        first = asyncio.create_task(cache.get("k", slow))
        await asyncio.sleep(0)
        cache.drop("k")  # the key changed while its old row was being read
        release.set()
        seen = [await first]
        seen.append(await cache.get("k", slow))  # loads again: the first load was not kept
        return seen

    assert asyncio.run(scenario()) == ["before revocation", "after revocation"]


def test_a_drop_of_another_key_does_not_pin_a_finished_load() -> None:
    async def scenario() -> list[str | None]:
        cache: TtlCache[str, str] = TtlCache(ttl=0)  # every get loads
        n = 0

        async def load(key: str) -> str:
            nonlocal n
            n += 1
            await asyncio.sleep(0)
            return f"{key}{n}"

        first = asyncio.create_task(cache.get("a", load))
        await asyncio.sleep(0)
        cache.drop("b")
        return [await first, await cache.get("a", load)]

    assert asyncio.run(scenario()) == ["a1", "a2"]


def test_a_failed_load_reaches_every_waiter() -> None:
    async def scenario() -> None:
        cache: TtlCache[str, str] = TtlCache(ttl=10)

        async def broken(key: str) -> str:
            await asyncio.sleep(0)
            raise OSError("database unreachable")

        results = await asyncio.gather(*(cache.get("k", broken) for _ in range(3)), return_exceptions=True)
        assert all(type(r).__name__ == "ServiceUnavailable" for r in results)

    asyncio.run(scenario())


@pytest.mark.parametrize("ttl", [10.0])
def test_hits_do_not_load(ttl: float) -> None:
    async def scenario() -> int:
        cache: TtlCache[str, str] = TtlCache(ttl=ttl)
        loads = 0

        async def load(key: str) -> str:
            nonlocal loads
            loads += 1
            return key

        for _ in range(5):
            await cache.get("k", load)
        return loads

    assert asyncio.run(scenario()) == 1
