"""Private work directories: closed to others, removed after use, and swept of killed runs' leftovers."""

import os
import socket
import subprocess
import sys

import pytest

from s3_sharing.platform.workdir import WorkDirError, private_root, private_workdir, sweep


def _mode(path) -> int:
    return path.stat().st_mode & 0o777


def test_the_root_is_made_private_and_each_workdir_is_removed_after_use(tmp_path):
    root = tmp_path / "work"
    root.mkdir(mode=0o755)
    with private_workdir(root, "deliver-acme") as work:
        (work / "plain.csv").write_text("secret")
        assert _mode(root) == 0o700 and _mode(work) == 0o700
        assert work.name.startswith(f"deliver-acme.{os.getpid()}.{socket.gethostname()}.")
    assert list(root.iterdir()) == []


def test_a_killed_runs_directory_is_swept_and_live_or_foreign_ones_are_kept(tmp_path):
    root = private_root(tmp_path / "work")
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True)
    dead_pid = int(finished.stdout)
    host = socket.gethostname()
    dead = root / f"deliver-acme.{dead_pid}.{host}.x1"
    alive = root / f"deliver-acme.{os.getpid()}.{host}.x2"
    elsewhere = root / f"deliver-acme.{dead_pid}.other-host.x3"
    for path in (dead, alive, elsewhere):
        path.mkdir()
        (path / "plain.csv").write_text("secret")

    assert sweep(root) == [dead]
    assert sorted(root.iterdir()) == sorted([alive, elsewhere])


@pytest.mark.skipif(os.getuid() != 0, reason="giving the root to another user needs root")
def test_a_root_that_belongs_to_someone_else_is_refused(tmp_path):
    root = tmp_path / "work"
    root.mkdir()
    os.chown(root, 65534, 65534)
    with pytest.raises(WorkDirError, match="belongs to another user"):
        private_root(root)
