"""What the benchmarks share: a process's own peak RSS, a fresh migrated database, and the
median of interleaved rounds."""

import uuid
from collections.abc import Callable


def own_peak_rss_mb() -> float:
    return _own_status_mb("VmHWM:")


def own_rss_mb() -> float:
    """The process's resident memory now: measured before a pipeline's work, what its imports and
    set-up hold, so its peak minus this is what the work itself took."""
    return _own_status_mb("VmRSS:")


def _own_status_mb(field: str) -> float:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) / 1024 for line in status if line.startswith(field))


def fresh_database(admin_dsn: str) -> str:
    """A new database on the server, migrated, and the server's dirty pages written out, so a
    pipeline does not pay for the checkpoint of the one measured before it; its DSN. (Imports here:
    a child process that only measures its own RSS does not pay for them.)"""
    import psycopg

    from s3_sharing.inbound.database import migrate_inbound

    name = f"bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin_dsn, autocommit=True) as connection:
        connection.execute(f"CREATE DATABASE {name}")
    dsn = admin_dsn.rsplit("/", 1)[0] + f"/{name}"
    with psycopg.connect(dsn) as connection:
        migrate_inbound(connection)
    with psycopg.connect(admin_dsn, autocommit=True) as connection:
        connection.execute("CHECKPOINT")
    return dsn


def in_rounds(repeat: int, measure_round: Callable[[], list[dict]]) -> list[dict]:
    """Each pipeline's typical run of ``repeat`` interleaved rounds (``measure_round`` measures every
    pipeline once, in order), printing each round's seconds as it ends."""
    rounds = []
    for number in range(1, repeat + 1):
        rounds.append(measure_round())
        print(f"round {number}: " + ", ".join(f"{r['pipeline']} {r['seconds']:.1f} s" for r in rounds[-1]))
    return [typical(list(runs)) for runs in zip(*rounds, strict=True)]


def typical(runs: list[dict]) -> dict:
    """The run of median seconds, with the highest peak RSS of all the runs: this machine's timings
    vary by half from one minute to the next, its memory does not."""
    median = sorted(runs, key=lambda r: r["seconds"])[len(runs) // 2]
    return median | {"peak_rss_mb": max(r["peak_rss_mb"] for r in runs), "runs": len(runs)}
