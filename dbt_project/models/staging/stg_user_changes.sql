{{ change_log('users', 'user_id') }}
