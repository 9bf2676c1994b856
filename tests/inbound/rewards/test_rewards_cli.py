"""``s3-sharing rewards run|replay|balance`` as an operator uses them: each file a run of the
rewards job, a replay that recomputes the same totals, a user's balance."""

import pytest

from s3_sharing import cli

from .test_processor import totals, tx

pytestmark = pytest.mark.e2e


@pytest.fixture
def configured(settings, fi_registry_file, fi_keys, postgres, landing, monkeypatch):
    monkeypatch.setenv("S3_SHARING_FI_REGISTRY", str(fi_registry_file))
    monkeypatch.setenv("S3_SHARING_INBOUND_KEY_FILE", str(fi_keys["inbound"].secret))
    monkeypatch.setenv("S3_SHARING_PG_DSN", str(postgres.dsn))
    monkeypatch.setenv("S3_SHARING_WORK_DIR", str(settings.duckdb_path.parent / "work"))


def test_run_then_balance_then_replay_gives_the_same_totals(configured, fi, postgres, capsys):
    key = fi.drop("2026-11-30", [tx(1), tx(2, mcc="5411"), tx(3, user="u2")])
    fi.drop("2026-12-01", [tx(4, kind="DEVOLUCION", amount="5000.00", original="T1")])

    assert cli.main(["rewards", "run"]) == 0
    out = capsys.readouterr().out
    assert f"banco_andes {key}: 3 loaded, 0 duplicates, 0 rejected, 400 points (rules v1)" in out
    assert "-50 points" in out

    assert cli.main(["rewards", "balance", "u1"]) == 0
    assert "u1  debit_rewards  250 points" in capsys.readouterr().out
    before = totals(postgres)

    assert cli.main(["rewards", "replay", key]) == 0
    assert "3 loaded" in capsys.readouterr().out
    after = totals(postgres)
    assert after[:3] == before[:3], "a replay recomputes the file: the same rows, points and balances"
    assert after[3] == before[3] + 1, "as a new attempt in the ledger"

    assert cli.main(["rewards", "run"]) == 0
    assert "no new FI files" in capsys.readouterr().out
    assert cli.main(["rewards", "balance", "nobody"]) == 0
    assert "nobody: no points yet" in capsys.readouterr().out
