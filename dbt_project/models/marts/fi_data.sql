{{ config(
    unique_key=['transaction_id', 'updated_at'],
    incremental_strategy=mart_incremental_strategy(),
    partition_by=mart_partition_by('loaded_at'),
    cluster_by=mart_cluster_by(),
    pre_hook="{{ delete_window('loaded_at') }}",
) }}

-- FI_DATA (seed 000): every version of every account transaction of a business's users, with its
-- account, in the window in which the platform received it.
with account_transactions as (
    select * from {{ ref('int_account_transaction_changes') }}
)

select
    transaction_id,
    business_id,
    user_id,
    account_id,
    account_type,
    iban,
    account_currency,
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
where {{ window_filter('loaded_at') }}
