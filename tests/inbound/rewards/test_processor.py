"""FI files to reward points, end to end against moto (IAM enforced), a real PostgreSQL and files
sealed by GnuPG as an FI seals them; error files opened with GnuPG as the FI opens them."""

import re
import time
from datetime import UTC, datetime, timedelta

import pytest
import yaml

from s3_sharing.inbound.rewards import load as load_module
from s3_sharing.inbound.rewards import normalise
from s3_sharing.inbound.rewards.processor import balance
from s3_sharing.inbound.rewards.registry import read_fi_registry

from ...gpg import Gpg
from .conftest import FI, LANDING, make_processor, registry_document, rules

pytestmark = pytest.mark.e2e

DAY = "2026-11-30T{}:00-05:00"


def tx(n, user="u1", amount="10000.00", kind="COMPRA", mcc="5999", at="10:00", original="", card="tok_1"):
    return (f"T{n}", user, card, amount, "COP", DAY.format(at), kind, mcc, "Tienda", original)


def totals(postgres):
    """(transactions, sum of reward rows, sum of balances, ledger entries)."""
    with postgres.connect() as connection:
        return connection.execute(
            "SELECT (SELECT count(*) FROM fi_transactions),"
            " (SELECT coalesce(sum(points), 0) FROM reward_points),"
            " (SELECT coalesce(sum(points), 0) FROM reward_balances),"
            " (SELECT count(*) FROM fi_file_ledger)"
        ).fetchone()


def test_a_file_becomes_points_once_and_its_balance_is_queryable(fi, processor, fi_registry, postgres):
    fi.drop("day1", [tx(1), tx(2, mcc="5411"), tx(3, kind="RETIRO"), tx(4, user="u2", amount="150.75")])
    fi_ = fi_registry.fi(FI)

    (outcome,) = list(processor.run(fi_))

    assert outcome.status == "loaded", outcome.describe()
    assert (outcome.rows_read, outcome.rows_loaded, outcome.rows_rejected) == (4, 4, 0)
    assert outcome.signed_by == fi.keys["fi"].fingerprint.upper() and outcome.rules_version == 1
    # 10,000 COP at a point per 100 COP = 100; MCC 5411 doubles; a cash withdrawal earns nothing
    assert balance(postgres, "u1") == [("debit_rewards", 300)]
    assert balance(postgres, "u2") == [("debit_rewards", 1)]  # 150.75 COP → 1.5075, floored
    with postgres.connect() as connection:
        stored = connection.execute(
            "SELECT amount_minor, currency, occurred_at, business_day, type FROM fi_transactions"
            " WHERE transaction_id = 'T4'"
        ).fetchone()
    assert stored[:2] == (15075, "COP") and stored[4] == "purchase"
    assert stored[2] == datetime(2026, 11, 30, 15, 0, tzinfo=UTC) and str(stored[3]) == "2026-11-30"

    assert list(processor.run(fi_)) == [], "the ledger has it: nothing pending"
    (again,) = [processor.process(fi_, v) for v in processor.listing(fi_)]
    assert again.status == "skipped" and totals(postgres) == (4, 301, 301, 1)


def test_duplicates_within_and_across_files_load_once(fi, processor, fi_registry, postgres):
    fi.drop("a", [tx(1), tx(1), tx(2)])
    fi.drop("b", [tx(2), tx(3)])
    outcomes = list(processor.run(fi_registry.fi(FI)))
    assert [(o.rows_loaded, o.rows_duplicate) for o in outcomes] == [(2, 1), (1, 1)]
    assert totals(postgres)[:3] == (3, 300, 300)


@pytest.mark.parametrize("ids_budget", [normalise.KEYS_BUDGET, 0], ids=["ids-counted", "too-many-ids"])
def test_the_first_line_of_a_repeated_id_is_loaded_and_the_repeat_is_counted_with_its_amount(
    fi, processor, fi_registry, postgres, monkeypatch, ids_budget
):
    # With no room for the ids, the normalisation cannot tell whether one repeats: the database finds it.
    monkeypatch.setattr(normalise, "KEYS_BUDGET", ids_budget)
    rows = [tx(1, amount="100.00"), tx(2, amount="20.00", user="u2"), tx(1, amount="900.00", user="u3")]
    fi.drop("a", rows)
    (outcome,) = list(processor.run(fi_registry.fi(FI)))
    assert (outcome.rows_loaded, outcome.rows_duplicate) == (2, 1)
    assert (outcome.amount_loaded_minor, outcome.amount_duplicate_minor) == (12000, 90000)
    with postgres.connect() as connection:
        stored = connection.execute(
            "SELECT user_id, amount_minor FROM fi_transactions WHERE transaction_id = 'T1'"
        ).fetchall()
    assert stored == [("u1", 10000)] and balance(postgres, "u3") == []


