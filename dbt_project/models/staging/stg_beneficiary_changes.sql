{{ change_log('beneficiaries', 'beneficiary_id') }}
