with source as (
    select * from {{ source('raw', 'businesses') }}
),

versions as (
    select
        *,
        row_number() over (partition by business_id order by updated_at desc, loaded_at desc) as version_rank
    from source
)

select
    business_id,
    name as business_name,
    country,
    created_at,
    updated_at
from versions
where version_rank = 1
