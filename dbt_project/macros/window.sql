{#-
  The half-open partition window [window_start, window_end) that Dagster passes with --vars.
  Without both vars a model covers all history (first build, full refresh).
-#}
{% macro window_filter(column) -%}
  {%- set start = var('window_start', none) -%}
  {%- set end = var('window_end', none) -%}
  {%- if start is none and end is none -%}
    1 = 1
  {%- elif start is none or end is none -%}
    {{ exceptions.raise_compiler_error("window_start and window_end must be passed together, got window_start=" ~ start ~ " window_end=" ~ end) }}
  {%- else -%}
    {{ column }} >= {{ window_bound(start) }} and {{ column }} < {{ window_bound(end) }}
  {%- endif -%}
{%- endmacro %}

{% macro window_bound(value) -%}
  {%- if not modules.re.match('^[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}$', value | string) -%}
    {{ exceptions.raise_compiler_error("window bound '" ~ value ~ "' is not a UTC timestamp like '2026-01-01 00:00:00'") }}
  {%- endif -%}
  cast('{{ value }}' as {{ dbt.type_timestamp() }})
{%- endmacro %}

{#- Pre-hook: a rerun of a window first removes what the window held, so rows that moved out go. -#}
{% macro delete_window(column) -%}
  {%- if var('window_start', none) is not none and is_incremental() -%}
    delete from {{ this }} where {{ window_filter(column) }}
  {%- endif -%}
{%- endmacro %}
