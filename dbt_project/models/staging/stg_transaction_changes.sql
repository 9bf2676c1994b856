{{ change_log('transactions', 'transaction_id') }}
