"""``s3-sharing imports run|replay|history``, ``onboard-import`` and ``verify-import-access`` from a
terminal, against moto and a real PostgreSQL."""

import dagster as dg
import pytest

from s3_sharing import cli
from s3_sharing.inbound.assets import import_key

from .test_importer import EVENT_HEADER, RISK_HEADER, drop, rows

pytestmark = pytest.mark.e2e


def test_run_then_history_from_a_terminal(
    settings, sources_file, customer, postgres, monkeypatch, tmp_path, capsys
):
    monkeypatch.setenv("S3_SHARING_IMPORT_SOURCES", str(sources_file))
    monkeypatch.setenv("S3_SHARING_PG_DSN", postgres.dsn)
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    drop(
        customer,
        "riesgos/a.csv",
        RISK_HEADER,
        [["R-1", "Fraude", "operational", "3", ""], ["R-2", "", "", "", ""]],
    )

    assert cli.main(["imports", "run", "pirani"]) == 0
    ran = capsys.readouterr().out
    assert (
        "riesgos/a.csv  imported" in ran and "s3://pirani-exports/riesgos/_errors/a.csv.errors.csv" in ran
    ), ran

    assert cli.main(["imports", "run", "pirani"]) == 0
    assert "pirani: no new files" in capsys.readouterr().out

    assert cli.main(["imports", "history", "--status", "imported"]) == 0
    (header, row, *_) = capsys.readouterr().out.splitlines()
    assert header.split() == [
        "finished",
        "source",
        "entity",
        "key",
        "status",
        "read",
        "created",
        "updated",
        "rejected",
    ]
    assert row.split()[2:] == ["pirani", "risks", "riesgos/a.csv", "imported", "2", "1", "0", "1"]

    assert cli.main(["imports", "run", "nobody"]) == 2
    assert "no import source 'nobody'" in capsys.readouterr().err


def test_without_a_database_the_commands_say_which_setting_is_missing(settings, monkeypatch, capsys):
    monkeypatch.delenv("S3_SHARING_PG_DSN", raising=False)
    assert cli.main(["imports", "history"]) == 2
    assert "set S3_SHARING_PG_DSN" in capsys.readouterr().err


def test_dry_run_then_replay_after_the_parent_arrives(
    settings, sources_file, customer, postgres, monkeypatch, tmp_path, capsys
):
    monkeypatch.setenv("S3_SHARING_IMPORT_SOURCES", str(sources_file))
    monkeypatch.setenv("S3_SHARING_PG_DSN", postgres.dsn)
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    drop(customer, "eventos/a.csv", EVENT_HEADER, [["E-1", "R-1", "Robo", "2026-01-01", ""]])

    assert cli.main(["imports", "run", "pirani", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "eventos/a.csv: imported (dry run: nothing loaded) (1 read, 0 created" in out, out
    assert "dry run of 1 files; nothing was loaded or recorded" in out
    assert rows(postgres, "SELECT count(*) FROM import_ledger") == [(0,)]

    # The real run: the event names a risk that does not exist; the child's check says so.
    instance = dg.DagsterInstance.get()
    assert cli.main(["imports", "run", "pirani"]) == 0
    capsys.readouterr()
    check = instance.get_latest_asset_check_evaluation_record(
        dg.AssetCheckKey(import_key("pirani", "events"), "parents_resolved")
    )
    assert check is not None and not check.event.dagster_event.asset_check_evaluation_data.passed

    drop(customer, "riesgos/a.csv", RISK_HEADER, [["R-1", "Fraude", "operational", "3", ""]])
    assert cli.main(["imports", "run", "pirani"]) == 0
    assert cli.main(["imports", "replay", "pirani", "eventos/a.csv"]) == 0
    replayed = capsys.readouterr().out
    assert "eventos/a.csv  imported  1     1" in replayed, replayed
    assert rows(postgres, "SELECT reference_code FROM events") == [("E-1",)]

    assert cli.main(["imports", "replay", "pirani", "otros/a.csv"]) == 2
    assert "'otros/a.csv' is in no entity folder" in capsys.readouterr().err

    assert cli.main(["imports", "replay", "pirani", "eventos/missing.csv"]) == 2  # in a folder, not there
    printed = capsys.readouterr()
    assert printed.err == "s3-sharing imports replay: pirani/events: no file eventos/missing.csv to replay\n"
    assert "Traceback" not in printed.out + printed.err


def test_onboard_import_and_verify_import_access_from_a_terminal(
    settings, sources_file, customer, monkeypatch, capsys
):
    monkeypatch.setenv("S3_SHARING_IMPORT_SOURCES", str(sources_file))
    principal = "arn:aws:iam::111111111111:role/s3-sharing-platform"
    assert cli.main(["onboard-import", "pirani", "--platform-principal", principal]) == 0
    assert f'"AWS": "{principal}"' in capsys.readouterr().out

    assert cli.main(["verify-import-access", "pirani"]) == 0
    out = capsys.readouterr().out
    assert out.count("OK  ") == 7 and "verify-import-access pirani: connection OK" in out, out
