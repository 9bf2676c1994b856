import re

import dagster as dg
import pytest

from s3_sharing.platform.resources import secret
from s3_sharing.platform.settings import REPO_ROOT, Settings, SettingsError


def test_defaults_use_dev_duckdb_under_the_local_folder():
    settings = Settings.from_env({})
    assert settings.dbt_target == "dev"
    assert settings.duckdb_path.parts[-2:] == (".local", "warehouse.duckdb")


def test_unknown_target_is_named_with_the_known_ones():
    with pytest.raises(
        SettingsError, match=r"S3_SHARING_DBT_TARGET: unknown dbt target 'staging'.*dev, prod"
    ):
        Settings.from_env({"S3_SHARING_DBT_TARGET": "staging"})


def test_relative_duckdb_path_is_rejected():
    with pytest.raises(SettingsError, match=r"S3_SHARING_DUCKDB_PATH: 'wh\.duckdb' must be an absolute path"):
        Settings.from_env({"S3_SHARING_DUCKDB_PATH": "wh.duckdb"})


def test_bad_partition_start_is_rejected():
    with pytest.raises(SettingsError, match="S3_SHARING_PARTITION_START: 'Jan 1st'"):
        Settings.from_env({"S3_SHARING_PARTITION_START": "Jan 1st"})


def test_missing_warehouse_file_is_reported(tmp_path):
    settings = Settings.from_env({"S3_SHARING_DUCKDB_PATH": str(tmp_path / "nope.duckdb")})
    with pytest.raises(SettingsError, match=r"nope.duckdb does not exist: generate data first"):
        settings.require_warehouse()


def test_the_readme_variable_table_lists_exactly_the_settings():
    readme = (REPO_ROOT / "README.md").read_text()
    table = [line for line in readme.splitlines() if line.startswith("| `S3_SHARING_")]
    documented = {name for line in table for name in re.findall(r"`(S3_SHARING_[A-Z_]+)`", line)}
    assert documented == set(Settings.variables())


def test_secrets_are_masked_and_reach_resources_only_as_environment_references(monkeypatch):
    monkeypatch.setenv("S3_SHARING_SLACK_TOKEN", "xoxb-very-secret")
    settings = Settings.from_env()
    assert "xoxb-very-secret" not in repr(settings) and "xoxb-very-secret" not in str(settings.model_dump())
    reference = secret(settings, "slack_token")
    assert isinstance(reference, dg.EnvVar) and reference.env_var_name == "S3_SHARING_SLACK_TOKEN"
    assert secret(settings, "alert_webhook_url") is None


def test_the_prod_target_needs_a_bigquery_project():
    with pytest.raises(
        SettingsError, match="S3_SHARING_BQ_PROJECT: the prod target needs a BigQuery project"
    ):
        Settings.from_env({"S3_SHARING_DBT_TARGET": "prod"})
    assert (
        Settings.from_env({"S3_SHARING_DBT_TARGET": "prod", "S3_SHARING_BQ_PROJECT": "p"}).bq_project == "p"
    )
