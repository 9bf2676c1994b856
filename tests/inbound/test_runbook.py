"""The operator's side of imports: a dry run, a replay, tagging imported files, onboarding a source
and checking its connection. The customer's bucket on moto (IAM enforced, the import role assumed),
real PostgreSQL, real files."""

import pytest

from s3_sharing.inbound.importer import IMPORTED_TAG, Importer, error_file_sealer
from s3_sharing.inbound.onboarding import import_onboarding_pack, sample_header, verify_import_access
from s3_sharing.platform import crypto
from s3_sharing.platform.storage import S3Buckets

from ..gpg import Gpg
from .conftest import CUSTOMER_BUCKET, source_entry, source_of, write_sources
from .test_importer import EVENT_HEADER, RISK_HEADER, drop, error_lines, rows, run

pytestmark = pytest.mark.e2e


def importer(sources_file, postgres, source_id: str = "pirani") -> Importer:
    source = source_of(sources_file, source_id)
    return Importer(source, source.open_bucket(S3Buckets()), postgres, run_id="test-run")


def test_a_dry_run_checks_children_against_this_runs_parents_and_loads_nothing(
    sources_file, customer, postgres
):
    drop(customer, "riesgos/a.csv", RISK_HEADER, [["R-1", "Fraude", "operational", "3", ""]])
    drop(
        customer,
        "eventos/a.csv",
        EVENT_HEADER,
        [["E-1", "R-1", "Robo", "2026-01-01", ""], ["E-2", "R-9", "Error", "2026-01-02", ""]],
    )

    risks, events = importer(sources_file, postgres).dry_run()

    assert (risks.rows_created, events.rows_created, events.rows_rejected) == (1, 1, 1)
    assert events.rows_orphaned == 1 and events.dry_run
    assert "dry run: nothing loaded" in events.describe()
    assert error_lines(customer, "eventos/_errors/a.csv.dry-run.errors.csv")[1] == [
        "3",
        "E-2",
        "Código del riesgo",
        "R-9",
        "no risks with this referenceCode (a parent is imported before its children)",
    ]
    for table in ("import_ledger", "risks", "events"):
        assert rows(postgres, f"SELECT count(*) FROM {table}") == [(0,)]
    # Nothing was recorded, so the real run still imports both files.
    assert [o.status for o in run(sources_file, postgres)] == ["imported", "imported"]


def test_a_replay_imports_a_file_again_as_a_new_attempt_and_changes_nothing_twice(
    sources_file, customer, postgres
):
    drop(customer, "riesgos/a.csv", RISK_HEADER, [["R-1", "Fraude", "operational", "3", ""]])
    drop(customer, "eventos/a.csv", EVENT_HEADER, [["E-1", "R-9", "Robo", "2026-01-01", ""]])
    run(sources_file, postgres)  # E-1 rejected: its risk R-9 does not exist yet
    drop(customer, "riesgos/b.csv", RISK_HEADER, [["R-9", "Nuevo", "market", "1", ""]])
    run(sources_file, postgres)
    item = source_of(sources_file).entity_for("eventos/a.csv")
    (file,) = [f for f in importer(sources_file, postgres).listing(item) if f.key == "eventos/a.csv"]

    first = importer(sources_file, postgres).import_file(item, file, replay=True)
    again = importer(sources_file, postgres).import_file(item, file, replay=True)

    assert (first.status, first.attempt, first.rows_created, first.rows_rejected) == ("imported", 1, 1, 0)
    # create of an existing key: rejected with its reason, the row left as it was
    assert (again.attempt, again.rows_created, again.rows_rejected) == (2, 0, 1)
    assert rows(postgres, "SELECT reference_code, name FROM events") == [("E-1", "Robo")]
    assert rows(
        postgres, "SELECT attempt, rows_created FROM import_ledger WHERE key = 'eventos/a.csv' ORDER BY 1"
    ) == [(0, 0), (1, 1), (2, 0)]
    # a scheduled run does not take it again
    assert [o.status for o in run(sources_file, postgres)] == []


