"""CPU cost of recording one calculation: the request path (`record()`) and the recorder's own work at
flush per row, without the database round trip (the same for any recorder).

    PYTHONPATH=. uv run python bench/recorder_bench.py [--rounds 20] [--block 1000]
    PYTHONPATH=<another commit's checkout>:. uv run python bench/recorder_bench.py   # its app, same bench

CPU time (`time.process_time`), not wall time: the box is shared. The body is the position-size example
and the result its real response bytes, as the pipeline passes them (`payload`). Knows two recorders:
the journal-first one (record() journals, a flush seals and reads the journal) and the previous
in-memory one (record() buffers, a flush builds the rows). Prints one JSON line: µs per calculation.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import orjson
from pydantic import TypeAdapter

from app.auth.principal import Principal
from app.calculations import service
from app.calculations.schemas import PositionSizeRequest
from app.calculations.store import CalculationRecorder
from bench.payloads import POSITION_SIZE_BODY as BODY


def main(rounds: int, block: int) -> None:
    payload = orjson.dumps(service.position_size(TypeAdapter(PositionSizeRequest).validate_json(BODY), False))
    principal = Principal(uuid.uuid4(), "secret_key", frozenset(), api_key_id=uuid.uuid4())
    usage = (1, 0.412, "EUR/USD", "USD", 1.0)
    recorder: Any = CalculationRecorder(None, {}, Path(tempfile.mkdtemp(prefix="recorder-bench-")))  # type: ignore[arg-type]
    journaled = hasattr(recorder, "sealed")
    if journaled:
        recorder.open()
    else:
        recorder.journal.open()
    ids = [str(uuid.uuid4()) for _ in range(block)]
    summaries = [{"calculationId": i} for i in ids]
    record_us: list[float] = []
    flush_us: list[float] = []
    for round_ in range(rounds + 1):  # round 0 warms up
        t0 = time.process_time()
        for s in summaries:
            recorder.record(principal, "position-size", BODY, s, payload, usage)
        t1 = time.process_time()
        if journaled:  # what flush() does to the rows besides inserting them
            recorder._seal()
            rows = recorder.sealed[0].read()
            recorder.sealed.pop(0).discard()
        else:
            rows = [recorder._row(p) for p in recorder.buffer]
            recorder.buffer.clear()
        t2 = time.process_time()
        assert len(rows) == block
        if round_:
            record_us.append((t1 - t0) / block * 1e6)
            flush_us.append((t2 - t1) / block * 1e6)
    print(json.dumps({"recorder": "journal-first" if journaled else "in-memory",
                      "record_us": round(statistics.median(record_us), 3),
                      "flush_us": round(statistics.median(flush_us), 3)}))


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--block", type=int, default=1000)
    a = ap.parse_args()
    main(a.rounds, a.block)
