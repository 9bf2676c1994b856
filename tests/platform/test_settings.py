import pytest

from s3_sharing.platform.settings import Settings, SettingsError


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
