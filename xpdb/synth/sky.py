"""A synthetic sky of giants in the Gaia archive's own layouts, with known truth and known nuisances.

``make_sky(n, seed)`` draws four groups of stars:

* **field**: giants (with a red clump and about 8 per cent dwarfs) over the whole sky,
  [Fe/H] a thin-disk / thick-disk / halo mixture with a metal-poor tail;
* **PASTEL-like** training targets: bright (6.5 < G < 15, most of them brighter than 12),
  [Fe/H] imbalanced like the paper's training set (80 per cent around -0.15, 5 per cent in
  -3..-2, 1.5 per cent below -3);
* **SAGA-like** test targets: 8 < G < 15, rich in metal-poor stars, none shared with PASTEL;
* members of five clusters whose reference [Fe/H] are the paper's APOGEE values (NGC 6397
  -2.02, NGC 6752 -1.47, NGC 5904 -1.18, NGC 2682 0.00, NGC 6791 +0.31), at their real
  positions and distances, and field stars that their member lists contain by mistake.

Physics of one star: (M_G, [Fe/H]) -> Teff, log g on a simple red-giant branch
(Teff = 4650 + 200 (M_G - 0.5) - 180 [Fe/H] K, log g = 2.4 + 0.38 (M_G - 0.5)) ->
the parametric SED of ``xpdb.synth.sed`` (with [alpha/Fe] and [C/Fe]) -> smoothed to XP
resolution (Gaussian, R = lambda / FWHM = 40) -> reddened -> distorted by the G-dependent
blue systematic -> projected on GaiaXPy's BP and RP calibration bases by least squares over
each band's wavelength range -> scaled to the drawn apparent G (synthetic photometry in the
Gaia DR3 Vega system) -> perturbed with errors and correlations following the real spectra
(``xpdb.synth.noise``). Catalogue G, BP, RP come from the same synthetic photometry;
distances follow from G_0 and M_G; parallaxes, rgeo and E(B-V) carry realistic errors.

Nuisances a method must survive (each recorded per star in the truth table):

* **[alpha/Fe]** (``alpha_fe``): +0.4 below [Fe/H] = -1, falling linearly to 0 at [Fe/H] = 0,
  scatter 0.04 dex; the strong Ca II and Mg lines and TiO follow [alpha/H];
* **carbon-enhanced VMP stars** (``carbon_enhanced``, ``c_fe``): ``CEMP_FRACTION`` of the stars
  with [Fe/H] <= -2 (20 per cent; 35 per cent below -3) have [C/Fe] uniform in +0.7..+2.0
  (others 0 +- 0.15), which strengthens CH, CN and C2 bands in the blue;
* **weak-line blanketing that fades with Z** below [Fe/H] of about -2 (``xpdb.synth.sed``):
  only the strong lines keep metallicity information in VMP and EMP stars;
* **extinction that is not what the pipeline assumes**: the sky is reddened with the Zhang et
  al. (2024) curve at the star's own R(V) (``r_v``, 3.1 +- 0.2; CCM89's R(V) term), by the
  true E(B-V) (``ebv``), while the catalogue's SFD-like E(B-V) (``ebv_sfd``) is off by a scale
  error (``sfd_scale``: 1.10 x, 7 per cent scatter); xpdb dereddens with the catalogue value
  and the fixed curve, as it would for real stars;
* **a G-dependent systematic in the blue** (``blue_systematic``): the observed flux times
  1 + s(G) exp(-(lambda - 330 nm) / 60 nm), s(G) = 0.012 (G - 13), within +-0.05;
* **label catalogues that disagree**: the SAGA-like labels carry a +0.10 dex offset and errors
  that grow below [Fe/H] = -2 (0.07 + 0.08 per dex, ``LABEL_MODELS``); the PASTEL-like ones are
  unbiased with 0.07 dex (``label_catalog``, ``label_offset``, ``label_error``);
* **clusters that are not perfect**: members spread in [Fe/H] by ``CLUSTER_SPREAD`` around a
  true mean (``feh_true``, 0.04 dex from the reference value), NGC 6791 has subgiants bluer
  than (BP-RP)0 = 1.05, and every member list includes ``CONTAMINATION`` field stars
  (``listed_cluster`` set, ``member`` false), with lower membership probabilities on average.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from xpdb.synth import noise
from xpdb.synth.sed import giant_sed
from xpdb.xp.calibrate import calibration_bases
from xpdb.xp.extinction import dereddening_factor

K = 55
SOLUTION_ID = 4545469030156206080
RESOLUTION = 40.0
CLUSTERS = (
    # name, ra, dec [deg], distance [pc], E(B-V), [Fe/H]
    ("NGC6397", 265.1754, -53.6743, 2300.0, 0.18, -2.02),
    ("NGC6752", 287.7171, -59.9846, 4000.0, 0.04, -1.47),
    ("NGC5904", 229.6384, 2.0810, 7500.0, 0.03, -1.18),
    ("NGC2682", 132.8460, 11.8140, 860.0, 0.04, 0.00),
    ("NGC6791", 290.2208, 37.7717, 4100.0, 0.12, 0.31),
)
GROUP_FRACTIONS = {"pastel": 0.13, "saga": 0.05, "cluster": 0.015}
# The label catalogues: offset [dex], error above [Fe/H] = -2 [dex], its growth per dex below -2 (up to -4)
LABEL_MODELS = {"pastel": {"offset": 0.0, "error": 0.07, "vmp_slope": 0.0},
                "saga": {"offset": 0.10, "error": 0.07, "vmp_slope": 0.08}}
CEMP_FRACTION = ((-3.0, 0.35), (-2.0, 0.20))  # ([Fe/H] upper limit, fraction carbon-enhanced), lowest first
CEMP_C_FE = (0.7, 2.0)
SFD_SCALE = (1.10, 0.07)  # catalogue E(B-V) / true E(B-V): mean and log-normal scatter
R_V = (3.1, 0.2)
BLUE_SYSTEMATIC = {"slope": 0.012, "g_ref": 13.0, "max": 0.05, "scale_nm": 60.0}
CLUSTER_SPREAD = {"NGC6397": 0.04, "NGC6752": 0.04, "NGC5904": 0.05, "NGC2682": 0.03, "NGC6791": 0.05}
CLUSTER_MEAN_SCATTER = 0.04  # true cluster mean - reference value [dex]
CONTAMINATION = 0.15  # fraction of each member list that is field stars
SUBGIANTS = {"NGC6791": 0.25}  # fraction of the members that are subgiants bluer than (BP-RP)0 = 1.05


@dataclass
class XpResult:
    coefficients: dict[str, np.ndarray]  # observed, scaled, noisy
    errors: dict[str, np.ndarray]
    correlations: dict[str, np.ndarray]
    noiseless: dict[str, np.ndarray]  # observed, scaled, no noise
    intrinsic: dict[str, np.ndarray]  # unreddened, same scale
    sed: np.ndarray  # the unreddened smoothed SED on the calibration grid (scaled)
    wavelength: np.ndarray
    observed: np.ndarray | None = None  # the SED as observed: reddened, with the blue systematic (scaled)


@dataclass
class Sky:
    """The synthetic catalogue as Arrow tables in archive layouts, plus the truth."""

    gaia_source: pa.Table
    xp_continuous: pa.Table
    truth: pa.Table
    labels: dict[str, pa.Table] = field(default_factory=dict)
    members: dict[str, pa.Table] = field(default_factory=dict)
    clusters: pa.Table | None = None
    seed: int = 0
    spectra: XpResult | None = None  # the generating spectra, for checks


def _sample_feh(rng, n, mixture) -> np.ndarray:
    """mixture: list of (weight, ('normal', mu, sigma) | ('uniform', lo, hi))."""
    weights = np.array([w for w, _ in mixture], float)
    pick = rng.choice(len(mixture), size=n, p=weights / weights.sum())
    out = np.empty(n)
    for i, (_, (kind, a, b)) in enumerate(mixture):
        m = pick == i
        out[m] = rng.normal(a, b, m.sum()) if kind == "normal" else rng.uniform(a, b, m.sum())
    return np.clip(out, -4.0, 0.5)


FEH_MIXTURES = {
    "field": [(0.60, ("normal", -0.25, 0.30)), (0.32, ("normal", -1.4, 0.45)), (0.06, ("uniform", -2.6, -2.0)),
              (0.02, ("uniform", -4.0, -2.6))],
    "pastel": [(0.80, ("normal", -0.15, 0.25)), (0.135, ("uniform", -2.0, -1.0)), (0.05, ("uniform", -3.0, -2.0)),
               (0.015, ("uniform", -4.0, -3.0))],
    "saga": [(0.25, ("normal", -0.6, 0.3)), (0.35, ("uniform", -2.0, -1.0)), (0.28, ("uniform", -3.0, -2.0)),
             (0.12, ("uniform", -4.0, -3.0))],
}


def _giant_parameters(rng, m_g, feh):
    teff = np.clip(4650 + 200 * (m_g - 0.5) - 180 * feh + rng.normal(0, 60, len(m_g)), 3800, 5600)
    logg = np.clip(2.4 + 0.38 * (m_g - 0.5) + rng.normal(0, 0.1, len(m_g)), 0.3, 3.6)
    return teff, logg


def _absolute_mags(rng, n, lo=-3.0, hi=3.2, slope=0.6):
    """M_G drawn with p ∝ exp(slope M_G): more faint giants than bright ones."""
    u = rng.uniform(size=n)
    a, b = np.exp(slope * lo), np.exp(slope * hi)
    return np.log(a + u * (b - a)) / slope


def _sphere(rng, n, min_abs_b=0.0):
    """Uniform positions on the sky (optionally |b| > min_abs_b), returned as (ra, dec, l, b)."""
    from astropy import units as u
    from astropy.coordinates import SkyCoord

    sin_lo = np.sin(np.radians(min_abs_b))
    sinb = rng.uniform(sin_lo, 1, n) * rng.choice([-1, 1], n)
    lon = rng.uniform(0, 360, n)
    gal = SkyCoord(l=lon * u.deg, b=np.degrees(np.arcsin(sinb)) * u.deg, frame="galactic").icrs
    return gal.ra.deg, gal.dec.deg


def alpha_enhancement(feh: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """[alpha/Fe]: +0.4 below [Fe/H] = -1, linearly down to 0 at [Fe/H] = 0, scatter 0.04 dex."""
    feh = np.asarray(feh, float)
    return np.clip(-0.4 * feh, 0.0, 0.4) + rng.normal(0, 0.04, len(feh))


def carbon(feh: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """([C/Fe], carbon-enhanced) per star: ``CEMP_FRACTION`` of the VMP stars have [C/Fe] in ``CEMP_C_FE``."""
    feh = np.asarray(feh, float)
    fraction = np.zeros(len(feh))
    for limit, f in CEMP_FRACTION:  # lowest limit first: the first that applies wins
        fraction = np.where((feh <= limit) & (fraction == 0), f, fraction)
    enhanced = rng.uniform(size=len(feh)) < fraction
    c_fe = rng.normal(0, 0.15, len(feh))
    c_fe[enhanced] = rng.uniform(*CEMP_C_FE, enhanced.sum())
    return c_fe, enhanced


def _field_like(rng, k, dwarf_fraction=0.08):
    """(feh, m_g, teff, logg) of field stars: giants, a red clump and dwarfs."""
    feh = _sample_feh(rng, k, FEH_MIXTURES["field"])
    m_g = _absolute_mags(rng, k)
    teff, logg = _giant_parameters(rng, m_g, feh)
    clump = (rng.uniform(size=k) < 0.2) & (feh > -1)
    m_g[clump] = rng.normal(0.45, 0.1, clump.sum())
    teff[clump] = 4750 - 150 * feh[clump] + rng.normal(0, 50, clump.sum())
    logg[clump] = rng.normal(2.4, 0.1, clump.sum())
    dwarf = rng.uniform(size=k) < dwarf_fraction
    teff[dwarf] = rng.uniform(4400, 6000, dwarf.sum())
    logg[dwarf] = 4.5
    m_g[dwarf] = 4.6 + 3.2 * (5800 - teff[dwarf]) / 1000 + rng.normal(0, 0.2, dwarf.sum())
    return feh, m_g, teff, logg


def _field_g(rng, k):
    return 8.0 + 9.5 * rng.uniform(size=k) ** 0.6  # more faint stars than bright ones


def draw_population(n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Stellar parameters, target magnitudes and positions of every star (before spectra)."""
    n_pastel = int(round(GROUP_FRACTIONS["pastel"] * n))
    n_saga = int(round(GROUP_FRACTIONS["saga"] * n))
    n_per_cluster = max(8, int(round(GROUP_FRACTIONS["cluster"] * n / len(CLUSTERS))))
    n_contaminants = int(round(CONTAMINATION * n_per_cluster / (1 - CONTAMINATION)))
    n_field = max(0, n - n_pastel - n_saga - (n_per_cluster + n_contaminants) * len(CLUSTERS))
    parts = []

    def part(group, feh, teff, logg, m_g, g, ra, dec, cluster="", listed="", ebv_true=None, distance=None):
        k = len(feh)
        return dict(group=np.full(k, group), feh=feh, teff=teff, logg=logg, m_g=m_g, g=g, ra=ra % 360, dec=dec,
                    cluster=np.full(k, cluster), listed=np.full(k, listed),
                    ebv_true=np.full(k, np.nan) if ebv_true is None else ebv_true,
                    distance=np.full(k, np.nan) if distance is None else distance)

    # field: giants, red clump, dwarfs
    feh, m_g, teff, logg = _field_like(rng, n_field)
    ra, dec = _sphere(rng, n_field)
    parts.append(part("field", feh, teff, logg, m_g, _field_g(rng, n_field), ra, dec))

    for group in ("pastel", "saga"):
        k = n_pastel if group == "pastel" else n_saga
        feh = _sample_feh(rng, k, FEH_MIXTURES[group])
        m_g = _absolute_mags(rng, k, -2.0, 2.8)
        teff, logg = _giant_parameters(rng, m_g, feh)
        ra, dec = _sphere(rng, k, min_abs_b=15.0)
        # PASTEL-like: bright, a tail to G = 15 (the paper's training range, section 4.3); SAGA-like: 8-15
        g = 6.5 + 8.5 * rng.uniform(size=k) ** 1.6 if group == "pastel" else rng.uniform(8.0, 15.0, k)
        parts.append(part(group, feh, teff, logg, m_g, g, ra, dec))

    cluster_truth = {}
    for name, cra, cdec, dist, ebv, cfeh in CLUSTERS:
        k = n_per_cluster
        true_mean = cfeh + rng.normal(0, CLUSTER_MEAN_SCATTER)
        cluster_truth[name] = true_mean
        feh = np.clip(true_mean + rng.normal(0, CLUSTER_SPREAD.get(name, 0.04), k), -4, 0.5)
        d = dist * (1 + rng.normal(0, 0.01, k))
        m_g_max = min(3.0, 16.8 - 5 * np.log10(dist / 10) - 2.1 * ebv)
        m_g = _absolute_mags(rng, k, -2.5, m_g_max, 0.5)
        teff, logg = _giant_parameters(rng, m_g, feh)
        n_sub = int(round(SUBGIANTS.get(name, 0.0) * k))
        if n_sub:  # subgiants below the giant branch's base, bluer than (BP-RP)0 = 1.05
            m_g[:n_sub] = rng.uniform(2.0, max(2.1, m_g_max + 0.3), n_sub)
            teff[:n_sub] = rng.uniform(5000, 5500, n_sub)
            logg[:n_sub] = rng.uniform(3.5, 3.9, n_sub)
        r = np.abs(rng.normal(0, 0.08, k))
        phi = rng.uniform(0, 2 * np.pi, k)
        ra = cra + r * np.cos(phi) / np.cos(np.radians(cdec))
        dec = cdec + r * np.sin(phi)
        parts.append(part("cluster", feh, teff, logg, m_g, np.full(k, np.nan), ra, dec, cluster=name, listed=name,
                          ebv_true=np.full(k, ebv) + rng.normal(0, 0.005, k), distance=d))
        # field stars in the cluster's direction that its member list includes by mistake
        kc = n_contaminants
        feh, m_g, teff, logg = _field_like(rng, kc, dwarf_fraction=0.3)
        r = np.abs(rng.normal(0, 0.12, kc))
        phi = rng.uniform(0, 2 * np.pi, kc)
        ra = cra + r * np.cos(phi) / np.cos(np.radians(cdec))
        dec = np.clip(cdec + r * np.sin(phi), -89.9, 89.9)
        parts.append(part("field", feh, teff, logg, m_g, _field_g(rng, kc), ra, dec, listed=name))
    pop = {key: np.concatenate([p[key] for p in parts])
           for key in ("group", "feh", "teff", "logg", "m_g", "g", "ra", "dec", "cluster", "listed", "ebv_true",
                       "distance")}
    n_all = len(pop["feh"])
    from astropy import units as u
    from astropy.coordinates import SkyCoord

    gal = SkyCoord(ra=pop["ra"] * u.deg, dec=pop["dec"] * u.deg).galactic
    pop["l"], pop["b"] = gal.l.deg, gal.b.deg
    # E(B-V): a cosec|b| dust layer with patchiness, for stars not in clusters
    free = np.isnan(pop["ebv_true"])
    sinb = np.abs(np.sin(np.radians(pop["b"][free])))
    pop["ebv_true"][free] = np.clip(0.025 / np.maximum(sinb, 0.05) * np.exp(rng.normal(0, 0.4, free.sum())), 0.003, 1.5)
    # abundance ratios and the extinction the pipeline does not know
    pop["alpha_fe"] = alpha_enhancement(pop["feh"], rng)
    pop["c_fe"], pop["carbon_enhanced"] = carbon(pop["feh"], rng)
    pop["r_v"] = rng.normal(R_V[0], R_V[1], n_all)
    pop["sfd_scale"] = SFD_SCALE[0] * np.exp(rng.normal(0, SFD_SCALE[1], n_all))
    pop["cluster_truth"] = cluster_truth
    pop["n"] = n_all
    return pop


