"""Scheduled imports end to end below Dagster: the customer's bucket on moto (IAM enforced, the
import role assumed with its external id), real PostgreSQL, real CSV files, the GCS emulator."""

import csv
import io

import pytest

from s3_sharing.inbound import validation
from s3_sharing.inbound.apply import SPLIT_UPSERT_ROWS
from s3_sharing.inbound.importer import Importer
from s3_sharing.platform.storage import GcsArchive, S3Buckets

from ..conftest import ARCHIVE
from .conftest import CUSTOMER_BUCKET, RISKS, source_entry, source_of

pytestmark = pytest.mark.e2e

RISK_HEADER = ["Código", "Nombre", "Categoría", "Probabilidad", "Comentario"]
EVENT_HEADER = ["Código", "Código del riesgo", "Nombre", "Fecha de ocurrencia", "Pérdida"]


def drop(aws, key: str, header: list[str], rows: list[list[str]]) -> None:
    """The customer's ETL writes a file into its bucket."""
    buffer = io.StringIO()
    csv.writer(buffer).writerows([header, *rows])
    aws.customer_client().put_object(Bucket=CUSTOMER_BUCKET, Key=key, Body=buffer.getvalue().encode())


def run(sources_file, postgres, source_id: str = "pirani", only=None):
    source = source_of(sources_file, source_id)
    importer = Importer(
        source, source.open_bucket(S3Buckets()), postgres, GcsArchive(bucket=ARCHIVE), "test-run"
    )
    return list(importer.run(only))


def rows(postgres, sql: str, *params):
    with postgres.connect() as connection:
        return connection.execute(sql, params).fetchall()


def error_lines(aws, key: str) -> list[list[str]]:
    body = aws.customer_client().get_object(Bucket=CUSTOMER_BUCKET, Key=key)["Body"].read().decode()
    return list(csv.reader(io.StringIO(body)))


def test_parents_first_then_children_with_their_association(sources_file, customer, postgres):
    # The events file sorts before the risks file and names risks created in the same run.
    drop(
        customer, "eventos/2026-01-01.csv", EVENT_HEADER, [["E-1", "R-1", "Fraude", "2026-01-01", "1500.25"]]
    )
    drop(
        customer, "riesgos/2026-01-01.csv", RISK_HEADER, [["R-1", "Fraude externo", "Operational", "3", "x"]]
    )

    outcomes = run(sources_file, postgres)

    assert [(o.entity, o.status, o.rows_created) for o in outcomes] == [
        ("risks", "imported", 1),
        ("events", "imported", 1),
    ]
    assert outcomes[0].extra_headers == ["Comentario"]  # reported and ignored
    assert rows(
        postgres,
        "SELECT e.reference_code, r.reference_code, e.loss_amount::text, r.category"
        " FROM events e JOIN risks r ON r.id = e.parent_id",
    ) == [("E-1", "R-1", "1500.25", "operational")]


def test_create_then_update_and_the_reasons_for_refused_rows(sources_file, customer, postgres):
    drop(
        customer,
        "riesgos/a.csv",
        RISK_HEADER,
        [["R-1", "Fraude", "operational", "3", ""], ["R-2", "Crédito", "credit", "", ""]],
    )
    drop(customer, "eventos/a.csv", EVENT_HEADER, [["E-1", "R-1", "Robo", "2026-01-01", ""]])
    run(sources_file, postgres)
    drop(
        customer,
        "riesgos/b.csv",
        RISK_HEADER,
        [["R-1", "Fraude externo", "operational", "4", ""], ["R-3", "Mercado", "market", "", ""]],
    )
    drop(
        customer,
        "eventos/b.csv",
        EVENT_HEADER,
        [["E-1", "R-1", "Robo otra vez", "2026-01-02", ""], ["E-2", "R-9", "Error", "2026-01-02", ""]],
    )

    risks, events = run(sources_file, postgres)

    assert (risks.rows_created, risks.rows_updated, risks.rows_rejected) == (1, 1, 0)
    assert rows(postgres, "SELECT reference_code, name, likelihood FROM risks ORDER BY 1") == [
        ("R-1", "Fraude externo", 4),
        ("R-2", "Crédito", None),
        ("R-3", "Mercado", None),
    ]
    assert (events.status, events.rows_created, events.rows_rejected) == ("imported", 0, 2)
    assert error_lines(customer, "eventos/_errors/b.csv.errors.csv") == [
        ["line", "referenceCode", "column", "value", "message"],
        [
            "2",
            "E-1",
            "Código",
            "E-1",
            "already exists in events; create does not update (use update or upsert)",
        ],
        [
            "3",
            "E-2",
            "Código del riesgo",
            "R-9",
            "no risks with this referenceCode (a parent is imported before its children)",
        ],
    ]
    assert rows(postgres, "SELECT name FROM events") == [("Robo",)]  # untouched


