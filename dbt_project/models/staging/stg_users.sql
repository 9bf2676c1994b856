with source as (
    select * from {{ source('raw', 'users') }}
),

versions as (
    select
        *,
        row_number() over (partition by user_id order by updated_at desc, loaded_at desc) as version_rank
    from source
)

select
    user_id,
    business_id,
    first_name,
    last_name,
    email,
    phone,
    date_of_birth,
    document_type,
    document_number,
    nationality,
    address,
    city,
    country,
    kyc_status,
    last_kyc_date,
    created_at,
    updated_at
from versions
where version_rank = 1