@pytest.mark.parametrize("signer", ["stranger", None], ids=["wrong signer", "unsigned"])
def test_a_file_not_signed_by_a_pinned_key_is_never_parsed_and_is_quarantined(
    fi, processor, fi_registry, postgres, signer, tmp_path
):
    key = fi.drop("bad", [tx(1)], signer=signer)

    (outcome,) = list(processor.run(fi_registry.fi(FI)))

    assert outcome.status == "rejected" and outcome.signed_by is None
    assert "not decrypted and verified" in str(outcome.reason) and key in str(outcome.reason)
    assert totals(postgres) == (0, 0, 0, 1), "recorded in the ledger, nothing loaded"
    work = tmp_path / "work"
    assert list(work.iterdir()) == [], "no plaintext (nor anything else) left on disk"
    s3 = processor.landing.client
    listed = [o["Key"] for o in s3.list_objects_v2(Bucket=LANDING).get("Contents", [])]
    assert key not in listed and any(k.startswith(f"_quarantine/{key}.") for k in listed)
    assert outcome.quarantined_as and outcome.quarantined_as.startswith(f"s3://{LANDING}/_quarantine/")
    assert list(processor.run(fi_registry.fi(FI))) == []


def test_a_refund_claws_back_the_points_of_a_purchase_in_an_earlier_file(
    fi, processor, fi_registry, postgres
):
    fi_ = fi_registry.fi(FI)
    fi.drop("day1", [tx(1, amount="20000.00")])
    list(processor.run(fi_))
    assert balance(postgres, "u1") == [("debit_rewards", 200)]
    fi.drop(
        "day2",
        [
            tx(2, kind="DEVOLUCION", amount="5000.00", original="T1", at="12:00"),
            tx(3, kind="DEVOLUCION", amount="20000.00", original="T1", at="13:00"),
        ],
    )
    (outcome,) = list(processor.run(fi_))
    assert outcome.points == -200, "a quarter, then what is left, never more than the purchase earned"
    assert balance(postgres, "u1") == [("debit_rewards", 0)]
    with postgres.connect() as connection:
        rows = connection.execute(
            "SELECT transaction_id, points, reason FROM reward_points ORDER BY 1"
        ).fetchall()
    assert rows == [("T1", 200, "earned"), ("T2", -50, "clawback"), ("T3", -150, "clawback")]


def test_the_daily_cap_counts_earlier_files_of_the_same_business_day(fi, processor, fi_registry, postgres):
    fi_ = fi_registry.fi(FI)
    fi.drop("1_morning", [tx(1, amount="60000.00", at="08:00")])  # 600 points
    fi.drop(
        "2_evening",
        [
            tx(2, amount="30000.00", at="20:00"),
            tx(3, amount="30000.00", at="21:00"),
            tx(4, amount="30000.00", at="23:30"),
            tx(5, user="u2", amount="30000.00", at="20:30"),  # u2 and u3 stay within the cap:
            tx(6, user="u2", amount="5000.00", at="22:00"),  # they are not put in time order
            tx(7, user="u3", amount="50000.00", at="09:00"),
            tx(8, user="u3", amount="50000.00", at="10:00"),  # exactly the cap
        ],
    )
    list(processor.run(fi_))
    with postgres.connect() as connection:
        rows = connection.execute(
            "SELECT transaction_id, points, reason FROM reward_points ORDER BY 1"
        ).fetchall()
    # T4 at 23:30 Bogotá is still 2026-11-30 there (04:30 UTC the next day): the same business day
    assert rows == [
        ("T1", 600, "earned"),
        ("T2", 300, "earned"),
        ("T3", 100, "capped"),
        ("T4", 0, "capped"),
        ("T5", 300, "earned"),
        ("T6", 50, "earned"),
        ("T7", 500, "earned"),
        ("T8", 500, "earned"),
    ]
    assert balance(postgres, "u1") == [("debit_rewards", 1000)]
    assert balance(postgres, "u2") == [("debit_rewards", 350)]
    assert balance(postgres, "u3") == [("debit_rewards", 1000)]


def test_a_new_rules_version_applies_to_files_that_land_after_it(fi, fi_keys, postgres, tmp_path, landing):
    fi.drop("before", [tx(1)])
    cutover = (datetime.now(UTC) + timedelta(seconds=1)).replace(microsecond=0)  # S3 keeps whole seconds
    document = registry_document(
        fi_keys, [rules(), rules(2, effective_from=cutover.isoformat(), points_per_unit="0.02")]
    )
    path = tmp_path / "v2.yaml"
    path.write_text(yaml.safe_dump(document))
    registry = read_fi_registry(path)
    processor = make_processor(registry, postgres, fi_keys, tmp_path / "work")
    (first,) = list(processor.run(registry.fi(FI)))
    time.sleep(max(0.0, (cutover - datetime.now(UTC)).total_seconds()) + 0.1)
    fi.drop("after", [tx(2)])
    (second,) = list(processor.run(registry.fi(FI)))
    assert (first.rules_version, first.points) == (1, 100), "landed before the cutover, processed after"
    assert (second.rules_version, second.points) == (2, 200)
    with postgres.connect() as connection:
        versions = connection.execute(
            "SELECT transaction_id, rules_version FROM reward_points ORDER BY 1"
        ).fetchall()
    assert versions == [("T1", 1), ("T2", 2)]