def test_a_replay_of_a_key_outside_every_folder_is_refused_by_name(sources_file):
    with pytest.raises(ValueError, match=r"'otros/a.csv' is in no entity folder \(riesgos/\*.csv"):
        source_of(sources_file).entity_for("otros/a.csv")


@pytest.mark.parametrize(
    "sources_file", [[source_entry(tag_imported_files=True)]], indirect=True, ids=["tagging"]
)
def test_imported_files_are_tagged_keeping_the_customers_own_tags(sources_file, customer, postgres):
    drop(customer, "riesgos/a.csv", RISK_HEADER, [["R-1", "Fraude", "operational", "3", ""]])
    client = customer.customer_client()
    client.put_object_tagging(
        Bucket=CUSTOMER_BUCKET,
        Key="riesgos/a.csv",
        Tagging={"TagSet": [{"Key": "owner", "Value": "etl"}]},
    )

    (outcome,) = run(sources_file, postgres)

    tags = client.get_object_tagging(Bucket=CUSTOMER_BUCKET, Key="riesgos/a.csv")["TagSet"]
    assert {t["Key"]: t["Value"] for t in tags} == {
        "owner": "etl",
        IMPORTED_TAG: f"imported {outcome.sha256[:16]}",
    }
    assert outcome.tagging_failed is None


def test_a_refused_tag_is_reported_and_the_import_still_counts(sources_file, customer, postgres, tmp_path):
    # The role the customer granted has no tagging permission (provisioned without the option).
    drop(customer, "riesgos/a.csv", RISK_HEADER, [["R-1", "Fraude", "operational", "3", ""]])
    tagging = write_sources(tmp_path / "tagging.yaml", [source_entry(tag_imported_files=True)])

    (outcome,) = run(tagging, postgres, only=["risks"])

    assert outcome.status == "imported" and "AccessDenied" in str(outcome.tagging_failed)
    assert "not tagged:" in outcome.describe()
    assert rows(postgres, "SELECT reference_code FROM risks") == [("R-1",)]


def test_the_onboarding_pack_asks_for_the_role_and_shows_each_entitys_header(sources_file):
    source = source_of(sources_file)

    pack = import_onboarding_pack(source, "arn:aws:iam::111111111111:role/platform")

    assert sample_header(source.entity("events")) == (
        "Código,Nombre,Fecha de ocurrencia,Pérdida,Código del riesgo"
    )
    assert "header: Código,Nombre,Categoría,Probabilidad" in pack
    assert "'Código del riesgo' → parentReferenceCode (text, required)" in pack
    assert '"sts:ExternalId": "pirani-external-id"' in pack
    assert "arn:aws:s3:::pirani-exports/eventos/_errors/*" in pack
    assert "s3:PutObjectTagging" not in pack  # not asked for unless the source tags files
    assert "`s3-sharing verify-import-access pirani`" in pack


def test_verify_import_access_lists_reads_and_writes_a_probe_it_removes(sources_file, customer):
    drop(customer, "riesgos/a.csv", RISK_HEADER, [["R-1", "Fraude", "operational", "3", ""]])

    steps = verify_import_access(source_of(sources_file), S3Buckets())

    assert all(s.ok for s in steps), [s.line() for s in steps]
    assert [s.name for s in steps] == [
        "connect",
        "list s3://pirani-exports/riesgos/",
        "read a file of riesgos/",
        "write riesgos/_errors/",
        "list s3://pirani-exports/eventos/",
        "read a file of eventos/",
        "write eventos/_errors/",
    ]
    assert steps[3].detail.startswith("wrote and removed riesgos/_errors/_s3_sharing_probe_")
    listed = customer.customer_client().list_objects_v2(Bucket=CUSTOMER_BUCKET).get("Contents", [])
    assert [o["Key"] for o in listed] == ["riesgos/a.csv"]


