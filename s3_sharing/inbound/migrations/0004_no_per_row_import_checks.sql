-- The entity rows' import_id named its ledger entry through a foreign key, checked by a trigger
-- per row: 3.6 s of a million-row import's 10 s statement. The importer writes the ledger entry
-- and the rows it names in one transaction, and ledger entries are never deleted, so the key
-- could never fail; the rewards tables (0002) have none for the same reason. The parents' keys
-- (parent_id) stay: they are the customer's relations.
ALTER TABLE risks DROP CONSTRAINT risks_import_id_fkey;
ALTER TABLE events DROP CONSTRAINT events_import_id_fkey;
ALTER TABLE controls DROP CONSTRAINT controls_import_id_fkey;
ALTER TABLE customers DROP CONSTRAINT customers_import_id_fkey;
ALTER TABLE counterparties DROP CONSTRAINT counterparties_import_id_fkey;
ALTER TABLE products DROP CONSTRAINT products_import_id_fkey;
ALTER TABLE transactions DROP CONSTRAINT transactions_import_id_fkey;
