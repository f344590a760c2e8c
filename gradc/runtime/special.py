"""Special functions Numba does not provide: digamma, polygamma, loggamma near its zeros, Lambert W,
erfinv and erfcinv (scalar float64 functions; gamma itself is Numba's math.gamma).

Each follows a published algorithm, cited at the function; all agree with scipy.special to about
1e-14 relative over their domains (tests/test_special.py). The text below the RUNTIME marker is
copied into generated modules that call these functions (numpy, numba and the standard library only).
"""
# --- RUNTIME ---
import math

import numba as nb

#: the positive zero of digamma, x0 = 1.46163214496836234126..., as a double and the rest
_PSI_ZERO_HI = 1.4616321449683622
_PSI_ZERO_LO = 9.549995429965697e-17
#: ψ(x0 + t) = Σ_k c_k t^k with c_k = (-1)^(k+1) ζ(k+1, x0), k = 1..25 (Hurwitz zeta; computed with mpmath)
_PSI_ZERO_SERIES = (
    0.9676722454476212, -0.4427631689835921, 0.258499760955651, -0.16394270544240652, 0.10782405069126237,
    -0.07219956125645471, 0.04880428816414311, -0.03316112647484736, 0.022597648232218104, -0.01542476590494896,
    0.010538791616612175, -0.007204534386356869, 0.004926781395729853, -0.003369801655439328,
    0.002305126326734928, -0.0015769367714301972, 0.0010788252019162967, -0.0007380709389960052,
    0.000504953265834602, -0.0003454680251063077, 0.00023635601564027053, -0.00016170622091974803,
    0.0001106337276874741, -7.569179582195066e-05, 5.178575795222081e-05,
)
#: B_2j / (2j)!, j = 1..13 (Bernoulli numbers): the Euler-Maclaurin tail of the Hurwitz zeta
_BERNOULLI_OVER_FACTORIAL = (
    0.08333333333333333, -0.001388888888888889, 3.306878306878307e-05, -8.267195767195768e-07,
    2.08767569878681e-08, -5.284190138687493e-10, 1.3382536530684679e-11, -3.3896802963225827e-13,
    8.586062056277845e-15, -2.174868698558062e-16, 5.5090028283602295e-18, -1.3954464685812522e-19,
    3.534707039629467e-21,
)
#: ln Γ(2 + t) = (1 - γ) t + Σ_{k>=2} (-1)^k (ζ(k) - 1)/k t^k, k = 1..21 (Abramowitz & Stegun 6.1.33)
_LGAMMA_TWO_SERIES = (
    0.42278433509846713, 0.3224670334241132, -0.0673523010531981, 0.020580808427784546, -0.007385551028673986,
    0.0028905103307415234, -0.001192753911703261, 0.0005096695247430425, -0.00022315475845357939,
    9.945751278180853e-05, -4.492623673813314e-05, 2.050721277567069e-05, -9.439488275268397e-06,
    4.374866789907488e-06, -2.039215753801366e-06, 9.55141213040742e-07, -4.492469198764566e-07,
    2.1207184805554665e-07, -1.0043224823968099e-07, 4.7698101693639804e-08, -2.2711094608943164e-08,
)


@nb.njit(error_model="numpy", cache=True)
def _series(coefficients, t):
    """Σ_k coefficients[k-1] t^k (Horner)."""
    p = 0.0
    for k in range(len(coefficients) - 1, -1, -1):
        p = p * t + coefficients[k]
    return p * t


@nb.njit(error_model="numpy", cache=True)
def _digamma_positive(x):
    """ψ(x) for x > 0: the upward recurrence ψ(x) = ψ(x + 1) - 1/x to x >= 10, then the asymptotic series
    ψ(x) ~ ln x - 1/(2x) - Σ B_2k / (2k x^2k) (Abramowitz & Stegun 6.3.5 and 6.3.18; Cephes psi.c). Within
    1/4 of the zero x0 = 1.4616..., the Taylor series there instead (as SciPy's digamma does), so that the
    relative error stays at rounding level where ψ vanishes."""
    t = (x - _PSI_ZERO_HI) - _PSI_ZERO_LO
    if abs(t) < 0.25:
        return _series(_PSI_ZERO_SERIES, t)
    shift = 0.0
    while x < 10.0:
        shift += 1.0 / x
        x += 1.0
    z = 1.0 / (x * x)
    tail = z * (1.0 / 12 - z * (1.0 / 120 - z * (1.0 / 252 - z * (1.0 / 240 - z * (1.0 / 132 - z * (
        691.0 / 32760 - z * (1.0 / 12)))))))
    return math.log(x) - 0.5 / x - tail - shift