UPDATE_RISKS = {
    **RISKS,
    "action": "update",
    "mapping": {"referenceCode": "Código", "likelihood": "Probabilidad"},
}


@pytest.mark.parametrize("sources_file", [[source_entry(entities=[UPDATE_RISKS])]], indirect=True)
def test_update_changes_only_the_mapped_fields_and_refuses_a_missing_key(sources_file, customer, postgres):
    with postgres.connect() as connection:  # what an earlier import created
        (ledger,) = connection.execute(
            "INSERT INTO import_ledger (source, entity, bucket, key, etag, size, sha256, status, started_at)"
            " VALUES ('pirani', 'risks', 'b', 'k', 'e', 0, 's', 'imported', now()) RETURNING id"
        ).fetchone()
        connection.execute(
            "INSERT INTO risks (source, reference_code, name, likelihood, import_id)"
            " VALUES ('pirani', 'R-1', 'Fraude', 1, %s)",
            (ledger,),
        )
    drop(customer, "riesgos/a.csv", ["Código", "Probabilidad"], [["R-1", "5"], ["R-7", "2"]])

    (outcome,) = run(sources_file, postgres)

    assert (outcome.rows_updated, outcome.rows_created, outcome.rows_rejected) == (1, 0, 1)
    assert rows(postgres, "SELECT reference_code, name, likelihood FROM risks") == [("R-1", "Fraude", 5)]
    assert error_lines(customer, "riesgos/_errors/a.csv.errors.csv")[1] == [
        "3",
        "R-7",
        "Código",
        "R-7",
        "no such risks; update does not create (use create or upsert)",
    ]


@pytest.mark.parametrize("keys_budget", [validation.KEYS_BUDGET, 0], ids=["keys-counted", "too-many-keys"])
def test_bad_values_are_rejected_row_by_row_with_line_column_value_and_reason(
    sources_file, customer, postgres, monkeypatch, keys_budget
):
    # With no room for the keys, the validation cannot tell whether one repeats: the database finds it.
    monkeypatch.setattr(validation, "KEYS_BUDGET", keys_budget)
    drop(
        customer,
        "eventos/x.csv",
        EVENT_HEADER,
        [
            ["E-1", "R-1", "Bien", "2026-01-01", "10.5"],
            ["E-2", "R-1", "", "2026-02-30", "diez"],  # three problems, one row
            ["E-1", "R-1", "Repetido", "2026-01-03", ""],
            ["E-3", "", "Sin riesgo", "2026-01-03", ""],
        ],
    )
    drop(
        customer,
        "riesgos/x.csv",
        RISK_HEADER,
        [["R-1", "Fraude", "catastrófico", "3", ""], ["R-1b", "Ok", "", "tres", ""]],
    )
    drop(customer, "riesgos/y.csv", RISK_HEADER, [["R-1", "Fraude", "operational", "3", ""]])

    risks_x, _, events = run(sources_file, postgres)

    assert (risks_x.rows_read, risks_x.rows_created, risks_x.rows_rejected) == (2, 0, 2)
    assert error_lines(customer, "riesgos/_errors/x.csv.errors.csv")[1:] == [
        [
            "2",
            "R-1",
            "Categoría",
            "catastrófico",
            "not one of operational, credit, market, liquidity, compliance, strategic",
        ],
        ["3", "R-1b", "Probabilidad", "tres", "not an integer"],
    ]
    assert (events.rows_read, events.rows_created, events.rows_rejected) == (4, 1, 3)
    assert error_lines(customer, "eventos/_errors/x.csv.errors.csv")[1:] == [
        ["3", "E-2", "Fecha de ocurrencia", "2026-02-30", "not a date like 2026-01-31"],
        ["3", "E-2", "Nombre", "", "required value missing"],
        ["3", "E-2", "Pérdida", "diez", "not a decimal number like 1234.56"],
        ["4", "E-1", "Código", "E-1", "referenceCode repeated in this file (first at line 2)"],
        ["5", "E-3", "Código del riesgo", "", "required value missing"],
    ]
    assert rows(postgres, "SELECT reference_code, loss_amount::text FROM events") == [("E-1", "10.5")]
    archived = GcsArchive(bucket=ARCHIVE).listing("imports/pirani/events/")
    assert [name.rsplit("/", 1)[-1] for name in archived] == ["x.csv.errors.csv"]


