{#-
  Every version of every row of a raw change log, once: a copy of a version that was loaded again
  (same key and updated_at) is dropped, the first load wins, so a version never moves to a later
  window. change_type says whether the version is the key's first ('insert') or a later one.
  The raw tables have no deletions; a source that has them would add 'delete' tombstones here.
-#}
{% macro change_log(table, key) -%}
select
    *,
    case
        when row_number() over (partition by {{ key }} order by updated_at, loaded_at) = 1 then 'insert'
        else 'update'
    end as change_type
from {{ source('raw', table) }}
where true
qualify row_number() over (partition by {{ key }}, updated_at order by loaded_at) = 1
{%- endmacro %}