def test_a_crash_mid_load_then_a_rerun_gives_identical_totals(
    fi, processor, fi_registry, postgres, monkeypatch
):
    fi_ = fi_registry.fi(FI)
    fi.drop("day1", [tx(1), tx(2, user="u2")])
    list(processor.run(fi_))
    fi.drop("day2", [tx(3), tx(4, kind="DEVOLUCION", amount="5000.00", original="T1")])
    expected_balances = {"u1": 100 + 100 - 50, "u2": 100}

    def crash(*args, **kwargs):
        raise OSError("injected: the process died between the earnings and the clawbacks")

    monkeypatch.setattr(load_module, "_claw_back", crash)
    with pytest.raises(OSError, match="injected"):
        list(processor.run(fi_))
    assert totals(postgres) == (2, 200, 200, 1), "nothing of the crashed file committed"
    monkeypatch.undo()
    (outcome,) = list(processor.run(fi_))
    assert outcome.status == "loaded" and totals(postgres) == (4, 250, 250, 2)
    assert {u: balance(postgres, u)[0][1] for u in ("u1", "u2")} == expected_balances


def test_a_card_number_never_reaches_the_database_and_the_error_file_masks_it(
    fi, processor, fi_registry, postgres, fi_keys
):
    pan = "4111 1111 1111 1111"
    fi.drop(
        "leaky",
        [
            tx(1),
            tx(2, card=pan),
            ("T3", "u1", "tok_3", "12.345", "COP", DAY.format("10:00"), "COMPRA", "5999", "Tienda", ""),
            ("T4", "u1", "tok_4", "100.00", "COP", DAY.format("10:00"), "COMPRA", "5999", f"pago {pan}", ""),
            tx(5, kind="DEVOLUCION", original="T404"),
        ],
    )
    (outcome,) = list(processor.run(fi_registry.fi(FI)))
    assert (outcome.rows_read, outcome.rows_loaded, outcome.rows_rejected) == (5, 1, 4)
    assert outcome.amount_read_minor == outcome.amount_loaded_minor + outcome.amount_rejected_minor
    with postgres.connect() as connection:
        everything = connection.execute("SELECT t::text FROM fi_transactions t").fetchall()
    assert not [row for row in everything if re.search(r"4111[ -]?1111", row[0])]

    body = processor.landing.client.get_object(Bucket=LANDING, Key=f"{FI}/_errors/leaky.csv.errors.csv.gpg")[
        "Body"
    ].read()
    gpg = Gpg(fi_keys["fi"].secret, fi_keys["platform"].public)  # the FI opens it with its own key
    opened = gpg.open(body)
    gpg.close()
    assert opened.signed_by(fi_keys["platform"].fingerprint)
    assert "4111" not in opened.plaintext.decode()
    lines = [(r["line"], r["transaction_id"], r["column"], r["value"]) for r in opened.rows]
    assert lines == [
        ("3", "T2", "tarjeta", "[card number masked]"),
        ("4", "T3", "monto", "12.345"),
        ("5", "T4", "comercio", "pago [card number masked]"),
        ("6", "T5", "original_transaction_id", "T404"),
    ]


@pytest.mark.parametrize(
    ("broken", "says"),
    [
        (
            (*tx(20_000, card="4111111111111111"), "one column too many"),
            "Expected Number of Columns: 10 Found: 11",
        ),
        (
            tx(20_000, card="4111111111111111", mcc="5" * (2 << 20)),
            "Maximum line size of 1048576 bytes exceeded",
        ),
    ],
    ids=["a column too many", "a line longer than the read buffer allows"],
)
def test_a_file_whose_csv_breaks_after_its_first_batches_is_rejected_naming_the_line_and_loads_nothing(
    fi, processor, fi_registry, postgres, broken, says
):
    good = [tx(n) for n in range(20_000)]  # more than a batch: rows have gone into the COPY
    fi.drop("broken", [*good, broken, tx(20_001)])

    (outcome,) = list(processor.run(fi_registry.fi(FI)))

    assert outcome.status == "rejected", outcome.describe()
    assert "cannot be read as CSV" in str(outcome.reason) and "Line: 20002" in str(outcome.reason)
    assert says in str(outcome.reason)
    assert "4111111111111111" not in str(outcome.reason)  # the line DuckDB quotes is left out
    assert outcome.error_file and totals(postgres) == (0, 0, 0, 1)
    fi.drop("next", [tx(30_000)])
    (following,) = list(processor.run(fi_registry.fi(FI)))
    assert following.status == "loaded" and totals(postgres)[0] == 1


def test_a_file_without_a_required_column_is_rejected_naming_it(fi, processor, fi_registry, postgres):
    header = tuple(h for h in ("id_transaccion", "cliente", "monto", "moneda", "fecha", "tipo"))
    fi.drop("short", [("T1", "u1", "1.00", "COP", DAY.format("10:00"))], header=header[:5])
    (outcome,) = list(processor.run(fi_registry.fi(FI)))
    assert outcome.status == "rejected" and "'tipo' (type)" in str(outcome.reason)
    assert outcome.error_file and totals(postgres) == (0, 0, 0, 1)
