-- The ceiling of scenario 1 beside tpcb-like: what PostgreSQL can do of the
-- service's own work. One transfer of 0.01 between two different random
-- accounts of the run database, through the same server-side function the
-- service calls for PUT /transfer (migrations 0003, 0004 and 0007), in one
-- autocommit statement as the service runs it.
\set sender random(1, :accounts)
\set receiver random(1, :accounts - 1)
\if :receiver >= :sender
\set receiver :receiver + 1
\endif
SELECT refusal FROM ledger_post('balance_transfer', :sender, :receiver, 0.01, 'pgbench', 'pgbench');
