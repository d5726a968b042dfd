"""Usage analytics on a real embedded ClickHouse (chdb through clickhouse-connect; one data directory,
so one chdb path, per test worker) fed from the real Postgres.

The outage tests put a gate between the app and its real ClickHouse client: while closed every call
fails as a refused connection does, and `fail_after_insert` makes the next insert reach ClickHouse and
then fail as a connection reset before the answer does (the crash between the insert and the
watermark update). ClickHouse itself is never replaced.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from clickhouse_connect.driver.exceptions import OperationalError
from fastapi.testclient import TestClient

from app.analytics.queries import Granularity, Scope, Window, engagement, iso, truncate
from app.analytics.service import Analytics, daily_usage
from app.config import Settings
from tests.conftest import BrokerFixture
from tests.helpers_auth import (
    POSITION_SIZE,
    assert_problem,
    bearer,
    login,
    sql,
    superadmin_token,
    token_of,
    user_token,
)

PAIRS = [("EURUSD", 1.1850, 1.1820), ("GBPUSD", 1.2700, 1.2650), ("AUDUSD", 0.6600, 0.6570)]
ROUTES = ("usage", "engagement", "instruments")


class Gate:
    """Stands between the app and its real ClickHouse client (see the module docstring)."""

    def __init__(self, real: Any) -> None:
        self.real = real
        self.open = True
        self.fail_after_insert = 0
        self.inserts: list[tuple[Any, Any]] = []  # every insert's arguments, to replay one as a resend

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.real, name)
        if not callable(attr):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            if not self.open:
                raise OperationalError("connection refused (ClickHouse unreachable)")
            out = attr(*args, **kwargs)
            if name == "insert":
                self.inserts.append((args, kwargs))
            if name == "insert" and self.fail_after_insert:
                self.fail_after_insert -= 1
                raise OperationalError("connection reset by peer (after the insert was sent)")
            return out

        return call


def svc(client: TestClient) -> Any:
    return client.app.state.services  # type: ignore[attr-defined]


def store_pending(client: TestClient) -> None:
    """What the request path left in memory goes to Postgres (the recorder and the usage outbox)."""
    client.portal.call(svc(client).recorder.flush)
    client.portal.call(svc(client).usage.flush)


def ship(client: TestClient) -> dict[str, Any]:
    store_pending(client)
    result: dict[str, Any] = client.portal.call(svc(client).analytics.flush)
    return result


@pytest.fixture
def analytics(client: TestClient) -> Any:
    """The app's analytics with its periodic flush paused (the test decides when to ship) and gated."""
    found = svc(client).analytics
    if found.clickhouse is None:
        pytest.fail(f"this worker's app has no analytics store: {found.last_error}")
    client.portal.call(_pause, found)
    gate = Gate(found.clickhouse.client)
    found.clickhouse.client = gate
    try:
        yield found
    finally:
        found.clickhouse.client = gate.real
        client.portal.call(_resume, found)


async def _pause(found: Analytics) -> None:
    found.pause()


async def _resume(found: Analytics) -> None:
    found.resume()


def calc(client: TestClient, broker: BrokerFixture, i: int, *, fail: bool = False) -> int:
    pair, entry, stop = PAIRS[i % len(PAIRS)]
    body = {**POSITION_SIZE, "currencyPair": pair, "entryPrice": entry, "stopLoss": entry if fail else stop,
            "riskPercentage": 1 + i % 3}
    return client.post("/api/v1/calculate/position-size", json=body, headers=broker.auth).status_code


def window() -> dict[str, str]:
    now = datetime.now(UTC)
    start = now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=2)
    return {"from": start.isoformat(), "to": (now + timedelta(hours=1)).isoformat(), "granularity": "hour"}


def report(client: TestClient, broker: BrokerFixture, name: str, **params: str) -> dict[str, Any]:
    resp = client.get(f"/api/v1/brokers/{broker.id}/analytics/{name}", params={**window(), **params},
                      headers=broker.auth)
    assert resp.status_code == 200, resp.text
    body: dict[str, Any] = resp.json()
    return body


