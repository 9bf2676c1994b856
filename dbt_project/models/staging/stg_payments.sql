with source as (
    select * from {{ source('raw', 'payments') }}
),

versions as (
    select
        *,
        row_number() over (partition by payment_id order by updated_at desc, loaded_at desc) as version_rank
    from source
)

select
    payment_id,
    account_id,
    beneficiary_id,
    amount,
    currency,
    status,
    reference,
    created_at,
    updated_at
from versions
where version_rank = 1
