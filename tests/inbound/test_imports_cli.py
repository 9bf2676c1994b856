"""``s3-sharing imports run|history`` from a terminal, against moto and a real PostgreSQL."""

import pytest

from s3_sharing.cli.main import main

from .test_importer import RISK_HEADER, drop

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

    assert main(["imports", "run", "pirani"]) == 0
    ran = capsys.readouterr().out
    assert (
        "riesgos/a.csv  imported" in ran and "s3://pirani-exports/riesgos/_errors/a.csv.errors.csv" in ran
    ), ran

    assert main(["imports", "run", "pirani"]) == 0
    assert "pirani: no new files" in capsys.readouterr().out

    assert main(["imports", "history", "--status", "imported"]) == 0
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

    assert main(["imports", "run", "nobody"]) == 2
    assert "no import source 'nobody'" in capsys.readouterr().err


def test_without_a_database_the_commands_say_which_setting_is_missing(settings, monkeypatch, capsys):
    monkeypatch.delenv("S3_SHARING_PG_DSN", raising=False)
    assert main(["imports", "history"]) == 2
    assert "set S3_SHARING_PG_DSN" in capsys.readouterr().err
