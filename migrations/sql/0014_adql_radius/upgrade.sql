-- A CIRCLE radius or the r of DISTANCE(...) < r that ADQL computes (SQRT(40000), ABS(-200)...)
-- cannot be checked by the translator; the translated SQL passes it through this guard, which
-- PostgreSQL folds at plan time for constants (so q3c still sees a constant and uses its index).
CREATE OR REPLACE FUNCTION xpdb.adql_radius(radius double precision, what text) RETURNS double precision
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
BEGIN
  IF radius IS NULL OR (radius >= 0 AND radius <= 180) THEN
    RETURN radius;
  END IF;
  RAISE EXCEPTION '% must be between 0 and 180 degrees, not %', what, radius USING ERRCODE = '22023';
END
$$;
COMMENT ON FUNCTION xpdb.adql_radius(double precision, text) IS
  'ADQL geometry guard: the radius itself when within [0, 180] degrees, else an error naming it';