def postgres_counts(client: TestClient, broker_id: uuid.UUID) -> tuple[int, int, int]:
    """(answered calculations, units charged on them, failed calculations) as Postgres has them."""
    ok, units = sql(client, "select count(*), coalesce(sum(units), 0) from calculations where broker_id = :b",
                    {"b": broker_id})[0]
    failed = sql(client, "select count(*) from usage_events where broker_id = :b and event_type = 'calculation'",
                 {"b": broker_id})[0][0]
    return int(ok), int(units), int(failed)


def raw_count(analytics: Analytics, client: TestClient, broker_id: uuid.UUID) -> int:
    """Calculation events stored in ClickHouse for the broker, without FINAL: copies would show here."""
    assert analytics.clickhouse is not None
    rows = client.portal.call(analytics.clickhouse.query,
                              "SELECT count() FROM usage_metrics WHERE broker_id = {b:UUID} "
                              "AND event_type = 'calculation'", {"b": broker_id})
    return int(rows[0][0])


def test_usage_report_counts_what_postgres_has(client: TestClient, broker_a: BrokerFixture, analytics: Any) -> None:
    codes = [calc(client, broker_a, i) for i in range(9)] + [calc(client, broker_a, 9, fail=True)]
    assert codes.count(200) == 9 and codes[-1] == 422
    ship(client)
    body = report(client, broker_a, "usage")
    ok, units, failed = postgres_counts(client, broker_a.id)
    assert (ok, failed) == (9, 1)
    assert body["totals"]["calculations"] == 9 and body["totals"]["errors"] == 1 and body["totals"]["units"] >= units
    assert body["totals"]["latencyMs"]["p50"] is not None
    assert [e["endpoint"] for e in body["endpoints"]] == ["position-size"]
    # Every hour of the window is there, the empty ones with zeros; the counts sit in the current hour.
    assert len(body["series"]) == 4
    assert [p["calculations"] for p in body["series"]][:2] == [0, 0]
    assert sum(p["calculations"] for p in body["series"]) == 9
    current = next(p for p in body["series"] if p["calculations"])
    assert current["endpoints"]["position-size"]["calculations"] == 9
    assert body["brokerId"] == str(broker_a.id) and body["granularity"] == "hour"

    pairs = report(client, broker_a, "instruments")
    assert {p["instrument"]: p["calculations"] for p in pairs["pairs"]} == {"EURUSD": 3, "GBPUSD": 3, "AUDUSD": 3}
    assert pairs["accountCurrencies"] == [{"currency": "USD", "calculations": 9}]
    assert pairs["averageRiskPercent"] == pytest.approx(2.0)  # risk 1, 2, 3 percent, three times each


def test_engagement_counts_users_widget_loads_and_calculations(client: TestClient, broker_a: BrokerFixture,
                                                               analytics: Any) -> None:
    uid, token = user_token(client, broker_a, "BROKER_USER")
    assert client.post("/api/v1/calculate/position-size", json=POSITION_SIZE, headers=bearer(token)).status_code == 200
    assert token_of(login(client, broker_a.slug, broker_a.admin_email))  # a second user logs in
    loads = [client.get("/api/v1/widget/config", params={"broker": broker_a.slug, "key": broker_a.publishable_key},
                        headers={"Origin": "https://www.example.com", "Authorization": ""}) for _ in range(3)]
    assert [r.status_code for r in loads] == [200, 200, 200]
    ship(client)
    body = report(client, broker_a, "engagement")
    assert body["widgetLoads"] == 3 and body["calculations"] == 1
    assert body["dau"] == body["wau"] == body["mau"] == 2
    current = next(p for p in body["series"] if p["activeUsers"])
    assert current["activeUsers"] == 2 and current["returningUsers"] == 0
    assert sum(p["widgetLoads"] for p in body["series"]) == 3


