-- The read-only role used by `xpdb query`, cone searches and the TAP service.
-- It logs in on its own (so a query cannot SET ROLE back to a writer), can only SELECT,
-- and has a default statement timeout. Roles are cluster-wide: creating it needs
-- CREATEROLE; on a managed server ask the DBA to run this file once.
DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'xpdb_reader') THEN
    BEGIN
      CREATE ROLE xpdb_reader LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT;
    EXCEPTION WHEN insufficient_privilege THEN
      RAISE NOTICE 'xpdb: no privilege to create role xpdb_reader; ask the DBA to run sql/roles.sql';
    END;
  END IF;
  IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'xpdb_reader') THEN
    GRANT USAGE ON SCHEMA xpdb TO xpdb_reader;
    GRANT SELECT ON ALL TABLES IN SCHEMA xpdb TO xpdb_reader;
    ALTER DEFAULT PRIVILEGES IN SCHEMA xpdb GRANT SELECT ON TABLES TO xpdb_reader;
    BEGIN
      ALTER ROLE xpdb_reader SET statement_timeout = '60s';
      ALTER ROLE xpdb_reader SET default_transaction_read_only = on;
    EXCEPTION WHEN insufficient_privilege THEN
      RAISE NOTICE 'xpdb: cannot set defaults on role xpdb_reader';
    END;
  END IF;
END
$$;
