with source as (
    select * from {{ source('raw', 'accounts') }}
),

versions as (
    select
        *,
        row_number() over (partition by account_id order by updated_at desc, loaded_at desc) as version_rank
    from source
)

select
    account_id,
    user_id,
    account_type,
    is_virtual,
    iban,
    currency,
    balance,
    opened_at,
    updated_at
from versions
where version_rank = 1
