"""Analytics queries on 10 M generated events in an embedded ClickHouse (chdb), timed.

    uv run python -m bench.analytics_bench               # 10,000,000 events, 7 interleaved rounds
    uv run python -m bench.analytics_bench --events 1000000 --rounds 3

The events are drawn with NumPy (90 days; 50 brokers, the largest with ~30 % of the traffic; 16
endpoints, 40 instruments, 8 account currencies; 20 % of events with a user; widget loads, logins,
failed calculations), carried to ClickHouse as Arrow record batches of 1 M rows into a staging table
of small integers, and turned into `usage_metrics` rows (UUIDs, names) by one INSERT … SELECT per
batch: ten inserts, so ten parts, as a real table has between merges; the materialized views fill the
rollups as they do for the shipper's inserts. Each report (the same functions the API calls,
app.analytics.queries) is timed `--rounds` times, the reports interleaved within each round, first with
the parts as inserted and then after OPTIMIZE … FINAL of every table; the
median and the slowest run are printed as Markdown. It uses its own temporary chdb path, never the
app's data directory.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa

from app.analytics.clickhouse import ROLLUPS, TABLE, ClickHouse
from app.analytics.queries import REPORTS, Scope, Window
from app.config import Settings

BROKERS = 50
ENDPOINTS = ["position-size", "pip-value", "margin", "pnl", "risk-reward", "kelly", "risk-of-ruin", "lots",
             "portfolio", "multi-leg", "projection", "atr", "cross-rate", "convert", "batch", "var"]
PAIRS = ["EURUSD", "GBPUSD", "USDJPY", "AUDUSD", "USDCAD", "USDCHF", "NZDUSD", "EURGBP", "EURJPY", "GBPJPY",
         "XAUUSD", "XAGUSD", "US30", "NAS100", "SPX500", "GER40", "UK100", "BTCUSD", "ETHUSD", "USOIL"]
PAIRS += [f"X{i:02d}USD" for i in range(20)]
CURRENCIES = ["USD", "EUR", "GBP", "JPY", "AUD", "CHF", "CAD", "SGD"]
EVENT_TYPES = ["calculation", "widget_load", "login", "key_change", "config_change", "export"]
END = datetime(2026, 12, 1, tzinfo=UTC)
DAYS = 90
BATCH = 1_000_000


def generate(rng: np.random.Generator, n: int) -> pa.RecordBatch:
    broker_weights = np.r_[0.30, np.full(BROKERS - 1, 0.70 / (BROKERS - 1))]
    event_type = rng.choice(len(EVENT_TYPES), n, p=[0.80, 0.15, 0.03, 0.005, 0.01, 0.005]).astype(np.uint8)
    is_calc = event_type == 0
    seconds = rng.integers(0, DAYS * 86_400, n)
    return pa.record_batch({
        "ms": (int((END - timedelta(days=DAYS)).timestamp()) + seconds) * 1000 + rng.integers(0, 1000, n),
        "broker": rng.choice(BROKERS, n, p=broker_weights).astype(np.uint16),
        "user": np.where(rng.random(n) < 0.2, rng.integers(1, 20_000, n), 0).astype(np.uint32),
        "event_type": event_type,
        "endpoint": np.where(is_calc, rng.zipf(1.6, n) % len(ENDPOINTS), 0).astype(np.uint8),
        "instrument": np.where(is_calc, rng.zipf(1.4, n) % len(PAIRS) + 1, 0).astype(np.uint8),
        "currency": np.where(is_calc, rng.choice(len(CURRENCIES), n, p=[.5, .2, .1, .05, .05, .04, .03, .03]) + 1,
                             0).astype(np.uint8),
        "risk": np.where(is_calc, rng.choice([0.5, 1.0, 1.5, 2.0, 3.0], n), np.nan),
        "status": np.where(is_calc & (rng.random(n) < 0.02), 422, 200).astype(np.uint16),
        "latency": np.where(is_calc, rng.lognormal(0.5, 0.6, n), np.nan).astype(np.float32),
        "units": np.where(is_calc, np.maximum(1, rng.zipf(3.0, n)), 0).astype(np.uint32),
    })


def load(ch: ClickHouse, events: int, brokers: list[uuid.UUID]) -> float:
    client = ch.client
    client.command("CREATE TABLE staging (ms Int64, broker UInt16, user UInt32, event_type UInt8, endpoint UInt8, "
                   "instrument UInt8, currency UInt8, risk Nullable(Float64), status UInt16, "
                   "latency Nullable(Float32), units UInt32) ENGINE = Memory")
    arrays = {"b": [str(b) for b in brokers], "e": EVENT_TYPES, "p": ENDPOINTS, "i": [""] + PAIRS,
              "c": [""] + CURRENCIES}
    started = time.perf_counter()
    rng = np.random.default_rng(15)
    for at in range(0, events, BATCH):
        batch = generate(rng, min(BATCH, events - at))
        client.insert_arrow("staging", pa.Table.from_batches([batch]))
        client.command(
            f"INSERT INTO {TABLE} SELECT generateUUIDv4(number) AS event_id, "
            "if(event_type = 0, 'calculations', if(event_type = 1, 'usage_events', 'audit_logs')), "
            "fromUnixTimestamp64Milli(ms, 'UTC'), toUUID(arrayElement({b:Array(String)}, broker + 1)), "
            "if(user = 0, NULL, toUUID(concat('00000000-0000-4000-8000-', leftPad(toString(user), 12, '0')))), "
            "NULL, arrayElement({e:Array(String)}, event_type + 1), '', "
            "if(event_type = 0, arrayElement({p:Array(String)}, endpoint + 1), ''), "
            "arrayElement({i:Array(String)}, instrument + 1), arrayElement({c:Array(String)}, currency + 1), "
            "if(isNaN(risk), NULL, risk), status, if(isNaN(latency), NULL, latency), units "
            "FROM (SELECT *, rowNumberInAllBlocks() AS number FROM staging)", parameters=arrays)
        client.command("TRUNCATE TABLE staging")
    client.command("DROP TABLE staging")
    return time.perf_counter() - started


def cases(brokers: list[uuid.UUID]) -> list[tuple[str, str, Scope, Window]]:
    month = Window(END - timedelta(days=30), END, "day")
    week = Window(END - timedelta(days=7), END, "hour")
    quarter = Window(END - timedelta(days=DAYS), END, "week")
    big, small = Scope(brokers[0]), Scope(brokers[7])
    return [
        ("usage, largest broker (30 % of events), 30 days by day", "usage", big, month),
        ("usage, largest broker, 7 days by hour", "usage", big, week),
        ("usage, a typical broker (1.4 % of events), 30 days by day", "usage", small, month),
        ("engagement, largest broker, 30 days by day", "engagement", big, month),
        ("engagement, largest broker, 90 days by week", "engagement", big, quarter),
        ("instruments, largest broker, 30 days by day", "instruments", big, month),
        ("instruments, a typical broker, 30 days by day", "instruments", small, month),
        ("usage, every broker, 30 days by day", "usage", Scope(None), month),
    ]


async def time_reports(ch: ClickHouse, brokers: list[uuid.UUID], rounds: int) -> dict[str, list[float]]:
    runs: dict[str, list[float]] = {}
    chosen = cases(brokers)
    for _name, report, scope, window in chosen:  # one warm-up each (first reads of the columns from disk)
        await REPORTS[report](ch, scope, window)
    for _ in range(rounds):
        for name, report, scope, window in chosen:
            started = time.perf_counter()
            await REPORTS[report](ch, scope, window)
            runs.setdefault(name, []).append((time.perf_counter() - started) * 1000)
    return runs


def table(title: str, runs: dict[str, list[float]]) -> str:
    lines = [f"**{title}**", "", "| report | median ms | slowest ms |", "|---|---:|---:|"]
    lines += [f"| {name} | {statistics.median(ms):.0f} | {max(ms):.0f} |" for name, ms in runs.items()]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    data_dir = Path(tempfile.mkdtemp(prefix="analytics-bench-"))
    try:
        ch = ClickHouse.connect(Settings(data_dir=data_dir))
        ch.migrate(3650)
        brokers = [uuid.UUID(int=i + 1) for i in range(BROKERS)]
        seconds = load(ch, args.events, brokers)
        count = ch.client.query(f"SELECT count(), count(DISTINCT _part) FROM {TABLE}").result_rows[0]
        print(f"Loaded {count[0]:,} events in {seconds:.1f} s ({count[0] / seconds:,.0f} events/s), "
              f"{count[1]} parts.\n")
        print(table("As inserted", asyncio.run(time_reports(ch, brokers, args.rounds))) + "\n")
        started = time.perf_counter()
        for name in (TABLE, *ROLLUPS):
            ch.client.command(f"OPTIMIZE TABLE {name} FINAL")
        print(f"OPTIMIZE … FINAL: {time.perf_counter() - started:.1f} s\n")
        print(table("After merges", asyncio.run(time_reports(ch, brokers, args.rounds))))
        ch.close()
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
