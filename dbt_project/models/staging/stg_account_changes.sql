{{ change_log('accounts', 'account_id') }}