def ccm_a(wavelength_nm: np.ndarray) -> np.ndarray:
    """a(x) of Cardelli, Clayton & Mathis (1989): A(lambda)/A(V) = a + b / R(V); the R(V) term of the curve."""
    x = 1000.0 / np.asarray(wavelength_nm, float)  # inverse micron
    y = x - 1.82
    optical = (1 + 0.17699 * y - 0.50447 * y ** 2 - 0.02427 * y ** 3 + 0.72085 * y ** 4 + 0.01979 * y ** 5
               - 0.77530 * y ** 6 + 0.32999 * y ** 7)
    return np.where(x < 1.1, 0.574 * np.clip(x, 0.3, None) ** 1.61, optical)


def reddening_factor(wavelength_nm: np.ndarray, ebv: np.ndarray, r_v: np.ndarray) -> np.ndarray:
    """Transmission (n, m): the Zhang et al. (2024) curve through eq. 1 at E(B-V) ``ebv``, with CCM89's
    R(V) term for the star's own R(V): A(lambda) += (R(V) - 3.1) E(B-V) a(lambda)."""
    zhang = 1.0 / dereddening_factor(wavelength_nm, ebv)
    extra = (np.asarray(r_v, float) - 3.1)[:, None] * np.asarray(ebv, float)[:, None] * ccm_a(wavelength_nm)[None, :]
    return zhang * 10 ** (-0.4 * extra)