def test_a_crash_between_insert_and_watermark_counts_nothing_twice(client: TestClient, broker_a: BrokerFixture,
                                                                   analytics: Any) -> None:
    assert all(calc(client, broker_a, i) == 200 for i in range(23))
    store_pending(client)
    shipper = analytics.shipper
    batch, shipper.batch = shipper.batch, 5  # several batches, so the crash lands between two of them
    try:
        ship(client)  # everything before this test's rows
        assert all(calc(client, broker_a, i) == 200 for i in range(23, 30))
        store_pending(client)
        analytics.clickhouse.client.fail_after_insert = 1
        with pytest.raises(OperationalError):
            client.portal.call(analytics.flush)
        ship(client)  # the batch ClickHouse already took is read again and sent again
    finally:
        shipper.batch = batch
    ok, _, _ = postgres_counts(client, broker_a.id)
    assert ok == 30
    assert raw_count(analytics, client, broker_a.id) == 30  # the deduplication token dropped the resend
    assert report(client, broker_a, "usage")["totals"]["calculations"] == 30


def rollup_rows(analytics: Analytics, client: TestClient, broker_id: uuid.UUID) -> tuple[int, int]:
    """(rows, calculations) of the broker in the hourly rollup, unmerged: a block fed twice would show."""
    assert analytics.clickhouse is not None
    rows = client.portal.call(analytics.clickhouse.query,
                              "SELECT count(), sum(ok) + sum(errors) FROM usage_hourly WHERE broker_id = {b:UUID} "
                              "AND event_type = 'calculation'", {"b": broker_id})
    return int(rows[0][0]), int(rows[0][1])


def test_a_resent_batch_leaves_the_rollups_unchanged(client: TestClient, broker_a: BrokerFixture,
                                                     analytics: Any) -> None:
    """ClickHouse drops a block whose insert_deduplication_token it has seen, and the materialized views
    that feed the rollups do not fire for it (deduplicate_blocks_in_dependent_materialized_views)."""
    assert all(calc(client, broker_a, i) == 200 for i in range(4))
    ship(client)
    before = rollup_rows(analytics, client, broker_a.id)
    assert before[1] == 4
    gate = analytics.clickhouse.client
    # The calculations' block just shipped, with its insert_deduplication_token.
    args, kwargs = next(sent for sent in reversed(gate.inserts) if sent[0][1][0][1] == "calculations")
    assert kwargs["settings"]["insert_deduplication_token"]
    gate.real.insert(*args, **kwargs)  # sent again, as by a shipper that never learnt of the first insert
    assert raw_count(analytics, client, broker_a.id) == 4
    assert rollup_rows(analytics, client, broker_a.id) == before
    assert report(client, broker_a, "usage")["totals"]["calculations"] == 4


def test_identical_rollup_blocks_of_two_batches_both_count(client: TestClient, broker_a: BrokerFixture,
                                                           analytics: Any) -> None:
    """Two batches of one widget load each, in the same hour, roll up to identical blocks: the rollups'
    deduplication must tell them apart (their tokens derive from the batches'), never drop the second."""
    def load() -> None:
        resp = client.get("/api/v1/widget/config", params={"broker": broker_a.slug, "key": broker_a.publishable_key},
                          headers={"Origin": "https://www.example.com", "Authorization": ""})
        assert resp.status_code == 200

    for _ in range(2):
        load()
        ship(client)
    assert report(client, broker_a, "engagement")["widgetLoads"] == 2


