{{ config(
    unique_key='analytics_id',
    incremental_strategy=mart_incremental_strategy(),
    partition_by=mart_partition_by('window_start'),
    cluster_by=mart_cluster_by(),
    pre_hook="{{ delete_window('window_start') }}",
) }}

-- ANALYTICS (seed 000): per user, hour and category, the count and sums of the FI_DATA rows the
-- platform received in that hour (failed ones excluded): exactly what FI_DATA's rows imply.
with fi_data as (
    select * from {{ ref('fi_data') }}
    where status != 'failed' and {{ window_filter('loaded_at') }}
),

hourly as (
    select
        business_id,
        user_id,
        {{ dbt.date_trunc('hour', 'loaded_at') }} as window_start,
        category,
        count(*) as transaction_count,
        sum(case when direction = 'debit' then amount else 0 end) as debit_amount,
        sum(case when direction = 'credit' then amount else 0 end) as credit_amount,
        max(updated_at) as updated_at
    from fi_data
    group by 1, 2, 3, 4
)

select
    {{ dbt.hash(dbt.concat(['user_id', "'|'", dbt.cast('window_start', api.Column.translate_type('string')), "'|'", 'category'])) }} as analytics_id,
    business_id,
    user_id,
    window_start,
    category,
    transaction_count,
    debit_amount,
    credit_amount,
    credit_amount - debit_amount as net_amount,
    updated_at
from hourly
