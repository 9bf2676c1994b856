"""A private, disposable PostgreSQL server on 127.0.0.1, like the other local endpoints.

It runs Debian's PostgreSQL binaries (``/usr/lib/postgresql/<version>/bin``; ``make install``
installs the package where it is missing). ``initdb`` refuses to run as root, so when root the
cluster belongs to the unprivileged ``nobody`` user. The cluster lives in a fresh directory
(under ``.local/`` when ``nobody`` can reach it) and is removed when the server stops; it trusts
connections from 127.0.0.1 only, so it needs no password. Production uses a managed PostgreSQL
and ``S3_SHARING_PG_DSN`` (README).
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from s3_sharing.devtools.ports import free_port

UNPRIVILEGED = "nobody"
DATABASE = "s3_sharing"
USER = "s3_sharing"


def postgres_bin() -> Path:
    """The newest installed PostgreSQL's binaries."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parts[-3]))
    if not found:
        raise RuntimeError(
            "PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb): run `make install`, "
            "or `apt-get install postgresql`"
        )
    return found[-1].parent


def _reachable_by_others(directory: Path) -> bool:
    return all(p.stat().st_mode & stat.S_IXOTH for p in [directory, *directory.parents])


@dataclass
class LocalPostgres:
    """``with LocalPostgres(base) as pg:`` starts a server; ``pg.dsn`` reaches its database."""

    base: Path | None = None
    port: int = field(default_factory=free_port)
    directory: Path | None = None
    process: subprocess.Popen[bytes] | None = None

    @property
    def dsn(self) -> str:
        return self._dsn(DATABASE)

    def _dsn(self, database: str) -> str:
        return f"postgresql://{USER}@127.0.0.1:{self.port}/{database}"

    def _as_owner(self) -> dict[str, object]:
        """subprocess arguments that run a command as the cluster's owner."""
        if os.geteuid() != 0:
            return {}
        return {"user": UNPRIVILEGED, "group": "nogroup", "extra_groups": [], "env": {"PATH": "/usr/bin"}}

    def start(self) -> LocalPostgres:
        binaries = postgres_bin()
        if self.base:
            self.base.mkdir(parents=True, exist_ok=True)
        base = self.base if self.base and _reachable_by_others(self.base) else None
        self.directory = Path(tempfile.mkdtemp(prefix="postgres-", dir=base))
        if os.geteuid() == 0:
            shutil.chown(self.directory, UNPRIVILEGED, "nogroup")
        data = self.directory / "data"
        initdb = [binaries / "initdb", "-D", data, "-U", USER, "--auth=trust", "-E", "UTF8", "--no-locale"]
        subprocess.run(
            [*initdb, "--no-sync"],  # a disposable cluster
            check=True,
            capture_output=True,
            **self._as_owner(),  # type: ignore[arg-type]
        )
        log = (self.directory / "server.log").open("wb")
        server = [binaries / "postgres", "-D", data, "-h", "127.0.0.1", "-p", str(self.port)]
        self.process = subprocess.Popen(
            [*server, "-k", self.directory, "-c", "fsync=off", "-c", "max_connections=200"],
            stdout=log,
            stderr=subprocess.STDOUT,
            **self._as_owner(),  # type: ignore[arg-type]
        )
        self._wait_until_up()
        with psycopg.connect(self._dsn("postgres"), autocommit=True) as admin:
            admin.execute(f"CREATE DATABASE {DATABASE}")
        return self

    def _wait_until_up(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"postgres exited with code {self.process.returncode}: {self._log_tail()}")
            try:
                psycopg.connect(self._dsn("postgres"), connect_timeout=1).close()
                return
            except psycopg.OperationalError:
                time.sleep(0.1)
        raise RuntimeError(f"postgres did not accept connections within {timeout:.0f}s: {self._log_tail()}")

    def _log_tail(self) -> str:
        assert self.directory is not None
        return (self.directory / "server.log").read_text(errors="replace")[-2000:]

    def stop(self) -> None:
        if self.process is not None:
            self.process.send_signal(2)  # SIGINT: PostgreSQL's fast shutdown
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self.process = None
        if self.directory is not None:
            shutil.rmtree(self.directory, ignore_errors=True)
            self.directory = None

    def __enter__(self) -> LocalPostgres:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc: object) -> None:
        self.stop()
