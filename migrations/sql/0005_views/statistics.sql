-- Residual statistics in SQL, so that reports and the demo read every number from views.
--
-- xpdb.gaussian_fit(values): the paper's "bias and sigma by a Gaussian fit". The residuals
-- are histogrammed in bins of a quarter robust sigma (1.4826 MAD) over +-4 robust sigma about
-- the median, and a Gaussian A exp(-(x - mu)^2 / (2 sigma^2)) is least-squares fitted to the
-- counts by Levenberg-Marquardt iterations (the objective of scipy's curve_fit, which
-- xpdb.models.evaluate.gaussian_fit uses on the same bins; they are tested equal). Below 50
-- values, or if the fit fails, the robust estimates are returned and method says so.

CREATE TYPE xpdb.residual_stats AS (
    n integer, mean double precision, std double precision, median double precision,
    robust_sigma double precision, bias double precision, sigma double precision, method text
);

CREATE OR REPLACE FUNCTION xpdb.gaussian_fit(vals double precision[]) RETURNS xpdb.residual_stats
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    r xpdb.residual_stats;
    width double precision; lo double precision; nbins integer;
    xs double precision[]; cs double precision[];
    amp double precision; mu double precision; sig double precision;
    lambda double precision := 1e-3; cost double precision; new_cost double precision;
    jaa double precision; jam double precision; jas double precision; jmm double precision;
    jms double precision; jss double precision; ga double precision; gm double precision; gs double precision;
    a11 double precision; a22 double precision; a33 double precision; det double precision;
    da double precision; dm double precision; ds double precision;
    e double precision; f double precision; res double precision; dx double precision;
    k integer; it integer;