def blue_systematic(g: np.ndarray) -> np.ndarray:
    """s(G): the fractional flux error at 330 nm of the G-dependent blue systematic."""
    c = BLUE_SYSTEMATIC
    return np.clip(c["slope"] * (np.asarray(g, float) - c["g_ref"]), -c["max"], c["max"])


def _smoothing_matrix(wl: np.ndarray, resolution: float = RESOLUTION) -> np.ndarray:
    sigma = wl / (2.355 * resolution)
    w = np.exp(-0.5 * ((wl[None, :] - wl[:, None]) / sigma[:, None]) ** 2)
    return w / w.sum(axis=1, keepdims=True)


def _projectors() -> dict[str, tuple[slice, np.ndarray]]:
    """Least-squares projectors from a sampled SED to each band's coefficients."""
    from gaiaxpy.core.satellite import BP_WL, RP_WL

    bases, _ = calibration_bases()
    wl = bases.grid
    out = {}
    for band, mask in (("bp", wl < BP_WL.high), ("rp", wl > RP_WL.low)):
        idx = np.flatnonzero(mask)
        cs = slice(int(idx[0]), int(idx[-1]) + 1)
        b = bases.design[band][:, cs]
        a = b @ b.T
        out[band] = (cs, np.linalg.solve(a + 1e-10 * np.trace(a) / len(a) * np.eye(len(a)), b))
    return out