def test_a_missing_required_column_rejects_the_file_naming_the_column(sources_file, customer, postgres):
    drop(customer, "riesgos/a.csv", ["Código", "Categoría", "Probabilidad"], [["R-1", "credit", "1"]])

    (outcome,) = run(sources_file, postgres)

    assert outcome.status == "rejected" and "'Nombre' (field name)" in outcome.message
    assert rows(postgres, "SELECT count(*) FROM risks") == [(0,)]
    assert rows(postgres, "SELECT status, message FROM import_ledger") == [("rejected", outcome.message)]
    lines = error_lines(customer, "riesgos/_errors/a.csv.errors.csv")
    assert len(lines) == 2 and "missing column 'Nombre'" in lines[1][4]
    assert run(sources_file, postgres) == [], "a rejected file is not retried until it changes"


def test_a_file_that_breaks_after_its_first_batches_imports_nothing_and_the_next_file_imports(
    sources_file, customer, postgres
):
    """The rows are COPYed as they are validated: a row too many columns long 40,000 lines in
    (after several 1 MiB batches went to the server) must still leave nothing of the file."""
    good = [[f"R-{i}", f"Riesgo número {i}", "market", "1", "x" * 20] for i in range(40_000)]
    drop(customer, "riesgos/a.csv", RISK_HEADER, [*good, ["R-x", "Roto", "market", "1", "", "extra"]])
    drop(customer, "riesgos/b.csv", RISK_HEADER, [["R-b", "Bien", "market", "2", ""]])

    broken, fine = run(sources_file, postgres)

    assert broken.status == "rejected" and "cannot be read as CSV" in broken.message, broken.describe()
    assert fine.status == "imported" and fine.rows_created == 1
    assert rows(postgres, "SELECT reference_code FROM risks") == [("R-b",)]
    assert rows(postgres, "SELECT key, status FROM import_ledger ORDER BY key") == [
        ("riesgos/a.csv", "rejected"),
        ("riesgos/b.csv", "imported"),
    ]


REJECT_FILE = {**RISKS, "error_policy": "reject_file"}


@pytest.mark.parametrize("sources_file", [[source_entry(entities=[REJECT_FILE])]], indirect=True)
def test_reject_file_loads_nothing_from_a_file_with_one_bad_row(sources_file, customer, postgres):
    drop(
        customer,
        "riesgos/a.csv",
        RISK_HEADER,
        [["R-1", "Fraude", "operational", "3", ""], ["R-2", "", "", "", ""]],
    )

    (outcome,) = run(sources_file, postgres)

    assert (outcome.status, outcome.rows_created, outcome.rows_rejected) == ("rejected", 0, 1)
    assert rows(postgres, "SELECT count(*) FROM risks") == [(0,)]


def test_the_same_file_imports_once_and_new_content_under_its_key_imports_again(
    sources_file, customer, postgres
):
    drop(customer, "riesgos/a.csv", RISK_HEADER, [["R-1", "Fraude", "operational", "3", ""]])
    assert [o.status for o in run(sources_file, postgres)] == ["imported"]
    assert run(sources_file, postgres) == []  # listed again: already in the ledger
    drop(customer, "riesgos/a.csv", RISK_HEADER, [["R-1", "Fraude", "operational", "3", ""]])  # arrives twice
    assert [o.status for o in run(sources_file, postgres)] in ([], ["skipped"])
    drop(customer, "riesgos/a.csv", RISK_HEADER, [["R-1", "Fraude", "operational", "5", ""]])  # changed

    (changed,) = run(sources_file, postgres)

    assert (changed.status, changed.rows_updated) == ("imported", 1)
    assert rows(postgres, "SELECT likelihood FROM risks") == [(5,)]
    assert rows(postgres, "SELECT count(*) FROM import_ledger") == [(2,)]


def test_a_hundred_files_in_one_run(sources_file, customer, postgres):
    for n in range(100):
        drop(
            customer,
            f"riesgos/{n:03d}.csv",
            RISK_HEADER,
            [[f"R-{n}-{i}", f"Riesgo {i}", "market", "1", ""] for i in range(5)],
        )

    outcomes = run(sources_file, postgres)

    assert [o.key for o in outcomes] == [f"riesgos/{n:03d}.csv" for n in range(100)]
    assert {o.status for o in outcomes} == {"imported"}
    assert rows(postgres, "SELECT count(*) FROM risks") == [(500,)]
    assert run(sources_file, postgres) == []


KILL_AFTER = """
import os, signal, sys
from s3_sharing.inbound import importer
from s3_sharing.inbound.sources import read_sources
from s3_sharing.platform.postgres import Postgres
from s3_sharing.platform.storage import S3Buckets

point = sys.argv[3]
real = getattr(importer, point)

def then_die(*args, **kwargs):
    result = real(*args, **kwargs)
    os.kill(os.getpid(), signal.SIGKILL)  # no cleanup, no rollback from our side
    return result

setattr(importer, point, then_die)
source = read_sources(__import__("pathlib").Path(sys.argv[1])).get("pirani")
for outcome in importer.Importer(source, source.open_bucket(S3Buckets()), Postgres(dsn=sys.argv[2])).run():
    print(outcome.describe())
"""


