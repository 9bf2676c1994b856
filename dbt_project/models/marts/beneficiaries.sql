{{ config(
    unique_key=['beneficiary_id', 'updated_at'],
    incremental_strategy=mart_incremental_strategy(),
    partition_by=mart_partition_by('loaded_at'),
    cluster_by=mart_cluster_by(),
    pre_hook="{{ delete_window('loaded_at') }}",
) }}

-- BENEFICIARIES (seed 001): every version of the payees of customers holding a virtual bank account.
with beneficiaries as (
    select * from {{ ref('stg_beneficiary_changes') }}
),

users as (
    select * from {{ ref('stg_users') }}
),

-- Since when each customer holds a virtual account: a version counts once the platform knew that,
-- so rebuilding an old window never adds rows to it.
virtual_account_holders as (
    select user_id, min(loaded_at) as holder_since
    from {{ ref('stg_account_changes') }}
    where is_virtual
    group by user_id
)

select
    beneficiaries.beneficiary_id,
    users.business_id,
    users.user_id,
    beneficiaries.name as beneficiary_name,
    beneficiaries.iban as beneficiary_iban,
    beneficiaries.bank_country,
    beneficiaries.created_at,
    beneficiaries.updated_at,
    beneficiaries.loaded_at,
    beneficiaries.change_type
from beneficiaries
inner join users on beneficiaries.user_id = users.user_id
inner join virtual_account_holders
    on beneficiaries.user_id = virtual_account_holders.user_id
    and virtual_account_holders.holder_since <= beneficiaries.loaded_at
where {{ window_filter('beneficiaries.loaded_at') }}
