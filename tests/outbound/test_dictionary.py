"""The data dictionary partners get: every delivered column documented with the type it is written
as, read from the dbt documentation, and the committed docs/data-dictionary.md in step with it."""

import json

import duckdb
import pytest

from s3_sharing import cli
from s3_sharing.outbound.datasets import SOURCES, Dataset
from s3_sharing.outbound.dictionary import DictionaryError, data_dictionary, dataset_dictionary
from s3_sharing.platform.settings import REPO_ROOT

DUCKDB_TYPES = {
    "VARCHAR": "string",
    "BIGINT": "integer",
    "INTEGER": "integer",
    "HUGEINT": "integer",
    "DOUBLE": "decimal",
    "BOOLEAN": "boolean",
    "DATE": "date",
    "TIMESTAMP": "timestamp",
    "TIMESTAMP WITH TIME ZONE": "timestamp",
}


def _manifest(dbt_manifest):
    return json.loads(dbt_manifest.read_text())


def test_the_committed_dictionary_is_what_the_dbt_documentation_says(dbt_manifest, capsys):
    assert cli.main(["data-dictionary"]) == 0
    printed = capsys.readouterr().out
    committed = (REPO_ROOT / "docs" / "data-dictionary.md").read_text()
    assert printed == committed == data_dictionary(_manifest(dbt_manifest)), (
        "docs/data-dictionary.md is stale: run `s3-sharing data-dictionary > docs/data-dictionary.md`"
    )


def test_a_column_without_meaning_or_type_is_refused_naming_it(dbt_manifest):
    manifest = _manifest(dbt_manifest)
    node = next(n for n in manifest["nodes"].values() if n["name"] == "payments")
    node["columns"]["reference"]["description"] = ""
    with pytest.raises(DictionaryError, match="PAYMENTS: column reference of payments needs a description"):
        dataset_dictionary(manifest, Dataset.PAYMENTS)


@pytest.mark.dbt
def test_every_delivered_column_is_documented_with_the_type_the_warehouse_builds(built, dbt_manifest):
    manifest = _manifest(dbt_manifest)
    with duckdb.connect(str(built.duckdb_path), read_only=True) as con:
        for dataset, source in SOURCES.items():
            built_columns = [
                (name, "decimal" if kind.startswith("DECIMAL") else DUCKDB_TYPES[kind])
                for name, kind in con.execute(
                    "SELECT column_name, data_type FROM information_schema.columns"
                    " WHERE table_schema = 'main_marts' AND table_name = ? ORDER BY ordinal_position",
                    [source.model],
                ).fetchall()
            ]
            documented = [(c.name, c.type) for c in dataset_dictionary(manifest, dataset).columns]
            assert documented == built_columns, dataset