BEGIN
    SELECT count(v), avg(v), stddev_pop(v), percentile_cont(0.5) WITHIN GROUP (ORDER BY v)
      INTO r.n, r.mean, r.std, r.median
      FROM unnest(vals) AS v WHERE v = v AND v NOT IN ('Infinity', '-Infinity');
    IF r.n = 0 THEN
        r.method := 'none';
        RETURN r;
    END IF;
    SELECT 1.4826 * percentile_cont(0.5) WITHIN GROUP (ORDER BY abs(v - r.median))
      INTO r.robust_sigma FROM unnest(vals) AS v WHERE v = v AND v NOT IN ('Infinity', '-Infinity');
    r.bias := r.median; r.sigma := r.robust_sigma; r.method := 'robust';
    IF r.n < 50 OR r.robust_sigma <= 0 THEN
        RETURN r;
    END IF;
    -- the histogram: 32 bins of robust_sigma/4 from median - 4 robust_sigma (numpy.histogram's edges)
    width := r.robust_sigma / 4;
    lo := r.median - 4 * r.robust_sigma;
    nbins := 32;
    SELECT array_agg(lo + (i + 0.5) * width ORDER BY i), array_agg(coalesce(h.c, 0)::double precision ORDER BY i)
      INTO xs, cs
      FROM generate_series(0, nbins - 1) AS i
      LEFT JOIN (SELECT least(floor((v - lo) / width)::integer, nbins - 1) AS b, count(*) AS c
                 FROM unnest(vals) AS v WHERE v >= lo AND v <= lo + nbins * width GROUP BY 1) AS h ON h.b = i;
    SELECT max(c) INTO amp FROM unnest(cs) AS c;
    mu := r.median; sig := r.robust_sigma;
    cost := 0;
    FOR k IN 1 .. nbins LOOP
        cost := cost + (cs[k] - amp * exp(-0.5 * ((xs[k] - mu) / sig) ^ 2)) ^ 2;
    END LOOP;
    FOR it IN 1 .. 200 LOOP
        jaa := 0; jam := 0; jas := 0; jmm := 0; jms := 0; jss := 0; ga := 0; gm := 0; gs := 0;
        FOR k IN 1 .. nbins LOOP
            dx := xs[k] - mu;
            e := exp(-0.5 * (dx / sig) ^ 2);
            f := amp * e;
            res := cs[k] - f;
            -- derivatives of f with respect to amp, mu, sig
            jaa := jaa + e * e; jam := jam + e * f * dx / sig ^ 2; jas := jas + e * f * dx ^ 2 / sig ^ 3;
            jmm := jmm + (f * dx / sig ^ 2) ^ 2; jms := jms + (f * dx / sig ^ 2) * (f * dx ^ 2 / sig ^ 3);
            jss := jss + (f * dx ^ 2 / sig ^ 3) ^ 2;
            ga := ga + e * res; gm := gm + f * dx / sig ^ 2 * res; gs := gs + f * dx ^ 2 / sig ^ 3 * res;
        END LOOP;
        LOOP
            a11 := jaa * (1 + lambda); a22 := jmm * (1 + lambda); a33 := jss * (1 + lambda);
            det := a11 * (a22 * a33 - jms * jms) - jam * (jam * a33 - jms * jas) + jas * (jam * jms - a22 * jas);
            EXIT WHEN det = 0;
            da := (ga * (a22 * a33 - jms * jms) - jam * (gm * a33 - jms * gs) + jas * (gm * jms - a22 * gs)) / det;
            dm := (a11 * (gm * a33 - gs * jms) - ga * (jam * a33 - jms * jas) + jas * (jam * gs - gm * jas)) / det;
            ds := (a11 * (a22 * gs - jms * gm) - jam * (jam * gs - gm * jas) + ga * (jam * jms - a22 * jas)) / det;
            new_cost := 0;
            IF sig + ds > 0 THEN
                FOR k IN 1 .. nbins LOOP
                    new_cost := new_cost + (cs[k] - (amp + da) * exp(-0.5 * ((xs[k] - mu - dm) / (sig + ds)) ^ 2)) ^ 2;
                END LOOP;
            ELSE
                new_cost := cost + 1;
            END IF;
            IF new_cost <= cost THEN
                amp := amp + da; mu := mu + dm; sig := sig + ds;
                lambda := lambda / 10;
                EXIT;
            END IF;
            lambda := lambda * 10;
            EXIT WHEN lambda > 1e12;
        END LOOP;
        EXIT WHEN det = 0 OR lambda > 1e12 OR abs(cost - new_cost) <= 1e-12 * greatest(cost, 1e-300);
        cost := new_cost;
    END LOOP;
    IF sig > 0 AND sig < 10 * r.robust_sigma AND abs(mu - r.median) < 4 * r.robust_sigma THEN
        r.bias := mu; r.sigma := sig; r.method := 'gaussian fit';
    END IF;
    RETURN r;
END
$$;

-- Mean and sigma after iterative 3-sigma clipping (cluster tests, paper Figure 9).
CREATE TYPE xpdb.clipped_stats AS (n integer, n_clipped integer, mean double precision, sigma double precision);

CREATE OR REPLACE FUNCTION xpdb.clipped_stats(vals double precision[], nsigma double precision DEFAULT 3)
RETURNS xpdb.clipped_stats LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    r xpdb.clipped_stats;
    m double precision; s double precision; n_before integer; iterations integer := 0;
BEGIN
    SELECT count(v), avg(v), stddev_pop(v) INTO r.n, m, s FROM unnest(vals) AS v WHERE v = v;
    n_before := r.n;
    LOOP
        EXIT WHEN s IS NULL OR s = 0 OR iterations >= 20;
        SELECT count(v), avg(v), stddev_pop(v) INTO r.n, m, s
          FROM unnest(vals) AS v WHERE v = v AND abs(v - m) <= nsigma * s;
        iterations := iterations + 1;
        EXIT WHEN r.n = n_before;
        n_before := r.n;
    END LOOP;
    r.mean := m; r.sigma := s;
    SELECT count(v) - r.n INTO r.n_clipped FROM unnest(vals) AS v WHERE v = v;
    RETURN r;
END
$$;
