DROP FUNCTION IF EXISTS xpdb.adql_radius(double precision, text);
