-- Leases: the instance running a run and until when (milliseconds on the database's clock).
ALTER TABLE bear_runs ADD COLUMN lease_owner TEXT;
ALTER TABLE bear_runs ADD COLUMN lease_until_ms BIGINT;
CREATE INDEX bear_runs_lease ON bear_runs (status, lease_until_ms);
