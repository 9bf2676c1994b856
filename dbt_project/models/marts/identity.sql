{{ config(
    unique_key=['user_id', 'updated_at'],
    incremental_strategy=mart_incremental_strategy(),
    partition_by=mart_partition_by('loaded_at'),
    cluster_by=mart_cluster_by(),
    pre_hook="{{ delete_window('loaded_at') }}",
) }}

-- IDENTITY (seed 001): KYC data of customers holding at least one virtual bank account. A customer
-- changes when their record or one of their virtual accounts does; each change is one row, with the
-- customer as the platform knew them once that change was received.
with users as (
    select * from {{ ref('stg_user_changes') }}
),

virtual_accounts as (
    select account_id, user_id, updated_at, loaded_at
    from {{ ref('stg_account_changes') }}
    where is_virtual
),

changes as (
    select user_id, updated_at, max(loaded_at) as loaded_at
    from (
        select user_id, updated_at, loaded_at from users
        union all
        select user_id, updated_at, loaded_at from virtual_accounts
    ) as received
    group by user_id, updated_at
),

with_accounts as (
    select
        changes.user_id,
        changes.updated_at,
        changes.loaded_at,
        count(distinct virtual_accounts.account_id) as virtual_account_count
    from changes
    inner join virtual_accounts
        on virtual_accounts.user_id = changes.user_id and virtual_accounts.loaded_at <= changes.loaded_at
    group by changes.user_id, changes.updated_at, changes.loaded_at
),

customers as (
    select
        users.business_id,
        users.first_name,
        users.last_name,
        users.email,
        users.phone,
        users.date_of_birth,
        users.document_type,
        users.document_number,
        users.nationality,
        users.address,
        users.city,
        users.country,
        users.kyc_status,
        users.last_kyc_date,
        with_accounts.user_id,
        with_accounts.virtual_account_count,
        with_accounts.updated_at,
        with_accounts.loaded_at
    from with_accounts
    inner join users
        on users.user_id = with_accounts.user_id and users.loaded_at <= with_accounts.loaded_at
    where true
    qualify row_number() over (
        partition by with_accounts.user_id, with_accounts.updated_at
        order by users.updated_at desc, users.loaded_at desc
    ) = 1
),

versioned as (
    select
        *,
        case
            when row_number() over (partition by user_id order by updated_at, loaded_at) = 1 then 'insert'
            else 'update'
        end as change_type
    from customers
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
    updated_at,
    loaded_at,
    change_type
from versioned
where {{ window_filter('loaded_at') }}