def test_a_batch_that_changed_before_the_resend_is_stored_once(client: TestClient, broker_a: BrokerFixture,
                                                               analytics: Any) -> None:
    """The crash between the insert and the watermark update, then a row of the batch deleted in Postgres:
    the batch read again differs (its token too), and only what ClickHouse lacks is sent."""
    store_pending(client)
    ship(client)
    assert all(calc(client, broker_a, i) == 200 for i in range(6))
    store_pending(client)
    analytics.clickhouse.client.fail_after_insert = 1
    with pytest.raises(OperationalError):
        client.portal.call(analytics.flush)
    assert raw_count(analytics, client, broker_a.id) == 6  # ClickHouse has the batch; the watermark did not move
    gone = sql(client, "delete from calculations where id = (select id from calculations where broker_id = :b "
                       "order by xid, id limit 1) returning id", {"b": broker_a.id})
    assert len(gone) == 1
    assert all(calc(client, broker_a, i) == 200 for i in range(6, 8))
    ship(client)
    assert raw_count(analytics, client, broker_a.id) == 8  # 6 sent once (one of them since deleted) + 2
    assert rollup_rows(analytics, client, broker_a.id)[1] == 8
    assert report(client, broker_a, "usage")["totals"]["calculations"] == 8


def test_clickhouse_outage_during_a_load_loses_nothing(client: TestClient, broker_a: BrokerFixture,
                                                       analytics: Any) -> None:
    gate = analytics.clickhouse.client
    gate.open = False

    def one(i: int) -> int:
        return calc(client, broker_a, i, fail=i % 10 == 0)

    with ThreadPoolExecutor(4) as pool:
        futures = [pool.submit(one, i) for i in range(60)]
        for _ in range(3):  # flushes during the load: each one fails, nothing moves
            store_pending(client)
            with pytest.raises(OperationalError):
                client.portal.call(analytics.flush)
        codes = [f.result() for f in futures]
    assert codes.count(200) == 54 and codes.count(422) == 6  # calculations never waited for ClickHouse
    resp = client.get(f"/api/v1/brokers/{broker_a.id}/analytics/usage", params=window(), headers=broker_a.auth)
    assert_problem(resp, 503)
    gate.open = True
    ship(client)
    ok, units, failed = postgres_counts(client, broker_a.id)
    body = report(client, broker_a, "usage")
    assert (body["totals"]["calculations"], body["totals"]["errors"]) == (ok, failed) == (54, 6)
    assert raw_count(analytics, client, broker_a.id) == 60
    assert sum(p["calculations"] for p in body["series"]) == 54


def test_another_brokers_id_is_404_on_every_route(client: TestClient, broker_a: BrokerFixture,
                                                  broker_b: BrokerFixture) -> None:
    for name in ROUTES:
        resp = client.get(f"/api/v1/brokers/{broker_a.id}/analytics/{name}", headers=broker_b.auth)
        assert_problem(resp, 404)
        resp = client.get(f"/api/v1/brokers/{uuid.uuid4()}/analytics/{name}", headers=broker_b.auth)
        assert_problem(resp, 404)
        # Every broker at once is the platform operator's only.
        assert_problem(client.get(f"/api/v1/brokers/all/analytics/{name}", headers=broker_b.auth), 403)
        # A publishable (browser) key never reads stored data.
        resp = client.get(f"/api/v1/brokers/{broker_b.id}/analytics/{name}",
                          headers=bearer(broker_b.publishable_key))
        assert resp.status_code in (401, 403)


def test_platform_operator_sees_one_broker_and_every_broker(client: TestClient, broker_a: BrokerFixture,
                                                            analytics: Any) -> None:
    assert calc(client, broker_a, 0) == 200
    ship(client)
    headers = bearer(superadmin_token(client))
    one = client.get(f"/api/v1/brokers/{broker_a.id}/analytics/usage", params=window(), headers=headers)
    assert one.status_code == 200 and one.json()["totals"]["calculations"] == 1
    every = client.get("/api/v1/brokers/all/analytics/usage", params=window(), headers=headers)
    assert every.status_code == 200 and every.json()["brokerId"] is None
    assert every.json()["totals"]["calculations"] >= 1


