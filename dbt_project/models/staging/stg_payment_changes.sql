{{ change_log('payments', 'payment_id') }}
