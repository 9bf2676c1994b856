"""dbt models as Dagster assets: hourly-partitioned marts and unpartitioned staging views."""

import json
import shutil
import sys
from collections.abc import Iterator, Mapping
from functools import cached_property
from pathlib import Path
from typing import Any

import dagster as dg
from dagster_dbt import (
    DagsterDbtTranslator,
    DagsterDbtTranslatorSettings,
    DbtCliResource,
    DbtProject,
    dbt_assets,
)

from s3_sharing.platform.settings import DBT_PROJECT_DIR, Settings, SettingsError
from s3_sharing.platform.warehouse import Relation
from s3_sharing.transform import dbt_args

HOURLY_MARTS = "config.materialized:incremental"
HOURLY_MARTS_JOB = "hourly_marts_job"
REFERENCE_MODELS_JOB = "reference_models_job"


def dbt_executable() -> str:
    """dbt from PATH, else the one installed beside this interpreter (an unactivated venv)."""
    return shutil.which("dbt") or str(Path(sys.executable).with_name("dbt"))


def dbt_cli(project: DbtProject) -> DbtCliResource:
    return DbtCliResource(project_dir=project, target=project.target, dbt_executable=dbt_executable())


def dbt_project(settings: Settings) -> DbtProject:
    """The dbt project for the configured target; each target keeps its own manifest."""
    return DbtProject(
        project_dir=DBT_PROJECT_DIR,
        profiles_dir=DBT_PROJECT_DIR,
        target=settings.dbt_target,
        target_path=settings.dbt_target_path or Path("target") / settings.dbt_target,
    )


def prepare(project: DbtProject) -> Path:
    """Parse the project into a manifest (``dagster dev`` does this itself; tests and CI call it)."""
    target_path = project.project_dir / project.target_path
    dbt_cli(project).cli(dbt_args.parse_args(str(target_path))).wait()
    return project.manifest_path


def load_manifest(project: DbtProject) -> dict[str, Any]:
    project.prepare_if_dev()
    if not project.manifest_path.exists():
        raise SettingsError(
            f"dbt manifest {project.manifest_path} is missing: run `s3-sharing prepare` "
            f"(target {project.target})"
        )
    return json.loads(project.manifest_path.read_text())


def model_relation(manifest: Mapping[str, Any], model: str) -> Relation:
    """Where a model lives, as the manifest's target builds it."""
    node = manifest["nodes"].get(f"model.s3_sharing.{model}")
    if node is None:
        raise KeyError(f"dbt model {model!r} is not in the manifest")
    return Relation(node["database"], node["schema"], node["alias"])


class LayerTranslator(DagsterDbtTranslator):
    """Asset keys and groups from each node's ``meta.layer`` property: ``marts/fi_data``.

    Sources keep their source name as prefix (``raw/transactions``), so data flowing *in*
    (imports from customers' buckets) can materialize the same keys later.
    """

    def get_asset_key(self, dbt_resource_props: Mapping[str, Any]) -> dg.AssetKey:
        return dg.AssetKey([_layer(dbt_resource_props), dbt_resource_props["name"]])

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        return _layer(dbt_resource_props)


def _layer(props: Mapping[str, Any]) -> str:
    if props["resource_type"] == "source":
        return props["source_name"]
    layer = props.get("config", {}).get("meta", {}).get("layer")
    if not layer:
        raise SettingsError(f"dbt node {props['unique_id']} has no meta.layer in dbt_project.yml")
    return layer


TRANSLATOR = LayerTranslator(settings=DagsterDbtTranslatorSettings(enable_asset_checks=True))


class DbtAssets:
    """The two ``@dbt_assets`` of the project and the raw tables they read."""

    def __init__(self, settings: Settings, partitions: dg.PartitionsDefinition) -> None:
        self.settings = settings
        self.partitions = partitions
        self.project = dbt_project(settings)
        self.manifest = load_manifest(self.project)

    @cached_property
    def hourly_marts(self) -> dg.AssetsDefinition:
        settings = self.settings

        @dbt_assets(
            manifest=self.manifest,
            project=self.project,
            select=HOURLY_MARTS,
            partitions_def=self.partitions,
            backfill_policy=dg.BackfillPolicy.single_run(),
            dagster_dbt_translator=TRANSLATOR,
            name="hourly_marts",
        )
        def hourly_marts(context: dg.AssetExecutionContext, dbt: DbtCliResource) -> Iterator[Any]:
            """Build the marts for the run's partition window; a backfill range runs dbt once."""
            settings.require_warehouse()
            window = context.partition_time_window
            args = dbt_args.build_args((window.start, window.end))
            yield from dbt.cli(args, context=context).stream()

        return hourly_marts

    @cached_property
    def reference_models(self) -> dg.AssetsDefinition:
        settings = self.settings

        @dbt_assets(
            manifest=self.manifest,
            project=self.project,
            exclude=HOURLY_MARTS,
            dagster_dbt_translator=TRANSLATOR,
            name="reference_models",
        )
        def reference_models(context: dg.AssetExecutionContext, dbt: DbtCliResource) -> Iterator[Any]:
            """Staging views and other unpartitioned nodes."""
            settings.require_warehouse()
            yield from dbt.cli(dbt_args.build_args(), context=context).stream()

        return reference_models

    @cached_property
    def raw_tables(self) -> list[dg.AssetSpec]:
        """The landing tables, shown in the UI as the sources of the dbt graph."""
        return [
            dg.AssetSpec(
                key=TRANSLATOR.get_asset_key(source),
                group_name=TRANSLATOR.get_group_name(source),
                description=source.get("description") or None,
                kinds={"duckdb" if self.settings.dbt_target == "dev" else "bigquery"},
            )
            for source in self.manifest["sources"].values()
        ]

    def model_key(self, model: str) -> dg.AssetKey:
        return TRANSLATOR.get_asset_key(self.manifest["nodes"][f"model.s3_sharing.{model}"])

    def all(self) -> list[dg.AssetsDefinition | dg.AssetSpec]:
        return [self.reference_models, self.hourly_marts, *self.raw_tables]

    def definitions(self) -> dg.Definitions:
        """The transform feature's definitions: the dbt assets, their jobs and the dbt resource."""
        return dg.Definitions(assets=self.all(), jobs=self.jobs(), resources={"dbt": dbt_cli(self.project)})

    def jobs(self) -> list[Any]:
        return [
            dg.define_asset_job(
                HOURLY_MARTS_JOB,
                selection=dg.AssetSelection.assets(self.hourly_marts),
                description="Build the marts for one hourly window (or a range, in one dbt run).",
            ),
            dg.define_asset_job(
                REFERENCE_MODELS_JOB,
                selection=dg.AssetSelection.assets(self.reference_models),
                description="Build the unpartitioned staging views.",
            ),
        ]