@pytest.mark.parametrize("point", ["apply_rows", "write_error_file"])
def test_a_process_killed_mid_file_leaves_nothing_and_the_rerun_imports_exactly_once(
    sources_file, customer, postgres, point
):
    import subprocess
    import sys

    good = [[f"R-{i}", f"Riesgo {i}", "market", "2", ""] for i in range(1000)]
    drop(customer, "riesgos/big.csv", RISK_HEADER, [*good, ["R-bad", "", "", "", ""]])
    killed = subprocess.run(
        [sys.executable, "-c", KILL_AFTER, str(sources_file), postgres.dsn, point],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert killed.returncode == -9, killed.stderr[-2000:]
    assert rows(postgres, "SELECT count(*) FROM risks") == [(0,)]
    assert rows(postgres, "SELECT count(*) FROM import_ledger") == [(0,)]

    (outcome,) = run(sources_file, postgres)

    assert (outcome.status, outcome.rows_created, outcome.rows_rejected) == ("imported", 1000, 1)
    assert rows(postgres, "SELECT count(*), count(DISTINCT reference_code) FROM risks") == [(1000, 1000)]
    assert run(sources_file, postgres) == []
    assert rows(postgres, "SELECT count(*) FROM import_ledger") == [(1,)]


IMPORT_FILES = """
import sys, time
from pathlib import Path
from s3_sharing.inbound import importer as module
from s3_sharing.inbound.importer import Importer
from s3_sharing.inbound.sources import read_sources
from s3_sharing.platform.postgres import Postgres
from s3_sharing.platform.storage import S3Buckets

real_apply = module.apply_rows

def slow_apply(*args, **kwargs):  # a slow commit: the file's new keys stay uncommitted a second
    applied = real_apply(*args, **kwargs)
    time.sleep(1)
    return applied

module.apply_rows = slow_apply
source = read_sources(Path(sys.argv[1])).get("pirani")
importer = Importer(source, source.open_bucket(S3Buckets()), Postgres(dsn=sys.argv[2]))
risks = source.entity("risks")
files = importer.pending(risks)
barrier = Path(sys.argv[4])
(barrier / sys.argv[3]).touch()
while len(list(barrier.iterdir())) < 2:  # both listed their files: now both import at once
    time.sleep(0.01)
for file in reversed(files) if sys.argv[3] == "reversed" else files:
    outcome = importer.import_file(risks, file)
    print(outcome.status, outcome.key, outcome.rows_created, outcome.rows_updated)
"""


def test_overlapping_runs_import_each_file_once_and_never_race_on_a_new_key(
    sources_file, customer, postgres, tmp_path
):
    """Two processes import the same pending files at once, in opposite orders (a scheduled run and
    an operator's), and the files upsert the same new keys: an upsert inserts the keys it did not
    find, so without the entity's lock two files would insert a key at once and one would fail on
    the unique index."""
    import subprocess
    import sys

    files = [f"riesgos/{n}.csv" for n in range(4)]
    for n, key in enumerate(files):  # large enough for the update-then-insert upsert; 500 new keys each
        keys = range(500 * n, 500 * n + SPLIT_UPSERT_ROWS)
        drop(customer, key, RISK_HEADER, [[f"R-{i}", f"Riesgo {i}", "market", str(n + 1), ""] for i in keys])
    command = [sys.executable, "-c", IMPORT_FILES, str(sources_file), postgres.dsn]
    runs = [
        subprocess.Popen(
            [*command, order, str(tmp_path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for order in ("forward", "reversed")
    ]
    finished = [process.communicate(timeout=180) for process in runs]

    assert [process.returncode for process in runs] == [0, 0], [err[-2000:] for _, err in finished]
    outcomes = [line.split() for out, _ in finished for line in out.splitlines()]
    imported = sorted(
        (key, int(created), int(updated))
        for status, key, created, updated in outcomes
        if status == "imported"
    )
    assert [key for key, *_ in imported] == files  # each file once, by one of the two runs
    distinct = SPLIT_UPSERT_ROWS + 1500
    assert sum(created for _, created, _ in imported) == distinct
    assert sum(updated for *_, updated in imported) == 4 * SPLIT_UPSERT_ROWS - distinct
    assert sorted(status for status, *_ in outcomes) == ["imported"] * 4 + ["skipped"] * 4
    assert rows(postgres, "SELECT count(*), count(DISTINCT reference_code) FROM risks") == [
        (distinct, distinct)
    ]
    assert rows(postgres, "SELECT count(*) FROM import_ledger WHERE status = 'imported'") == [(4,)]