def test_bad_windows_are_422_naming_the_field(client: TestClient, broker_a: BrokerFixture) -> None:
    url = f"/api/v1/brokers/{broker_a.id}/analytics/usage"
    resp = client.get(url, params={"from": "2026-12-02T00:00:00Z", "to": "2026-12-01T00:00:00Z"},
                      headers=broker_a.auth)
    assert assert_problem(resp, 422)["errors"][0]["field"] == "from"
    resp = client.get(url, params={"from": "2020-01-01", "to": "2026-01-01", "granularity": "hour"},
                      headers=broker_a.auth)
    assert assert_problem(resp, 422)["errors"][0]["field"] == "granularity"
    resp = client.get(url, params={"granularity": "minute"}, headers=broker_a.auth)
    assert resp.status_code == 422
    for field, value in (("to", "0001-01-01T00:00:00+01:00"), ("from", "1900-01-01"), ("to", "9999-12-31")):
        resp = client.get(url, params={field: value}, headers=broker_a.auth)
        assert assert_problem(resp, 422)["errors"][0]["field"] == field


def test_a_second_process_on_the_data_directory_forwards_to_the_owner(client: TestClient, settings: Settings,
                                                                      broker_a: BrokerFixture, analytics: Any) -> None:
    assert calc(client, broker_a, 0) == 200
    ship(client)
    other = Analytics(settings, svc(client).db)  # as another worker process would build it

    async def ask() -> dict[str, Any]:
        from app.analytics.queries import Window

        now = datetime.now(UTC)
        return await other.report("usage", broker_a.id, Window(now - timedelta(hours=1), now + timedelta(hours=1),
                                                               "hour"))

    body = client.portal.call(ask)
    assert other.clickhouse is None  # it could not take the lock: the owner answered
    assert body["totals"]["calculations"] == 1


def test_daily_usage_for_billing_comes_from_postgres(client: TestClient, broker_a: BrokerFixture) -> None:
    assert all(calc(client, broker_a, i) == 200 for i in range(4))
    assert calc(client, broker_a, 4, fail=True) == 422
    store_pending(client)
    today = datetime.now(UTC).date()
    days = client.portal.call(daily_usage, svc(client).db, broker_a.id, today - timedelta(days=2),
                              today + timedelta(days=1))
    assert [d.day for d in days] == [today - timedelta(days=2), today - timedelta(days=1), today]
    assert [(d.calculations, d.units) for d in days] == [(0, 0), (0, 0), (4, 4)]
    assert isinstance(days[0].day, date)


def test_the_flush_job_ships_what_postgres_has(client: TestClient, broker_a: BrokerFixture, analytics: Any) -> None:
    from app.analytics.tasks import TASKS, flush_usage

    assert flush_usage in TASKS
    assert calc(client, broker_a, 0) == 200
    store_pending(client)
    result = client.portal.call(flush_usage, {"services": svc(client)})
    assert result["shipped"] >= 1
    assert raw_count(analytics, client, broker_a.id) == 1
    assert client.portal.call(flush_usage, {"services": svc(client)}) == {"shipped": 0}  # a rerun does no harm


# --- engagement against a brute-force count ------------------------------------------------------------
# Events written straight into ClickHouse for a broker id of their own (the shipper's insert, with a
# deduplication token per block), and the engagement report compared with the same figures counted here,
# in Python, from the event list: active and returning users per period, DAU/WAU/MAU, widget loads and
# calculations. The windows cross whole and partial days and hours, so both the daily users rollup and
# the raw events at the edges are read.

Event = tuple[uuid.UUID, datetime, uuid.UUID | None, str, int]  # event id, at, user, event type, status


