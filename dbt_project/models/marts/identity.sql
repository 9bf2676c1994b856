{{ config(
    unique_key='user_id',
    incremental_strategy=mart_incremental_strategy(),
    partition_by=mart_partition_by('updated_at'),
    cluster_by=mart_cluster_by(),
    pre_hook="{{ delete_window('updated_at') }}",
) }}

-- IDENTITY (seed 001): KYC data of customers holding at least one virtual bank account.
-- A customer changes when their record or one of their virtual accounts does.
with users as (
    select * from {{ ref('stg_users') }}
),

virtual_accounts as (
    select
        user_id,
        count(*) as virtual_account_count,
        max(updated_at) as accounts_updated_at
    from {{ ref('stg_accounts') }}
    where is_virtual
    group by user_id
),

customers as (
    select
        users.*,
        virtual_accounts.virtual_account_count,
        greatest(users.updated_at, virtual_accounts.accounts_updated_at) as changed_at
    from users
    inner join virtual_accounts on users.user_id = virtual_accounts.user_id
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
    virtual_account_count,
    changed_at as updated_at
from customers
where {{ window_filter('changed_at') }}
