with source as (
    select * from {{ source('raw', 'beneficiaries') }}
),

versions as (
    select
        *,
        row_number() over (partition by beneficiary_id order by updated_at desc, loaded_at desc) as version_rank
    from source
)

select
    beneficiary_id,
    user_id,
    name as beneficiary_name,
    iban as beneficiary_iban,
    bank_country,
    created_at,
    updated_at
from versions
where version_rank = 1