def generated_events(seed: int, now: datetime) -> list[Event]:
    rng = random.Random(seed)
    users = [uuid.uuid4() for _ in range(12)]
    events: list[Event] = []
    for _ in range(900):
        # over the last 50 days, in milliseconds (ClickHouse keeps DateTime64(3))
        at = now - timedelta(milliseconds=rng.randrange(50 * 86_400_000))
        kind = rng.choices(["calculation", "widget_load", "login", "key_change"], [60, 20, 15, 5])[0]
        user = None if kind == "widget_load" or rng.random() < 0.25 else rng.choice(users[: rng.choice((4, 12))])
        status = 422 if kind == "calculation" and rng.random() < 0.1 else 200
        events.append((uuid.uuid4(), at, user, kind, status))
    # Users seen once, at the edges the reports split on: the partial day before `now`, and just after the
    # start of the last 1, 7 and 30 days (inside the DAU/WAU/MAU spans, in a day that begins before them).
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    edges = [midnight + (now - midnight) // 2, *(now - timedelta(days=days) for days in (1, 7, 30))]
    for at in edges:
        at = at.replace(microsecond=at.microsecond // 1000 * 1000) + timedelta(milliseconds=1)
        events.append((uuid.uuid4(), at, uuid.uuid4(), "login", 200))
    return events


def metric_rows(broker: uuid.UUID, events: list[Event]) -> list[list[Any]]:
    return [[event_id, "calculations" if kind == "calculation" else "usage_events", at, broker, user, None, kind, "",
             "position-size" if kind == "calculation" else "", "", "", None, status, 1.0, 1]
            for event_id, at, user, kind, status in events]


def brute_engagement(events: list[Event], start: datetime, end: datetime, granularity: Granularity) -> dict[str, Any]:
    first: dict[uuid.UUID, datetime] = {}
    for _, at, user, _, _ in events:
        if user is not None:
            first[user] = min(at, first.get(user, at))
    series = {b: {"start": iso(b), "activeUsers": set(), "returningUsers": set(), "widgetLoads": 0, "calculations": 0}
              for b in Window(start, end, granularity).buckets()}
    for _, at, user, kind, status in events:
        if not start <= at < end:
            continue
        period = series[truncate(at, granularity)]
        if kind == "widget_load":
            period["widgetLoads"] += 1
        if kind == "calculation" and status < 400:
            period["calculations"] += 1
        if user is not None:
            period["activeUsers"].add(user)
            if first[user] < truncate(at, granularity):
                period["returningUsers"].add(user)

    def users_since(days: int) -> int:
        return len({user for _, at, user, _, _ in events if user and end - timedelta(days=days) <= at < end})

    out = [{**p, "activeUsers": len(p["activeUsers"]), "returningUsers": len(p["returningUsers"])}
           for p in series.values()]
    return {"dau": users_since(1), "wau": users_since(7), "mau": users_since(30),
            "widgetLoads": sum(p["widgetLoads"] for p in out), "calculations": sum(p["calculations"] for p in out),
            "series": out}


def engagement_windows(now: datetime) -> list[tuple[datetime, datetime, Granularity]]:
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    return [
        (midnight - timedelta(days=30), midnight, "day"),  # whole days only
        (now - timedelta(days=30), now, "day"),  # partial days at both ends (the API's default window)
        (now - timedelta(days=45, hours=5), now - timedelta(days=2, hours=7), "week"),  # first week starts earlier
        (now - timedelta(days=49), now + timedelta(days=1), "month"),
        (now - timedelta(days=2, minutes=17), now - timedelta(hours=3), "hour"),
        (midnight - timedelta(days=3, hours=-2), midnight - timedelta(days=3, hours=-9), "day"),  # inside one day
        (midnight - timedelta(days=80), midnight - timedelta(days=20), "week"),  # starts before the first event
    ]


def report_of(client: TestClient, analytics: Analytics, broker: uuid.UUID, start: datetime, end: datetime,
              granularity: Granularity) -> dict[str, Any]:
    assert analytics.clickhouse is not None
    found: dict[str, Any] = client.portal.call(engagement, analytics.clickhouse, Scope(broker),
                                               Window(start, end, granularity))
    return found


def assert_engagement_exact(client: TestClient, analytics: Analytics, broker: uuid.UUID, events: list[Event],
                            now: datetime) -> None:
    for start, end, granularity in engagement_windows(now):
        got = report_of(client, analytics, broker, start, end, granularity)
        assert got == brute_engagement(events, start, end, granularity), (start, end, granularity)


def insert(client: TestClient, analytics: Analytics, rows: list[list[Any]], token: str) -> None:
    assert analytics.clickhouse is not None
    client.portal.call(analytics.clickhouse.insert, rows, token)


def users_only(report: dict[str, Any]) -> tuple[Any, ...]:
    return (report["dau"], report["wau"], report["mau"],
            [(p["activeUsers"], p["returningUsers"]) for p in report["series"]])


def test_engagement_matches_a_brute_force_count_with_resends_and_an_erased_user(client: TestClient,
                                                                                analytics: Any) -> None:
    now = datetime.now(UTC).replace(microsecond=123_000)
    broker, erased = uuid.uuid4(), uuid.uuid4()
    # The user to be erased only logs in (their calculations would stay in the hourly rollups as anonymous
    # counts after the erasure, by design): every figure is then that of the events without them.
    logins: list[Event] = [(uuid.uuid4(), now - timedelta(days=d, minutes=7 * d), erased, "login", 200)
                           for d in (0, 1, 3, 9, 20, 33, 41)]
    events = generated_events(15, now) + logins
    rows = metric_rows(broker, events)
    blocks = [rows[i:i + 200] for i in range(0, len(rows), 200)]
    for i, block in enumerate(reversed(blocks)):  # not in time order
        insert(client, analytics, block, f"{broker}-{i}")
    assert_engagement_exact(client, analytics, broker, events, now)
    # The shipper re-sends a block it never learnt was stored: same rows, same token, dropped.
    insert(client, analytics, blocks[1], f"{broker}-{len(blocks) - 2}")
    assert_engagement_exact(client, analytics, broker, events, now)
    assert client.portal.call(analytics.forget_user, broker, erased) == {"deleted": True}
    events = events[:-len(logins)]
    assert_engagement_exact(client, analytics, broker, events, now)
    # A copy that got in anyway (another token: a manual insert): the event table and the hourly counts hold
    # it until the next merge, but no user count moves (distinct users, from a rollup keyed by the user).
    insert(client, analytics, blocks[2], f"{broker}-copy")
    for start, end, granularity in engagement_windows(now):
        got = report_of(client, analytics, broker, start, end, granularity)
        assert users_only(got) == users_only(brute_engagement(events, start, end, granularity))
    # Merged, the same answers.
    assert analytics.clickhouse is not None
    client.portal.call(analytics.clickhouse.command, "OPTIMIZE TABLE usage_daily_users FINAL")
    for start, end, granularity in engagement_windows(now):
        got = report_of(client, analytics, broker, start, end, granularity)
        assert users_only(got) == users_only(brute_engagement(events, start, end, granularity))


def test_the_daily_users_rollup_is_filled_from_the_events_on_upgrade(client: TestClient, settings: Settings,
                                                                      analytics: Any) -> None:
    """A data directory from before the rollup: events only in usage_metrics. The next start creates the
    rollup, fills it from the events once, and then its view keeps it up."""
    now = datetime.now(UTC).replace(microsecond=0)
    broker = uuid.uuid4()
    events = generated_events(16, now)
    ch = analytics.clickhouse
    client.portal.call(ch.command, "DROP VIEW usage_daily_users_mv")
    client.portal.call(ch.command, "DROP TABLE usage_daily_users")
    insert(client, analytics, metric_rows(broker, events[:500]), f"{broker}-old")
    client.portal.call(asyncio.to_thread, ch.migrate, settings.analytics_retention_days)  # the next start
    later = [(uuid.uuid4(), now - timedelta(hours=h), uuid.uuid4(), "login", 200) for h in (1, 30, 50)]
    insert(client, analytics, metric_rows(broker, events[500:] + later), f"{broker}-new")
    events += later
    stored = client.portal.call(ch.query, "SELECT DISTINCT day, user_id FROM usage_daily_users "
                                "WHERE broker_id = {b:UUID}", {"b": broker})
    assert sorted(stored) == sorted({(e[1].date(), e[2]) for e in events if e[2]})
    assert_engagement_exact(client, analytics, broker, events, now)