@nb.njit(error_model="numpy", cache=True)
def _digamma(x):
    """ψ(x) = Γ'(x)/Γ(x), as scipy.special.digamma: -inf at 0, nan at the negative integers; x < 0 by the
    reflection ψ(x) = ψ(1 - x) - π/tan(πx), with πx reduced to (-π/2, π/2] exactly first."""
    if math.isnan(x) or x == math.inf:
        return x
    if x > 0.0:
        return _digamma_positive(x)
    if x == 0.0:
        return math.copysign(math.inf, -x)
    if x == math.floor(x):
        return math.nan
    r = x - math.floor(x + 0.5)   # tan has period π: exact reduction of x to (-1/2, 1/2]
    return _digamma_positive(1.0 - x) - math.pi / math.tan(math.pi * r)


@nb.njit(error_model="numpy", cache=True)
def _hurwitz_zeta(s, q):
    """ζ(s, q) = Σ_k (q + k)^-s for s > 1 and q not a negative integer or zero (q < 0 needs an integer s):
    the first terms summed up to q + N >= 10 + s, then Euler-Maclaurin summation of the rest,
    (q+N)^(1-s)/(s-1) + (q+N)^-s/2 + Σ_j B_2j/(2j)! s(s+1)...(s+2j-2) (q+N)^(-s-2j+1) (Abramowitz & Stegun
    23.1.30; the method of Cephes zeta.c)."""
    total = 0.0
    a = q
    while a < 10.0 + s:
        total += a ** -s
        a += 1.0
    b = a ** -s
    total += a * b / (s - 1.0) + 0.5 * b
    rising = s                 # s (s+1) ... (s+2j-2)
    power = b / a              # a^(-s-2j+1)
    for j in range(len(_BERNOULLI_OVER_FACTORIAL)):
        term = _BERNOULLI_OVER_FACTORIAL[j] * rising * power
        total += term
        if abs(term) <= 1e-17 * abs(total):
            break
        rising *= (s + 2 * j + 1) * (s + 2 * j + 2)
        power /= a * a
    return total


@nb.njit(error_model="numpy", cache=True)
def _polygamma(n, x):
    """ψ^(n)(x), the n-th derivative of digamma, for an integer n >= 0 (scipy.special.polygamma):
    ψ^(n)(x) = (-1)^(n+1) n! ζ(n+1, x) for n >= 1 (Abramowitz & Stegun 6.4.10), ψ itself for n = 0."""
    if n == 0:
        return _digamma(x)
    if math.isnan(x) or x == math.inf:
        return x if math.isnan(x) else 0.0
    sign = 1.0 if n % 2 == 1 else -1.0
    if x <= 0.0 and x == math.floor(x):   # a pole: ζ(n+1, x) = +inf, as SciPy
        return sign * math.inf
    factorial = 1.0
    for k in range(2, n + 1):
        factorial *= k
    return sign * factorial * _hurwitz_zeta(n + 1.0, x)


@nb.njit(error_model="numpy", cache=True)
def _loggamma(x):
    """ln Γ(x) for x > 0 (ln |Γ(x)| elsewhere), as scipy.special.gammaln: math.lgamma, except within 1/4
    of its zeros 1 and 2, where the Taylor series of ln Γ(2 + t) (Abramowitz & Stegun 6.1.33; for x near 1,
    ln Γ(1 + t) = ln Γ(2 + t) - log1p(t)) keeps the relative error at rounding level."""
    if abs(x - 2.0) < 0.25:
        return _series(_LGAMMA_TWO_SERIES, x - 2.0)
    if abs(x - 1.0) < 0.25:
        t = x - 1.0
        return _series(_LGAMMA_TWO_SERIES, t) - math.log1p(t)
    return math.lgamma(x)


#: 1/e as a double and the rest: x + 1/e to within rounding of the result near the branch point
_INV_E_HI = 0.36787944117144233
_INV_E_LO = -1.2428753672788363e-17
#: W0(-1/e + p^2/(2e)) = Σ_k μ_k p^k near the branch point (Corless et al. 1996, eq. 4.22)
_LAMBERTW_BRANCH_SERIES = (1.0, -1.0 / 3, 11.0 / 72, -43.0 / 540, 769.0 / 17280, -221.0 / 8505,
                           680863.0 / 43545600, -1963.0 / 204120, 226287557.0 / 37623398400)


