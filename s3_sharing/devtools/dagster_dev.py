"""``dagster dev`` (webserver + daemon) as a managed child process, and its GraphQL API.

``s3-sharing demo --ui`` (``make dev``) runs it beside the local endpoints; the UI tests drive it
like a user would, through GraphQL and a browser.
"""

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from s3_sharing.devtools.ports import free_port
from s3_sharing.platform.settings import REPO_ROOT

WORKSPACE = REPO_ROOT / "workspace.yaml"
LOCAL_INSTANCE = (
    "telemetry:\n  enabled: false\n"
    # the daemon marks a launched run failed when its process died (a killed run worker)
    "run_monitoring:\n  enabled: true\n  poll_interval_seconds: 15\n"
)
"""The local ``DAGSTER_HOME/dagster.yaml`` (``make demo`` and ``make dev`` write it once)."""
LOCATION_STATUS = """
{ workspaceOrError { __typename ... on Workspace { locationEntries {
    name loadStatus locationOrLoadError { __typename ... on PythonError { message } } } } } }
"""


class GraphQLError(RuntimeError):
    """The webserver answered with errors, or the code location failed to load."""


@dataclass(frozen=True)
class DagsterDev:
    url: str
    process: subprocess.Popen[bytes]

    def graphql(self, query: str, variables: Mapping[str, Any] | None = None) -> dict[str, Any]:
        request = urllib.request.Request(
            f"{self.url}/graphql",
            data=json.dumps({"query": query, "variables": dict(variables or {})}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            answer = json.load(response)
        if answer.get("errors"):
            raise GraphQLError(json.dumps(answer["errors"])[:2000])
        return answer["data"]

    def skip_welcome(self) -> None:
        """Mark the UI's first-visit "join the community" dialog as seen: it loads a page from
        dagster.io, which an offline or headless session must not wait for."""
        self.graphql("mutation { setNuxSeen }")

    def wait_until_loaded(self, timeout: float = 180) -> None:
        """Until the webserver answers and every code location has loaded (or one fails to)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise GraphQLError(f"dagster dev exited with code {self.process.returncode}")
            try:
                entries = self.graphql(LOCATION_STATUS)["workspaceOrError"]["locationEntries"]
            except OSError:
                entries = []
            for entry in entries:
                loaded = entry["locationOrLoadError"] or {}
                if loaded.get("__typename") == "PythonError":
                    raise GraphQLError(f"code location {entry['name']} failed to load: {loaded['message']}")
            if entries and all(e["loadStatus"] == "LOADED" and e["locationOrLoadError"] for e in entries):
                return
            time.sleep(1)
        raise GraphQLError(f"the code locations did not load within {timeout:.0f}s")


@contextmanager
def dagster_dev(
    dagster_home: Path,
    environment: Mapping[str, str],
    port: int | None = None,
    output: IO[bytes] | None = None,
) -> Iterator[DagsterDev]:
    """Run ``dagster dev -w workspace.yaml`` on 127.0.0.1 until the block ends, then stop it and
    every process it started (webserver, daemon, code server, runs)."""
    dagster_home.mkdir(parents=True, exist_ok=True)
    instance_settings = dagster_home / "dagster.yaml"
    if not instance_settings.exists():
        instance_settings.write_text(LOCAL_INSTANCE)
    port = port or free_port()
    command = [
        sys.executable,
        "-m",
        "dagster",
        "dev",
        "-w",
        str(WORKSPACE),
        "-h",
        "127.0.0.1",
        "-p",
        str(port),
    ]
    process = subprocess.Popen(
        command,
        cwd=REPO_ROOT,
        env={**os.environ, **environment, "DAGSTER_HOME": str(dagster_home)},
        stdout=output,
        stderr=subprocess.STDOUT if output else None,
        start_new_session=True,  # its own process group, so stopping it reaches its children
    )
    try:
        yield DagsterDev(f"http://127.0.0.1:{port}", process)
    finally:
        _stop_group(process)


def _stop_group(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM lets dagster dev shut its services down; SIGKILL ends whatever is left."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=30)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()
