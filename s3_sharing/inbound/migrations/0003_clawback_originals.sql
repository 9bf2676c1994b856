-- A clawback counts the earlier clawbacks of its original: this partial index finds them without
-- reading the FI's whole history, and holds only the rows that name an original.
CREATE INDEX fi_transactions_by_original ON fi_transactions (fi, original_transaction_id)
    WHERE original_transaction_id IS NOT NULL;
