{{ config(
    unique_key=['payment_id', 'updated_at'],
    incremental_strategy=mart_incremental_strategy(),
    partition_by=mart_partition_by('loaded_at'),
    cluster_by=mart_cluster_by(),
    pre_hook="{{ delete_window('loaded_at') }}",
) }}

-- PAYMENTS (seed 001): every version of every payment from a virtual bank account.
with payments as (
    select * from {{ ref('stg_payment_changes') }}
),

accounts as (
    select * from {{ ref('stg_accounts') }}
),

users as (
    select * from {{ ref('stg_users') }}
),

beneficiaries as (
    select * from {{ ref('stg_beneficiaries') }}
)

select
    payments.payment_id,
    users.business_id,
    users.user_id,
    accounts.account_id,
    accounts.iban,
    beneficiaries.beneficiary_id,
    beneficiaries.beneficiary_name,
    beneficiaries.beneficiary_iban,
    payments.amount,
    payments.currency,
    payments.status,
    payments.reference,
    payments.created_at,
    payments.updated_at,
    payments.loaded_at,
    payments.change_type
from payments
inner join accounts on payments.account_id = accounts.account_id
inner join users on accounts.user_id = users.user_id
left join beneficiaries on payments.beneficiary_id = beneficiaries.beneficiary_id
where accounts.is_virtual and {{ window_filter('payments.loaded_at') }}
