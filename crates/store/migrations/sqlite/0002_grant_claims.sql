-- The signed claims of each grant, so the grant an approval created can be handed out again
-- (re-signed: Ed25519 signatures are deterministic) without writing anything.
ALTER TABLE grants ADD COLUMN claims TEXT;
