-- Every version of every transaction, with the owning account, user and business attached
-- (their latest versions: who owns an account does not change).
with transactions as (
    select * from {{ ref('stg_transaction_changes') }}
),

accounts as (
    select * from {{ ref('stg_accounts') }}
),

users as (
    select * from {{ ref('stg_users') }}
)

select
    transactions.transaction_id,
    users.business_id,
    users.user_id,
    accounts.account_id,
    accounts.account_type,
    accounts.is_virtual,
    accounts.iban,
    accounts.currency as account_currency,
    transactions.channel,
    transactions.direction,
    transactions.amount,
    transactions.currency,
    transactions.merchant,
    transactions.category,
    transactions.status,
    transactions.booked_at,
    transactions.updated_at,
    transactions.loaded_at,
    transactions.change_type
from transactions
inner join accounts on transactions.account_id = accounts.account_id
inner join users on accounts.user_id = users.user_id
