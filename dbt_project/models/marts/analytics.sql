{{ config(
    unique_key='analytics_id',
    incremental_strategy=mart_incremental_strategy(),
    partition_by=mart_partition_by('window_start'),
    cluster_by=mart_cluster_by(),
    pre_hook="{{ delete_window('window_start') }}",
) }}

-- ANALYTICS (seed 000): per user, hour and category, what changed in that hour.
with account_transactions as (
    select * from {{ ref('int_account_transactions') }}
    where status != 'failed' and {{ window_filter('updated_at') }}
),

accounts as (
    select * from {{ ref('stg_accounts') }}
),

balances as (
    select
        user_id,
        sum(balance) as balance_total
    from accounts
    group by user_id
),

hourly as (
    select
        business_id,
        user_id,
        {{ dbt.date_trunc('hour', 'updated_at') }} as window_start,
        category,
        count(*) as transaction_count,
        sum(case when direction = 'debit' then amount else 0 end) as debit_amount,
        sum(case when direction = 'credit' then amount else 0 end) as credit_amount,
        max(updated_at) as updated_at
    from account_transactions
    group by 1, 2, 3, 4
)

select
    {{ dbt.hash(dbt.concat(['hourly.user_id', "'|'", dbt.cast('hourly.window_start', api.Column.translate_type('string')), "'|'", 'hourly.category'])) }} as analytics_id,
    hourly.business_id,
    hourly.user_id,
    hourly.window_start,
    hourly.category,
    hourly.transaction_count,
    hourly.debit_amount,
    hourly.credit_amount,
    hourly.credit_amount - hourly.debit_amount as net_amount,
    coalesce(balances.balance_total, 0) as balance_total,
    hourly.updated_at
from hourly
left join balances on hourly.user_id = balances.user_id
