{{ config(
    unique_key=['transaction_id', 'updated_at'],
    incremental_strategy=mart_incremental_strategy(),
    partition_by=mart_partition_by('loaded_at'),
    cluster_by=mart_cluster_by(),
    pre_hook="{{ delete_window('loaded_at') }}",
) }}

-- TRANSACTIONS (seed 001): every version of every transaction on a virtual bank account.
with account_transactions as (
    select * from {{ ref('int_account_transaction_changes') }}
)

select
    transaction_id,
    business_id,
    user_id,
    account_id,
    iban,
    channel,
    direction,
    amount,
    currency,
    merchant,
    category,
    status,
    booked_at,
    updated_at,
    loaded_at,
    change_type
from account_transactions
where is_virtual and {{ window_filter('loaded_at') }}
