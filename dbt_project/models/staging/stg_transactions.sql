with source as (
    select * from {{ source('raw', 'transactions') }}
),

versions as (
    select
        *,
        row_number() over (partition by transaction_id order by updated_at desc, loaded_at desc) as version_rank
    from source
)

select
    transaction_id,
    account_id,
    channel,
    direction,
    amount,
    currency,
    merchant,
    category,
    status,
    booked_at,
    updated_at
from versions
where version_rank = 1
