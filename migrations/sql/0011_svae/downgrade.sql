DROP VIEW IF EXISTS xpdb.xp_outliers;
DROP VIEW IF EXISTS xpdb.svae_neighbours;
DROP FUNCTION IF EXISTS xpdb.svae_similar(integer, bigint, integer, boolean);
DROP TABLE IF EXISTS xpdb.svae_output;
DROP EXTENSION IF EXISTS btree_gist;
DROP EXTENSION IF EXISTS cube;
