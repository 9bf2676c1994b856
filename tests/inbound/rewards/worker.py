"""A rewards processor in a process of its own (to be killed): ``python -m
tests.inbound.rewards.worker <registry> <keys dir> <dsn> <work dir>`` processes the FI's pending
files against the endpoints its environment names."""

import sys
from pathlib import Path

from s3_sharing.devtools.keygen import KeyPair
from s3_sharing.inbound.rewards.registry import read_fi_registry
from s3_sharing.platform.postgres import Postgres

from .conftest import FI, make_processor


def main(registry: str, keys: str, dsn: str, work: str) -> None:
    names = ("inbound", "fi", "stranger", "audit", "platform")
    pairs = {n: KeyPair(Path(keys) / f"{n}.pub", Path(keys) / f"{n}.sec", "") for n in names}
    fi_registry = read_fi_registry(Path(registry))
    processor = make_processor(fi_registry, Postgres(dsn=dsn), pairs, Path(work), run_id="doomed")
    for outcome in processor.run(fi_registry.fi(FI)):
        print(outcome.describe(), flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:5])
