"""What the normalisation loads into a process: it runs in a rewards run beside Dagster, so a
library it does not use is memory the run pays for. (A fresh process: the test session has pandas
imported already.)"""

import subprocess
import sys

from s3_sharing.platform.settings import REPO_ROOT

SCRIPT = """
import sys, tempfile
from pathlib import Path
from s3_sharing.devtools import fi_files
from s3_sharing.devtools.keygen import generate_key_pair
from s3_sharing.inbound.rewards.normalise import normalise, read_header
from s3_sharing.inbound.rewards.registry import read_fi_registry

work = Path(tempfile.mkdtemp())
key = generate_key_pair(work / "keys", "fi")
registry = fi_files.demo_fi_registry(work / "rewards.yaml", work / "keys" / "fi.pub", key.fingerprint)
fi = read_fi_registry(registry).fi(fi_files.DEMO_FI)
plain = fi_files.write_csv(work / "plain.csv", fi_files.purchases(100))

class Sink:
    def write(self, buffer):
        pass

assert "pandas" not in sys.modules
result = normalise(plain, fi, read_header(plain, fi), Sink(), work)
assert result.rows_read == 100 and result.rows_rejected == 0, result
print("pandas" in sys.modules)
"""


def test_normalising_a_file_does_not_import_pandas():
    """DuckDB imports pandas when a query binds any Python value (36-50 MB measured)."""
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "False"
