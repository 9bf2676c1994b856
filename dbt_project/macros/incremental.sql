{#- Portable incremental settings: delete+insert where supported, merge on BigQuery. -#}
{% macro mart_incremental_strategy() -%}
  {{ return(adapter.dispatch('mart_incremental_strategy', 's3_sharing')()) }}
{%- endmacro %}

{% macro default__mart_incremental_strategy() -%}
  {{ return('delete+insert') }}
{%- endmacro %}

{#- merge (not insert_overwrite): a late update moves a row to a newer partition, and merge on
    the unique key removes the old copy, which insert_overwrite of the new window would not. -#}
{% macro bigquery__mart_incremental_strategy() -%}
  {{ return('merge') }}
{%- endmacro %}

{% macro mart_partition_by(column) -%}
  {{ return(adapter.dispatch('mart_partition_by', 's3_sharing')(column)) }}
{%- endmacro %}

{% macro default__mart_partition_by(column) -%}
  {{ return(none) }}
{%- endmacro %}

{% macro bigquery__mart_partition_by(column) -%}
  {{ return({'field': column, 'data_type': 'timestamp', 'granularity': 'day'}) }}
{%- endmacro %}

{% macro mart_cluster_by() -%}
  {{ return(adapter.dispatch('mart_cluster_by', 's3_sharing')()) }}
{%- endmacro %}

{% macro default__mart_cluster_by() -%}
  {{ return(none) }}
{%- endmacro %}

{% macro bigquery__mart_cluster_by() -%}
  {{ return(['business_id', 'user_id']) }}
{%- endmacro %}