@nb.njit(error_model="numpy", cache=True)
def _lambertw(x):
    """W0(x), the principal branch of Lambert's W (w e^w = x, w >= -1) for real x >= -1/e, as
    scipy.special.lambertw(x).real; nan below -1/e. Corless, Gonnet, Hare, Jeffrey and Knuth, "On the
    Lambert W function" (1996): a first guess from the series at the branch point (eq. 4.22) for x near
    -1/e, log1p(x)-based for moderate x (Winitzki 2003), or the asymptotic ln x - ln ln x + ln ln x / ln x
    (eq. 4.19) for x > e; then Halley's iteration (eq. 5.9) on w e^w - x, or for x > e on
    w + ln w - ln x, whose terms do not overflow (Fritsch, Shafer and Crowley 1973)."""
    if math.isnan(x) or x == math.inf:
        return x
    d = (x + _INV_E_HI) + _INV_E_LO   # x + 1/e
    if d < 0.0:
        return math.nan
    if x > math.e:
        log_x = math.log(x)
        log_log_x = math.log(log_x)
        w = log_x - log_log_x + log_log_x / log_x
        for _ in range(20):
            g = w + math.log(w) - log_x
            dg = 1.0 + 1.0 / w
            step = g / dg / (1.0 + g / (2.0 * w * w * dg * dg))
            w -= step
            if abs(step) <= 1e-15 * w:
                break
        return w
    p = math.sqrt(2.0 * math.e * d)
    if p < 0.02:   # the series alone: the next term is below 1e-17
        return -1.0 + _series(_LAMBERTW_BRANCH_SERIES, p)
    if d < 0.2:
        w = -1.0 + _series(_LAMBERTW_BRANCH_SERIES, p)
    else:
        a = math.log1p(x)
        w = a * (1.0 - math.log1p(a) / (2.0 + a))
    for _ in range(20):
        ew = math.exp(w)
        f = w * ew - x
        step = f / (ew * (w + 1.0) - (w + 2.0) * f / (2.0 * w + 2.0))
        w -= step
        if abs(step) <= 1e-15 * abs(w):
            break
    return w


#: Giles' erfinv polynomial for w < 6.25, in w - 3.125; highest degree first
_GILES_CENTRAL = (
    -3.6444120640178196996e-21, -1.685059138182016589e-19, 1.2858480715256400167e-18, 1.115787767802518096e-17,
    -1.333171662854620906e-16, 2.0972767875968561637e-17, 6.6376381343583238325e-15, -4.0545662729752068639e-14,
    -8.1519341976054721522e-14, 2.6335093153082322977e-12, -1.2975133253453532498e-11, -5.4154120542946279317e-11,
    1.051212273321532285e-09, -4.1126339803469836976e-09, -2.9070369957882005086e-08, 4.2347877827932403518e-07,
    -1.3654692000834678645e-06, -1.3882523362786468719e-05, 0.0001867342080340571352, -0.00074070253416626697512,
    -0.0060336708714301490533, 0.24015818242558961693, 1.6536545626831027356,
)

#: Giles' erfinv polynomial for 6.25 <= w < 16, in sqrt(w) - 3.25; highest degree first
_GILES_MIDDLE = (
    2.2137376921775787049e-09, 9.0756561938885390979e-08, -2.7517406297064545428e-07, 1.8239629214389227755e-08,
    1.5027403968909827627e-06, -4.013867526981545969e-06, 2.9234449089955446044e-06, 1.2475304481671778723e-05,
    -4.7318229009055733981e-05, 6.8284851459573175448e-05, 2.4031110387097893999e-05, -0.0003550375203628474796,
    0.00095328937973738049703, -0.0016882755560235047313, 0.0024914420961078508066, -0.0037512085075692412107,
    0.005370914553590063617, 1.0052589676941592334, 3.0838856104922207635,
)

#: Giles' erfinv polynomial for 16 <= w < 36, in sqrt(w) - 5; highest degree first
_GILES_TAIL = (
    -2.7109920616438573243e-11, -2.5556418169965252055e-10, 1.5076572693500548083e-09, -3.7894654401267369937e-09,
    7.6157012080783393804e-09, -1.4960026627149240478e-08, 2.9147953450901080826e-08, -6.7711997758452339498e-08,
    2.2900482228026654717e-07, -9.9298272942317002539e-07, 4.5260625972231537039e-06, -1.9681778105531670567e-05,
    7.5995277030017761139e-05, -0.00021503011930044477347, -0.00013871931833623122026, 1.0103004648645343977,
    4.8499064014085844221,
)


