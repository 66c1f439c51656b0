-- The read-only role that xpdb's queries and the TAP service use (sql/roles.sql grants it
-- SELECT when xpdb migrates the database). Change the password for anything public.
CREATE ROLE xpdb_reader LOGIN PASSWORD 'xpdb_reader' NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT;