def test_verify_import_access_stops_at_the_first_failure_in_plain_words(sources_file, customer, tmp_path):
    drop(customer, "riesgos/a.csv", ["Code", "Nombre"], [["R-1", "Fraude"]])
    steps = verify_import_access(source_of(sources_file), S3Buckets())
    assert [s.ok for s in steps] == [True, True, False]
    assert steps[-1].detail == (
        "riesgos/a.csv: the header lacks the mapped column 'Código' (it has 'Code', 'Nombre')"
    )

    # Error files somewhere the granted role may not write: the permission is named.
    elsewhere = write_sources(tmp_path / "elsewhere.yaml", [source_entry(errors_folder="rechazos/")])
    customer.customer_client().delete_object(Bucket=CUSTOMER_BUCKET, Key="riesgos/a.csv")
    steps = verify_import_access(source_of(elsewhere), S3Buckets())
    assert [s.ok for s in steps] == [True, True, True, False]
    assert steps[-1].detail.startswith(
        "permission missing: s3:PutObject on arn:aws:s3:::pirani-exports/riesgos/rechazos/* is not "
        "allowed to arn:aws:iam::123456789012:role/import-pirani"
    )

    # A role that does not trust us (another external id).
    entry = source_entry()
    entry["connection"] = entry["connection"] | {"external_id": "someone-else"}  # type: ignore[operator]
    steps = verify_import_access(source_of(write_sources(tmp_path / "x.yaml", [entry])), S3Buckets())
    assert [(s.name, s.ok) for s in steps] == [("connect", False)]
    assert "trust policy must name our principal" in steps[0].detail


@pytest.fixture
def keyed_sources(tmp_path, keys, request):
    """The default source with the customer's OpenPGP key (``request.param``: which key file)."""
    key_file = getattr(keys[request.param[0]], request.param[1])
    return write_sources(tmp_path / "keyed.yaml", [source_entry(public_key={"file": str(key_file)})])


@pytest.mark.parametrize("keyed_sources", [("acme", "public")], indirect=True)
def test_error_files_are_sealed_to_the_customers_key_and_signed_by_us(
    keyed_sources, customer, postgres, keys
):
    drop(customer, "riesgos/a.csv", RISK_HEADER, [["R-1", "", "operational", "3", ""]])
    source = source_of(keyed_sources)
    signer, _ = crypto.load_signer(keys["platform-signing"].secret.read_text(), None)
    audit = crypto.load_cert(keys["audit"].public.read_text(), "audit key")
    importer = Importer(
        source, source.open_bucket(S3Buckets()), postgres, sealer=error_file_sealer(source, signer, audit)
    )

    (outcome,) = list(importer.run())

    assert outcome.error_file == "s3://pirani-exports/riesgos/_errors/a.csv.errors.csv.gpg"
    client = customer.customer_client()
    listed = [
        o["Key"]
        for o in client.list_objects_v2(Bucket=CUSTOMER_BUCKET, Prefix="riesgos/_errors/")["Contents"]
    ]
    assert listed == ["riesgos/_errors/a.csv.errors.csv.gpg"]  # no plaintext copy
    sealed = client.get_object(Bucket=CUSTOMER_BUCKET, Key=listed[0])["Body"].read()
    gpg = Gpg(keys["acme"].secret, keys["platform-signing"].public)
    try:
        opened = gpg.open(sealed)
    finally:
        gpg.close()
    assert opened.signed_by(keys["platform-signing"].fingerprint)
    assert opened.rows == [
        {
            "line": "2",
            "referenceCode": "R-1",
            "column": "Nombre",
            "value": "",
            "message": "required value missing",
        }
    ]


@pytest.mark.parametrize("keyed_sources", [("acme", "secret")], indirect=True)
def test_a_secret_key_given_as_the_customers_key_is_refused_by_name(keyed_sources):
    with pytest.raises(ValueError, match=r"keyed.yaml: source 'pirani': public_key: contains a secret key"):
        source_of(keyed_sources)