@nb.njit(error_model="numpy", cache=True)
def _horner(coefficients, w):
    """The polynomial with `coefficients` (highest degree first) at w."""
    p = coefficients[0]
    for k in range(1, len(coefficients)):
        p = coefficients[k] + p * w
    return p


@nb.njit(error_model="numpy", cache=True)
def _erfinv_guess(x, w):
    """Giles' approximation of erfinv(x) given w = -ln((1 - x)(1 + x)): M. Giles, "Approximating the erfinv
    function", GPU Computing Gems Jade Edition (2011), double-precision polynomials; for w >= 36 (beyond
    their range), t from the asymptotic erfc(t) ~ exp(-t^2)/(t sqrt(π)) by two fixed-point steps."""
    if w < 6.25:
        return _horner(_GILES_CENTRAL, w - 3.125) * x
    if w < 16.0:
        return _horner(_GILES_MIDDLE, math.sqrt(w) - 3.25) * x
    if w < 36.0:
        return _horner(_GILES_TAIL, math.sqrt(w) - 5.0) * x
    # 1 - |x| = q below 1e-16: erfc(t) = q ~ exp(-t^2)/(t sqrt(π)), with -ln q ~ w - ln 2
    log_q = math.log(2.0) - w
    t = math.sqrt(-log_q)
    for _ in range(2):
        t = math.sqrt(-log_q - math.log(t * math.sqrt(math.pi)))
    return math.copysign(t, x)


@nb.njit(error_model="numpy", cache=True)
def _inverse_erf_halley(t, target, tail):
    """Halley's iteration from `t` for erf(t) = target (tail false; |target| <= 1/2) or erfc(t) = target
    (tail true; 0 < target <= 1/2, t > 0): both residuals are computed without cancellation, so the
    result is correct to rounding. f'' / f' = -2t for both, so a step is u / (1 + t u), u = f/f'."""
    for _ in range(8):
        if tail:
            f = -(math.erfc(t) - target)
        else:
            f = math.erf(t) - target
        u = f / (2.0 / math.sqrt(math.pi) * math.exp(-t * t))
        step = u / (1.0 + t * u)
        t -= step
        if abs(step) <= 1e-16 * abs(t):
            break
    return t


@nb.njit(error_model="numpy", cache=True)
def _erfinv(x):
    """erfinv(x) for -1 <= x <= 1 (scipy.special.erfinv; ±inf at ±1, nan outside): Giles' approximation
    (_erfinv_guess) refined by Halley's iteration on math.erf for |x| <= 1/2, and on math.erfc(|t|) = 1 - |x|
    (exact) beyond, where erf(t) - x would lose the digits of the tail."""
    a = abs(x)
    if not a <= 1.0:
        return math.nan
    if a == 1.0:
        return math.copysign(math.inf, x)
    if x == 0.0:
        return x
    t = _erfinv_guess(a, -math.log((1.0 - a) * (1.0 + a)))
    if a <= 0.5:
        t = _inverse_erf_halley(t, a, False)
    else:
        t = _inverse_erf_halley(t, 1.0 - a, True)
    return math.copysign(t, x)


@nb.njit(error_model="numpy", cache=True)
def _erfcinv(y):
    """erfcinv(y) for 0 <= y <= 2 (scipy.special.erfcinv; inf at 0, -inf at 2, nan outside): erfinv(1 - y) for
    1/2 <= y <= 3/2, where 1 - y is exact; else Halley's iteration on erfc(t) = y (y < 1/2) or on
    erfc(-t) = 2 - y (y > 3/2, 2 - y exact), from Giles' approximation (see _erfinv)."""
    if not (y >= 0.0 and y <= 2.0):
        return math.nan
    if y == 0.0:
        return math.inf
    if y == 2.0:
        return -math.inf
    if 0.5 <= y <= 1.5:
        return _erfinv(1.0 - y)
    q = y if y < 0.5 else 2.0 - y
    t = _erfinv_guess(1.0, -math.log(q * (2.0 - q)))
    t = _inverse_erf_halley(t, q, True)
    return t if y < 0.5 else -t
