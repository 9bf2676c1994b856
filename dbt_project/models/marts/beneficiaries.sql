{{ config(
    unique_key='beneficiary_id',
    incremental_strategy=mart_incremental_strategy(),
    partition_by=mart_partition_by('updated_at'),
    cluster_by=mart_cluster_by(),
    pre_hook="{{ delete_window('updated_at') }}",
) }}

-- BENEFICIARIES (seed 001): payees of customers holding a virtual bank account.
with beneficiaries as (
    select * from {{ ref('stg_beneficiaries') }}
),

users as (
    select * from {{ ref('stg_users') }}
),

virtual_account_holders as (
    select distinct user_id
    from {{ ref('stg_accounts') }}
    where is_virtual
)

select
    beneficiaries.beneficiary_id,
    users.business_id,
    users.user_id,
    beneficiaries.beneficiary_name,
    beneficiaries.beneficiary_iban,
    beneficiaries.bank_country,
    beneficiaries.created_at,
    beneficiaries.updated_at
from beneficiaries
inner join users on beneficiaries.user_id = users.user_id
inner join virtual_account_holders on beneficiaries.user_id = virtual_account_holders.user_id
where {{ window_filter('beneficiaries.updated_at') }}