def make_spectra(pop: dict, rng: np.random.Generator, block: int = 2000) -> tuple[XpResult, dict[str, np.ndarray]]:
    """XP coefficients with noise for the population, and the photometry they imply."""
    from xpdb.xp.photometry import photometric_system

    bases, _ = calibration_bases()
    wl = bases.grid
    smooth = _smoothing_matrix(wl)
    projectors = _projectors()
    system = photometric_system("Gaia_DR3_Vega")
    n = pop["n"]
    out = {name: {b: np.empty((n, K)) for b in ("bp", "rp")} for name in ("coef", "clean", "intrinsic", "errors")}
    corr = {b: np.empty((n, K * (K - 1) // 2), dtype=np.float32) for b in ("bp", "rp")}
    seds = np.empty((n, len(wl)))
    observed = np.empty((n, len(wl)))
    phot = {key: np.empty(n) for key in ("G", "BP", "RP", "G0", "BP0", "RP0", "blue_systematic")}
    blue_shape = np.exp(-(wl - 330.0) / BLUE_SYSTEMATIC["scale_nm"])

    def synth_mags(coef):
        f = (coef["bp"] @ system.bases.design["bp"]) * system.merge["bp"] + \
            (coef["rp"] @ system.bases.design["rp"]) * system.merge["rp"]
        with np.errstate(invalid="ignore", divide="ignore"):
            return -2.5 * np.log10(f) + system.zero_points

    def project(flux):
        return {b: flux[:, cs] @ m.T for b, (cs, m) in projectors.items()}

    for start in range(0, n, block):
        sl = slice(start, min(n, start + block))
        sed = giant_sed(wl, pop["teff"][sl], pop["logg"][sl], pop["feh"][sl], pop["alpha_fe"][sl],
                        pop["c_fe"][sl]) @ smooth.T
        red = sed * reddening_factor(wl, pop["ebv_true"][sl], pop["r_v"][sl])
        intr = project(sed)
        obs = project(red)
        mags_obs = synth_mags(obs)
        mags_int = synth_mags(intr)
        g_target = pop["g"][sl].copy()
        cl = np.isnan(g_target)  # cluster members: G from distance and M_G
        if cl.any():
            a_g = mags_obs[cl, 0] - mags_int[cl, 0]
            g_target[cl] = pop["m_g"][sl][cl] + 5 * np.log10(pop["distance"][sl][cl] / 10) + a_g
        # the G-dependent systematic in the blue, on what the instrument sees (not on the intrinsic SED)
        s_blue = blue_systematic(g_target)
        red = red * (1.0 + s_blue[:, None] * blue_shape[None, :])
        obs = project(red)
        mags_obs = synth_mags(obs)
        scale = 10 ** (-0.4 * (g_target - mags_obs[:, 0]))
        for b in ("bp", "rp"):
            obs[b] *= scale[:, None]
            intr[b] *= scale[:, None]
        seds[sl] = sed * scale[:, None]
        observed[sl] = red * scale[:, None]
        phot["blue_systematic"][sl] = s_blue
        mags_obs = synth_mags(obs)
        mags_int = synth_mags(intr)
        for i, key in enumerate(("G", "BP", "RP")):
            phot[key][sl] = mags_obs[:, i]
            phot[key + "0"][sl] = mags_int[:, i]
        for b in ("bp", "rp"):
            errs = noise.coefficient_errors(mags_obs[:, 0], b, K, rng)
            delta, packed = noise.correlated_noise(errs, mags_obs[:, 0], rng)
            out["coef"][b][sl] = obs[b] + delta
            out["clean"][b][sl] = obs[b]
            out["intrinsic"][b][sl] = intr[b]
            out["errors"][b][sl] = errs
            corr[b][sl] = packed
    return XpResult(out["coef"], out["errors"], corr, out["clean"], out["intrinsic"], seds, wl, observed), phot


def _source_ids(ra, dec, rng) -> np.ndarray:
    """Gaia-like identifiers: HEALPix level-12 (nested) index * 2**35 + a running number."""
    from astropy import units as u
    from astropy_healpix import HEALPix

    hp = HEALPix(nside=2 ** 12, order="nested").lonlat_to_healpix(ra * u.deg, dec * u.deg).astype(np.int64)
    ids = hp * 2 ** 35 + rng.integers(1, 2 ** 35 - 1, len(ra))
    while len(np.unique(ids)) < len(ids):  # vanishingly rare; keep identifiers unique
        _, first = np.unique(ids, return_index=True)
        dup = np.setdiff1d(np.arange(len(ids)), first)
        ids[dup] = hp[dup] * 2 ** 35 + rng.integers(1, 2 ** 35 - 1, len(dup))
    return ids


def _list_array(values: np.ndarray, null: np.ndarray, dtype) -> pa.Array:
    n, k = values.shape
    offsets = np.concatenate(([0], np.cumsum(np.where(null, 0, k)))).astype(np.int32)
    flat = values[~null].astype(dtype).ravel()
    return pa.ListArray.from_arrays(pa.array(offsets), pa.array(flat), mask=pa.array(null) if null.any() else None)


def make_sky(n: int = 20000, seed: int = 42) -> Sky:
    """Draw the synthetic sky (see the module docstring). Deterministic for a given seed."""
    rng = np.random.default_rng(seed)
    pop = draw_population(n, rng)
    xp, phot = make_spectra(pop, rng)
    n_all = pop["n"]
    source_id = _source_ids(pop["ra"], pop["dec"], rng)
    g = phot["G"]
    # distances from the unreddened G and M_G; astrometry with Gaia-like errors
    distance = np.where(np.isnan(pop["distance"]), 10 ** ((phot["G0"] - pop["m_g"] + 5) / 5), pop["distance"])
    plx_err = 0.015 + 0.02 * 10 ** (0.3 * (g - 15))
    parallax = 1000.0 / distance + rng.normal(0, 1, n_all) * plx_err
    rel = np.minimum(0.25, plx_err * distance / 1000.0)
    rgeo = distance * np.exp(rng.normal(0, 1, n_all) * rel)
    # the catalogue's SFD-like E(B-V): the true one times the map's scale error, plus noise
    ebv_catalogue = np.clip(pop["ebv_true"] * pop["sfd_scale"] + rng.normal(0, 0.005, n_all), 0, None)
    bp_rp = phot["BP"] - phot["RP"]
    excess = 1.17 + 0.045 * bp_rp + np.abs(rng.normal(0, 0.015, n_all))
    bad = rng.uniform(size=n_all) < 0.015
    excess[bad] += rng.uniform(0.2, 0.6, bad.sum())
    halo = pop["feh"] < -1
    pm_scale = np.where(halo, 12.0, 5.0)
    gaia_source = pa.table({
        "source_id": source_id,
        "ra": pop["ra"], "dec": pop["dec"],
        "ra_error": (0.8 * plx_err).astype(np.float32), "dec_error": (0.7 * plx_err).astype(np.float32),
        "l": pop["l"], "b": pop["b"],
        "parallax": parallax, "parallax_error": plx_err.astype(np.float32),
        "pmra": rng.normal(0, 1, n_all) * pm_scale, "pmra_error": (1.1 * plx_err).astype(np.float32),
        "pmdec": rng.normal(0, 1, n_all) * pm_scale, "pmdec_error": (1.0 * plx_err).astype(np.float32),
        "ruwe": np.exp(rng.normal(0, 0.05, n_all)).astype(np.float32),
        "phot_g_mean_mag": (g + rng.normal(0, 0.002, n_all)).astype(np.float32),
        "phot_bp_mean_mag": (phot["BP"] + rng.normal(0, 0.004, n_all)).astype(np.float32),
        "phot_rp_mean_mag": (phot["RP"] + rng.normal(0, 0.004, n_all)).astype(np.float32),
        "bp_rp": bp_rp.astype(np.float32),
        "phot_bp_rp_excess_factor": excess.astype(np.float32),
        "ebv": ebv_catalogue.astype(np.float32),
        "r_med_geo": rgeo.astype(np.float32),
    })
    # a few sources lack BP, as in DR3
    missing_bp = rng.uniform(size=n_all) < 0.001
    present = {"bp": ~missing_bp, "rp": np.ones(n_all, dtype=bool)}
    cols: dict[str, pa.Array] = {"source_id": pa.array(source_id), "solution_id": pa.array(np.full(n_all, SOLUTION_ID))}
    g_obs = phot["G"]
    for band in ("bp", "rp"):
        null = ~present[band]
        nmeas = rng.integers(1500, 5500, n_all).astype(np.int16)
        sd = np.exp(rng.normal(0.08, 0.08, n_all)).astype(np.float32)

        def masked(values, dtype):
            return pa.array(np.asarray(values).astype(dtype), mask=null)

        cols[f"{band}_basis_function_id"] = masked(np.full(n_all, 56 if band == "bp" else 57), np.int16)
        cols[f"{band}_degrees_of_freedom"] = masked(nmeas - K, np.int16)
        cols[f"{band}_n_parameters"] = masked(np.full(n_all, K), np.int16)
        cols[f"{band}_n_measurements"] = masked(nmeas, np.int16)
        cols[f"{band}_n_rejected_measurements"] = masked(rng.integers(0, 40, n_all), np.int16)
        cols[f"{band}_standard_deviation"] = masked(sd, np.float32)
        cols[f"{band}_chi_squared"] = masked(sd.astype(float) ** 2 * (nmeas - K), np.float32)
        cols[f"{band}_coefficients"] = _list_array(xp.coefficients[band], null, np.float64)
        cols[f"{band}_coefficient_errors"] = _list_array(xp.errors[band], null, np.float32)
        cols[f"{band}_coefficient_correlations"] = _list_array(xp.correlations[band], null, np.float32)
        cols[f"{band}_n_relevant_bases"] = masked(noise.n_relevant_bases(g_obs, K, rng), np.int16)
        cols[f"{band}_relative_shrinking"] = masked(rng.uniform(0, 0.1, n_all), np.float32)
    xp_table = pa.table(cols)
    # the label catalogues: offsets and errors of LABEL_MODELS
    label_catalog = np.where(np.isin(pop["group"], list(LABEL_MODELS)), pop["group"], "").astype(str)
    label_offset = np.full(n_all, np.nan)
    label_error = np.full(n_all, np.nan)
    for group, model in LABEL_MODELS.items():
        m = pop["group"] == group
        label_offset[m] = model["offset"]
        label_error[m] = model["error"] + model["vmp_slope"] * np.clip(-2.0 - pop["feh"][m], 0.0, 2.0)
    listed = pop["listed"].astype(str)
    truth = pa.table({
        "source_id": source_id, "population": pop["group"].astype(str), "cluster": pop["cluster"].astype(str),
        "teff": pop["teff"], "logg": pop["logg"], "feh": pop["feh"],
        "alpha_fe": pop["alpha_fe"], "c_fe": pop["c_fe"], "carbon_enhanced": pop["carbon_enhanced"],
        "ebv": pop["ebv_true"], "ebv_sfd": ebv_catalogue, "sfd_scale": pop["sfd_scale"], "r_v": pop["r_v"],
        "blue_systematic": phot["blue_systematic"],
        "label_catalog": label_catalog, "label_offset": label_offset, "label_error": label_error,
        "listed_cluster": listed, "member": (listed != "") & (pop["cluster"].astype(str) == listed),
        "distance_pc": distance, "m_g": pop["m_g"], "bp_rp0": phot["BP0"] - phot["RP0"], "g0": phot["G0"],
    })
    sky = Sky(gaia_source, xp_table, truth, seed=seed)
    for group in LABEL_MODELS:
        m = pop["group"] == group
        sky.labels[group] = pa.table({
            "source_id": source_id[m],
            "ra": pop["ra"][m], "dec": pop["dec"][m],
            "feh": np.round(pop["feh"][m] + label_offset[m] + rng.normal(0, 1, m.sum()) * label_error[m], 2),
            "feh_err": np.round(label_error[m], 3),
            "teff": np.round(pop["teff"][m] + rng.normal(0, 50, m.sum())),
            "logg": np.round(pop["logg"][m] + rng.normal(0, 0.15, m.sum()), 2),
        })
    for name, cra, cdec, dist, ebv, cfeh in CLUSTERS:
        m = listed == name
        true_member = pop["cluster"][m].astype(str) == name
        # members mostly probable, some not; the list's field stars mostly less probable
        probability = np.where(rng.uniform(size=m.sum()) < 0.85, rng.uniform(0.7, 1.0, m.sum()),
                               rng.uniform(0.3, 0.7, m.sum()))
        probability = np.where(true_member, probability, rng.uniform(0.1, 0.8, m.sum()))
        sky.members[name] = pa.table({"source_id": source_id[m], "ra": pop["ra"][m], "dec": pop["dec"][m],
                                      "membership_probability": np.round(probability, 3)})
    sky.clusters = pa.table({"cluster": [c[0] for c in CLUSTERS], "ra": [c[1] for c in CLUSTERS],
                             "dec": [c[2] for c in CLUSTERS], "distance_pc": [c[3] for c in CLUSTERS],
                             "ebv": [c[4] for c in CLUSTERS], "feh_ref": [c[5] for c in CLUSTERS],
                             "feh_ref_err": [0.03] * len(CLUSTERS),
                             "feh_true": [round(float(pop["cluster_truth"][c[0]]), 4) for c in CLUSTERS],
                             "feh_spread": [CLUSTER_SPREAD.get(c[0], 0.04) for c in CLUSTERS]})
    sky.spectra = xp
    return sky
