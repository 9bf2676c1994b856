from datetime import datetime, timedelta

import duckdb
import pytest

from s3_sharing.devtools import datagen

END = datetime(2026, 1, 1, 12)


def _tables(path) -> dict[str, list[tuple]]:
    with duckdb.connect(str(path), read_only=True) as con:
        return {t: con.execute(f"select * from raw.{t} order by all").fetchall() for t in datagen.DDL}


def test_same_seed_gives_identical_data(tmp_path):
    scale = datagen.Scale(end=END, businesses=3, users_per_business=5, events_per_hour=10, hours=6, seed=11)
    datagen.generate(tmp_path / "a.duckdb", scale)
    datagen.generate(tmp_path / "b.duckdb", scale)
    assert _tables(tmp_path / "a.duckdb") == _tables(tmp_path / "b.duckdb")


def test_another_seed_gives_other_data(tmp_path):
    scale = datagen.Scale(end=END, businesses=2, users_per_business=5, events_per_hour=10, hours=3, seed=1)
    datagen.generate(tmp_path / "a.duckdb", scale)
    datagen.generate(tmp_path / "b.duckdb", datagen.Scale(**{**scale.__dict__, "seed": 2}))
    assert _tables(tmp_path / "a.duckdb")["transactions"] != _tables(tmp_path / "b.duckdb")["transactions"]


def test_scale_parameters_are_honoured(tmp_path):
    scale = datagen.Scale(end=END, businesses=7, users_per_business=9, events_per_hour=30, hours=5)
    counts = datagen.generate(tmp_path / "w.duckdb", scale)
    with duckdb.connect(str(tmp_path / "w.duckdb"), read_only=True) as con:
        assert con.execute("select count(distinct business_id) from raw.businesses").fetchone() == (7,)
        assert con.execute("select count(distinct user_id) from raw.users").fetchone() == (63,)
        lo, hi = con.execute("select min(updated_at), max(updated_at) from raw.transactions").fetchone()
    assert END - timedelta(hours=5) <= lo and hi < END
    activity = counts["transactions"] + counts["payments"]
    # Poisson(30) per business-hour over 35 business-hours, some quiet, plus ~10% late updates.
    assert 0.4 * 30 * 35 < activity < 1.5 * 30 * 35


def test_events_per_hour_zero_means_no_activity(tmp_path):
    counts = datagen.generate(tmp_path / "w.duckdb", datagen.Scale(end=END, events_per_hour=0, hours=2))
    assert counts["transactions"] == counts["payments"] == 0
    assert counts["users"] >= 4 * 20


def test_tricky_strings_are_present(tmp_path):
    datagen.generate(tmp_path / "w.duckdb", datagen.Scale(end=END, hours=2))
    with duckdb.connect(str(tmp_path / "w.duckdb"), read_only=True) as con:
        names = [r[0] for r in con.execute("select last_name || ' ' || first_name from raw.users").fetchall()]
        merchants = [r[0] for r in con.execute("select distinct merchant from raw.transactions").fetchall()]
    text = names + merchants
    assert any("," in s for s in text)
    assert any('"' in s for s in text)
    assert any("\n" in s for s in text)
    assert any(not s.isascii() for s in text)


def test_late_updates_append_newer_versions(tmp_path):
    datagen.generate(tmp_path / "w.duckdb", datagen.Scale(end=END, hours=12, events_per_hour=40))
    with duckdb.connect(str(tmp_path / "w.duckdb"), read_only=True) as con:
        (late,) = con.execute(
            """select count(*) from (
                 select transaction_id from raw.transactions
                 group by 1 having count(*) > 1 and max(updated_at) > min(updated_at) + interval 1 hour)"""
        ).fetchone()
    assert late > 0


def test_the_last_business_has_quiet_hours(tmp_path):
    scale = datagen.Scale(end=END, businesses=3, hours=12, events_per_hour=40)
    datagen.generate(tmp_path / "w.duckdb", scale)
    with duckdb.connect(str(tmp_path / "w.duckdb"), read_only=True) as con:
        active_hours = dict(
            con.execute(
                """select u.business_id, count(distinct date_trunc('hour', t.booked_at))
                   from raw.transactions t
                   join raw.accounts a using (account_id)
                   join raw.users u using (user_id)
                   group by 1"""
            ).fetchall()
        )
    assert active_hours["acme"] == 12
    assert active_hours.get(datagen.business_id(2), 0) < 12


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"businesses": 0}, "businesses must be at least 1"),
        ({"events_per_hour": -1}, "events_per_hour must be >= 0"),
        ({"end": datetime(2026, 1, 1, 12, 30)}, "hour boundary"),
    ],
)
def test_bad_scale_is_rejected(change, message):
    with pytest.raises(ValueError, match=message):
        datagen.Scale(**{"end": END, **change})


def test_no_row_refers_to_a_parent_that_was_never_received(tmp_path):
    """A user created in the last hours and received late is not there yet, nor are its accounts and
    their activity (dbt's relationships tests would fail on them: at 500 businesses they did)."""
    scale = datagen.Scale(end=END, businesses=40, users_per_business=50, events_per_hour=20, hours=3)
    datagen.generate(tmp_path / "w.duckdb", scale)
    with duckdb.connect(str(tmp_path / "w.duckdb"), read_only=True) as con:
        for child, key, parent in datagen.ORPHANS:
            orphans = con.execute(
                f"select count(*) from raw.{child} where {key} not in (select {key} from raw.{parent})"
            ).fetchone()
            assert orphans == (0,), (child, key, parent)
        assert con.execute("select count(*) from raw.transactions").fetchone()[0] > 0
