{{ config(
    unique_key='transaction_id',
    incremental_strategy=mart_incremental_strategy(),
    partition_by=mart_partition_by('updated_at'),
    cluster_by=mart_cluster_by(),
    pre_hook="{{ delete_window('updated_at') }}",
) }}

-- TRANSACTIONS (seed 001): transactions on virtual bank accounts only.
with account_transactions as (
    select * from {{ ref('int_account_transactions') }}
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
    updated_at
from account_transactions
where is_virtual and {{ window_filter('updated_at') }}
