"""A corpus of real-world SymPy expressions written as people write them, each with its source: optimisation
benchmarks, log-densities, losses and activations, physics, chemistry, biology, finance, and Lagrangians
built with sympy.physics.mechanics. tests/test_corpus.py compiles each group as one list of expressions and
checks every expression's value and gradient against sympy.lambdify and sympy.diff.

Each Case gives the expression, where it comes from, and the domain its points are drawn from: a (lo, hi)
interval per symbol (uniform, or log-uniform when the interval is followed by "log"), and optionally `where`,
a condition on the drawn points (a function of a dict of arrays keyed by symbol name).

GROUPS (the default run) are compiled one module each, and their cases share symbols: a name is one symbol
within a group, and the cases using it have domains such that every expression of the group stays finite at
every case's points (compiling costs about 0.1 s an input, so sharing keeps the default run short). The cases
of SLOW_GROUPS (pytest.mark.slow) are renamed apart by tests/test_corpus.py and need not agree."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import sympy as sp
import sympy.physics.mechanics as me
from sympy.codegen.cfunctions import Cbrt, Sqrt, exp2, expm1, fma, hypot, log1p, log2, log10


@dataclass(frozen=True)
class Case:
    name: str
    source: str
    expr: sp.Expr
    domain: dict = field(repr=False)                  # {Symbol: (lo, hi)} or {Symbol: (lo, hi, "log")}
    where: Callable | None = field(default=None, repr=False)
    rtol: float = 1e-9
    atol: float = 1e-12        # times max |reference| over the points (per value and per derivative)
    xfail: str | None = None   # a known gradc bug: the reason (the case is marked xfail(strict=True))


def pos(*names: str) -> tuple[sp.Symbol, ...]:
    return sp.symbols(names, positive=True)


def real(*names: str) -> tuple[sp.Symbol, ...]:
    return sp.symbols(names, real=True)


pi, E = sp.pi, sp.E
x, y = real("x", "y")
XY2 = {x: (-5, 5), y: (-5, 5)}


# ---------------------------------------------------------------------------------------------------------------
# Global-optimisation benchmark functions (2-D). SciPy: benchmarks/benchmarks/go_benchmark_functions/go_funcs_*.py
# (class named in each source), from Jamil & Yang (2013), "A literature survey of benchmark functions for global
# optimization problems"; SFU VLSE: Surjanovic & Bingham, Virtual Library of Simulation Experiments.

def _levy(x1, x2):
    w1, w2 = 1 + (x1 - 1) / 4, 1 + (x2 - 1) / 4
    return sp.sin(pi * w1) ** 2 + (w1 - 1) ** 2 * (1 + 10 * sp.sin(pi * w2) ** 2) + (w2 - 1) ** 2


def _branin(x1, x2):
    a, b, c, r, s, t = 1, sp.Float(5.1) / (4 * pi ** 2), 5 / pi, 6, 10, 1 / (8 * pi)
    return a * (x2 - b * x1 ** 2 + c * x1 - r) ** 2 + s * (1 - t) * sp.cos(x1) + s


OPTIMIZATION = [
    Case("rosenbrock", "SciPy scipy.optimize.rosen / go_benchmark Rosenbrock (Rosenbrock 1960)",
         (1 - x) ** 2 + 100 * (y - x ** 2) ** 2, {x: (-2, 2), y: (-1, 3)}),
    Case("rastrigin", "SciPy go_benchmark Rastrigin (n = 2)",
         10 * 2 + (x ** 2 - 10 * sp.cos(2 * pi * x)) + (y ** 2 - 10 * sp.cos(2 * pi * y)), XY2),
    Case("griewank", "SciPy go_benchmark Griewank (n = 2)",
         (x ** 2 + y ** 2) / 4000 - sp.cos(x) * sp.cos(y / sp.sqrt(2)) + 1, {x: (-50, 50), y: (-50, 50)}),
    Case("styblinski_tang", "SciPy go_benchmark StyblinskiTang (n = 2)",
         (x ** 4 - 16 * x ** 2 + 5 * x + y ** 4 - 16 * y ** 2 + 5 * y) / 2, XY2),
    Case("himmelblau", "SciPy go_benchmark HimmelBlau (Himmelblau 1972)",
         (x ** 2 + y - 11) ** 2 + (x + y ** 2 - 7) ** 2, XY2),
    Case("beale", "SciPy go_benchmark Beale",
         (1.5 - x + x * y) ** 2 + (2.25 - x + x * y ** 2) ** 2 + (2.625 - x + x * y ** 3) ** 2,
         {x: (-4.5, 4.5), y: (-4.5, 4.5)}),
    Case("booth", "SFU VLSE Booth function", (x + 2 * y - 7) ** 2 + (2 * x + y - 5) ** 2, {x: (-10, 10), y: (-10, 10)}),
    Case("three_hump_camel", "SciPy go_benchmark ThreeHumpCamel",
         2 * x ** 2 - 1.05 * x ** 4 + x ** 6 / 6 + x * y + y ** 2, XY2),
    Case("six_hump_camel", "SciPy go_benchmark SixHumpCamel",
         (4 - 2.1 * x ** 2 + x ** 4 / 3) * x ** 2 + x * y + (-4 + 4 * y ** 2) * y ** 2, {x: (-3, 3), y: (-2, 2)}),
    Case("easom", "SFU VLSE Easom function (Easom 1990); SciPy's Easom class is a different function",
         -sp.cos(x) * sp.cos(y) * sp.exp(-((x - pi) ** 2 + (y - pi) ** 2)), {x: (0, 6), y: (0, 6)}),
    Case("levy", "SciPy go_benchmark Levy03 (n = 2)", _levy(x, y),
         {x: (-10, 10), y: (-10, 10)}),
    Case("michalewicz_m10", "SciPy go_benchmark Michalewicz (m = 10, n = 2)",
         -(sp.sin(x) * sp.sin(1 * x ** 2 / pi) ** 20 + sp.sin(y) * sp.sin(2 * y ** 2 / pi) ** 20),
         {x: (0, pi), y: (0, pi)}),
    Case("goldstein_price", "SciPy go_benchmark GoldsteinPrice (Goldstein & Price 1971)",
         (1 + (x + y + 1) ** 2 * (19 - 14 * x + 3 * x ** 2 - 14 * y + 6 * x * y + 3 * y ** 2))
         * (30 + (2 * x - 3 * y) ** 2 * (18 - 32 * x + 12 * x ** 2 + 48 * y - 36 * x * y + 27 * y ** 2)),
         {x: (-2, 2), y: (-2, 2)}),
    Case("branin", "SciPy go_benchmark Branin01 (Branin 1972)", _branin(x, y), {x: (-5, 10), y: (0, 15)}),
    Case("ackley", "SciPy go_benchmark Ackley01 (n = 2; Jamil & Yang 2013)",
         -20 * sp.exp(-0.2 * sp.sqrt((x ** 2 + y ** 2) / 2))
         - sp.exp((sp.cos(2 * pi * x) + sp.cos(2 * pi * y)) / 2) + 20 + E, XY2),
]

OPTIMIZATION_MORE = [
    Case("eggholder", "SciPy go_benchmark EggHolder (n = 2)",
         -(y + 47) * sp.sin(sp.sqrt(sp.Abs(y + x / 2 + 47))) - x * sp.sin(sp.sqrt(sp.Abs(x - (y + 47)))),
         {x: (-512, 512), y: (-512, 512)}),
    Case("schwefel26", "SciPy go_benchmark Schwefel26 (n = 2)",
         418.982887 * 2 - x * sp.sin(sp.sqrt(sp.Abs(x))) - y * sp.sin(sp.sqrt(sp.Abs(y))),
         {x: (-500, 500), y: (-500, 500)}),
    Case("holder_table", "SciPy go_benchmark HolderTable",
         -sp.Abs(sp.sin(x) * sp.cos(y) * sp.exp(sp.Abs(1 - sp.sqrt(x ** 2 + y ** 2) / pi))),
         {x: (-10, 10), y: (-10, 10)}),
    Case("cross_in_tray", "SciPy go_benchmark CrossInTray",
         -0.0001 * (sp.Abs(sp.sin(x) * sp.sin(y) * sp.exp(sp.Abs(100 - sp.sqrt(x ** 2 + y ** 2) / pi))) + 1) ** 0.1,
         {x: (-10, 10), y: (-10, 10)}),
    Case("drop_wave", "SciPy go_benchmark DropWave",
         -(1 + sp.cos(12 * sp.sqrt(x ** 2 + y ** 2))) / (0.5 * (x ** 2 + y ** 2) + 2), XY2),
    Case("bukin6", "SciPy go_benchmark Bukin06",
         100 * sp.sqrt(sp.Abs(y - 0.01 * x ** 2)) + 0.01 * sp.Abs(x + 10), {x: (-15, -5), y: (-3, 3)}),
    Case("mccormick", "SciPy go_benchmark McCormick",
         sp.sin(x + y) + (x - y) ** 2 - 1.5 * x + 2.5 * y + 1, {x: (-1.5, 4), y: (-3, 4)}),
]


# ---------------------------------------------------------------------------------------------------------------
# Statistics, machine learning, numerics and finance (one group: they share their symbols). Log-densities and
# log-mass functions as in scipy.stats' documentation and Gelman et al., Bayesian Data Analysis, 3rd ed. (BDA3),
# Appendix A. x is a real datum, y a positive one.

x, mu, mu_1, mu_2, z, theta, t = real("x", "mu", "mu_1", "mu_2", "z", "theta", "t")
sigma, nu, kappa, w, k, n, p, lam, a, b, y_pos, tau, f, P0, rate, S, K, T = pos(
    "sigma", "nu", "kappa", "w", "k", "n", "p", "lambda", "a", "b", "y", "tau", "f", "P", "r", "S", "K", "T")


def normal_logpdf(v, m, s):
    return -sp.log(s) - sp.log(2 * pi) / 2 - (v - m) ** 2 / (2 * s ** 2)


_gumbel_z = (x - mu) / sigma
_huber_r = x - mu
STATISTICS = [
    Case("student_t_logpdf", "BDA3 Appendix A, Student-t(nu, mu, sigma): log of its density, with loggamma",
         sp.loggamma((nu + 1) / 2) - sp.loggamma(nu / 2) - sp.log(nu * pi) / 2 - sp.log(sigma)
         - (nu + 1) / 2 * sp.log(1 + ((x - mu) / sigma) ** 2 / nu),
         {x: (-10, 10), mu: (-2, 2), sigma: (0.2, 3), nu: (0.5, 50)}),
    Case("nbinom_logpmf", "scipy.stats.nbinom docs: f(k) = binom(k+n-1, n-1) p**n (1-p)**k, log of it",
         sp.log(sp.binomial(k + n - 1, n - 1)) + n * sp.log(p) + k * sp.log(1 - p),
         {k: (0, 30), n: (1, 20), p: (0.02, 0.98)}),
    Case("poisson_pmf", "scipy.stats.poisson: pmf lambda**k exp(-lambda)/k!, with factorial",
         lam ** k * sp.exp(-lam) / sp.factorial(k), {k: (0, 30), lam: (0.1, 20)}),
    Case("gamma_logpdf", "BDA3 Appendix A, Gamma(alpha, beta) with rate beta (here a, b): log density",
         a * sp.log(b) - sp.loggamma(a) + (a - 1) * sp.log(y_pos) - b * y_pos,
         {y_pos: (0.01, 20), a: (0.2, 20), b: (0.1, 5)}),
    Case("beta_logpdf", "scipy.stats.beta: x**(a-1) (1-x)**(b-1) / B(a, b), log of it, with beta(a, b)",
         (a - 1) * sp.log(p) + (b - 1) * sp.log(1 - p) - sp.log(sp.beta(a, b)),
         {p: (0.01, 0.99), a: (0.2, 20), b: (0.2, 20)}),
    Case("weibull_logpdf", "Weibull density (k/lambda) (x/lambda)**(k-1) exp(-(x/lambda)**k) (Wikipedia 'Weibull "
         "distribution'; scipy.stats.weibull_min), log of it",
         sp.log(k / lam) + (k - 1) * sp.log(y_pos / lam) - (y_pos / lam) ** k,
         {y_pos: (0.01, 10), k: (0.3, 5), lam: (0.2, 5)}),
    Case("gumbel_logpdf", "scipy.stats.gumbel_r (loc mu, scale sigma): exp(-(z + exp(-z)))/sigma, z = (x - mu)/sigma; "
         "log of it", -sp.log(sigma) - _gumbel_z - sp.exp(-_gumbel_z), {x: (-5, 10), mu: (-2, 2), sigma: (0.3, 4)}),
    Case("von_mises_logpdf_unnormalised",
         "scipy.stats.vonmises: exp(kappa cos(x - mu))/(2 pi I0(kappa)); its log without the log I0(kappa) term "
         "(besseli is not a gradc function)",
         kappa * sp.cos(x - mu) - sp.log(2 * pi), {x: (-pi, pi), mu: (-pi, pi), kappa: (0.1, 20)}),
    Case("gmm2_logpdf", "two-component Gaussian mixture log-density, common scale, log-sum-exp written as "
         "log(exp(a) + exp(b)) (Bishop, PRML section 9.2)",
         sp.log(sp.exp(sp.log(w) + normal_logpdf(x, mu_1, sigma))
                + sp.exp(sp.log(1 - w) + normal_logpdf(x, mu_2, sigma))),
         {x: (-5, 5), mu_1: (-3, 0), mu_2: (0, 3), sigma: (0.3, 2), w: (0.05, 0.95)}),
    Case("gamma_jeffreys_prior", "Jeffreys prior of Gamma(alpha, beta): sqrt(det Fisher information) = "
         "sqrt(alpha trigamma(alpha) - 1)/beta (Yang & Berger, 'A catalog of noninformative priors'), polygamma",
         sp.sqrt(a * sp.polygamma(1, a) - 1) / b, {a: (0.1, 20), b: (0.1, 10)}),
    Case("normal_quantile", "scipy.stats.norm.ppf: mu + sigma sqrt(2) erfinv(2p - 1)",
         mu + sigma * sp.sqrt(2) * sp.erfinv(2 * p - 1), {p: (0.001, 0.999), mu: (-2, 2), sigma: (0.2, 3)}),
    Case("huber", "Huber loss (Huber 1964, threshold k) of the residual x - mu, as a Piecewise",
         sp.Piecewise((_huber_r ** 2 / 2, sp.Abs(_huber_r) <= k), (k * sp.Abs(_huber_r) - k ** 2 / 2, True)),
         {x: (-3, 3), mu: (-2, 2), k: (0.2, 2)}),
]

x0, alpha, r_corr, rho0 = real("x_0", "alpha", "r", "rho_0")
gam, a_p, b_p, a_q, b_q, c_tri = pos("gamma", "alpha_p", "beta_p", "alpha_q", "beta_q", "c")
STATISTICS_MORE = [
    Case("normal_logpdf", "scipy.stats.norm: log of exp(-x**2/2)/sqrt(2 pi), loc mu, scale sigma",
         normal_logpdf(x, mu, sigma), {x: (-5, 5), mu: (-2, 2), sigma: (0.2, 3)}),
    Case("student_t_pdf", "Student-t density with gamma, as on Wikipedia 'Student's t-distribution'",
         sp.gamma((nu + 1) / 2) / (sp.sqrt(nu * pi) * sp.gamma(nu / 2)) * (1 + x ** 2 / nu) ** (-(nu + 1) / 2),
         {x: (-6, 6), nu: (0.5, 60)}),
    Case("poisson_logpmf", "scipy.stats.poisson: k log(mu) - mu - gammaln(k + 1)",
         k * sp.log(lam) - lam - sp.loggamma(k + 1), {k: (0, 40), lam: (0.1, 30)}),
    Case("laplace_logpdf", "scipy.stats.laplace: exp(-|x - mu|/b)/(2b), log of it",
         -sp.log(2 * b) - sp.Abs(x - mu) / b, {x: (-5, 5), mu: (-2, 2), b: (0.2, 3)}),
    Case("cauchy_logpdf", "scipy.stats.cauchy: 1/(pi gamma (1 + ((x - x0)/gamma)**2)), log of it",
         -sp.log(pi * gam * (1 + ((x - x0) / gam) ** 2)), {x: (-20, 20), x0: (-2, 2), gam: (0.1, 5)}),
    Case("lognormal_logpdf", "scipy.stats.lognorm (s = sigma, scale = exp(mu)): log density",
         -sp.log(y_pos * sigma * sp.sqrt(2 * pi)) - (sp.log(y_pos) - mu) ** 2 / (2 * sigma ** 2),
         {y_pos: (0.01, 50), mu: (-1, 2), sigma: (0.2, 2)}),
    Case("inverse_gaussian_logpdf", "Wald / inverse Gaussian IG(mu, lambda), Wikipedia: log of its density",
         sp.log(sp.sqrt(lam / (2 * pi * y_pos ** 3))) - lam * (y_pos - a) ** 2 / (2 * a ** 2 * y_pos),
         {y_pos: (0.05, 10), a: (0.2, 5), lam: (0.2, 10)}),
    Case("skew_normal_logpdf", "skew-normal (Azzalini 1985): log(2/sigma phi(z) Phi(alpha z)), Phi via erf",
         sp.log(2 / sigma) + normal_logpdf((x - mu) / sigma, 0, 1)
         + sp.log((1 + sp.erf(alpha * (x - mu) / sigma / sp.sqrt(2))) / 2),
         {x: (-4, 4), mu: (-1, 1), sigma: (0.5, 2), alpha: (-2, 2)},
         where=lambda v: v["alpha"] * (v["x"] - v["mu"]) / v["sigma"] > -5),
    Case("beta_binomial_logpmf", "scipy.stats.betabinom: binom(n, k) B(k + a, n - k + b)/B(a, b), log of it",
         sp.log(sp.binomial(n, k)) + sp.log(sp.beta(k + a, n - k + b)) - sp.log(sp.beta(a, b)),
         {n: (1, 40), k: (0.1, 40), a: (0.3, 10), b: (0.3, 10)}, where=lambda v: v["k"] < v["n"]),
    Case("gamma_kl", "KL(Gamma(alpha_p, beta_p) || Gamma(alpha_q, beta_q)), rate form, Wikipedia 'Gamma "
         "distribution' (Kullback-Leibler divergence); digamma and loggamma",
         (a_p - a_q) * sp.digamma(a_p) - sp.loggamma(a_p) + sp.loggamma(a_q)
         + a_q * (sp.log(b_p) - sp.log(b_q)) + a_p * (b_q - b_p) / b_p,
         {a_p: (0.2, 20), b_p: (0.1, 10), a_q: (0.2, 20), b_q: (0.1, 10)}),
    Case("gaussian_q_function_tail", "Gaussian tail probability Q(x) = erfc(x/sqrt 2)/2 far into the tail (Proakis, "
         "Digital Communications)", sp.erfc(x / sp.sqrt(2)) / 2, {x: (0, 37)}),
    Case("probit_log_likelihood", "probit log-likelihood log Phi(z) = log(erfc(-z/sqrt 2)/2), down to z = -37 "
         "(Wooldridge, Econometric Analysis of Cross Section and Panel Data, ch. 15)",
         sp.log(sp.erfc(-x / sp.sqrt(2)) / 2), {x: (-37, 8)}),
    Case("triangular_pdf", "triangular density on [a, b] with mode c, a Piecewise with And conditions (Wikipedia "
         "'Triangular distribution'; scipy.stats.triang)",
         sp.Piecewise((2 * (x - a) / ((b - a) * (c_tri - a)), (a <= x) & (x < c_tri)), (2 / (b - a), sp.Eq(x, c_tri)),
                      (2 * (b - x) / ((b - a) * (b - c_tri)), (c_tri < x) & (x <= b)), (0, True)),
         {x: (-1, 11), a: (0, 3), b: (7, 10), c_tri: (3, 7)}),
    Case("fisher_z", "Fisher (1915) z-transform test statistic (atanh(r) - atanh(rho0)) sqrt(n - 3)",
         (sp.atanh(r_corr) - sp.atanh(rho0)) * sp.sqrt(n - 3), {r_corr: (-0.95, 0.95), rho0: (-0.9, 0.9), n: (4, 200)}),
]


# ---------------------------------------------------------------------------------------------------------------
# Machine learning, numerics, signal processing and finance (in the statistics group: the same symbols).

def sigmoid(arg):
    return 1 / (1 + sp.exp(-arg))


def _phi(arg):
    return (1 + sp.erf(arg / sp.sqrt(2))) / 2


_d1 = (sp.log(S / K) + (rate + sigma ** 2 / 2) * T) / (sigma * sp.sqrt(T))
_d2 = _d1 - sigma * sp.sqrt(T)
_t_as = 1 / (1 + 0.3275911 * x)
ML_NUMERICS = [
    Case("bce_logistic", "logistic-regression negative log-likelihood -(y log s(z) + (1-y) log(1 - s(z))), "
         "s(z) = 1/(1 + exp(-z)) (Bishop, PRML eq. 4.90)",
         # z up to 15 only: there the oracle's 1 - 1/(1 + exp(-z)) already loses digits (8e-11 in d/dz at z = 14.4,
         # against mpmath), where gradc, rewriting log(s(z)) and log(1 - s(z)) as -softplus(-z) and -softplus(z),
         # is within 1e-16
         -(y_pos * sp.log(sigmoid(z)) + (1 - y_pos) * sp.log(1 - sigmoid(z))), {y_pos: (0, 1), z: (-15, 15)}),
    Case("softplus", "softplus log(1 + exp(x)) (Dugas et al. 2001)", sp.log(1 + sp.exp(z)), {z: (-30, 30)}),
    Case("pinball", "pinball / quantile loss Max(tau (y - z), (tau - 1)(y - z)) (Koenker & Bassett 1978)",
         sp.Max(tau * (y_pos - z), (tau - 1) * (y_pos - z)), {y_pos: (0.01, 5), z: (0, 5), tau: (0.05, 0.95)}),
    Case("soft_threshold", "soft-thresholding sign(x) Max(|x| - lambda, 0) (Donoho & Johnstone 1994; lasso prox)",
         sp.sign(z) * sp.Max(sp.Abs(z) - lam, 0), {z: (-3, 3), lam: (0.1, 1)}),
    Case("gelu", "GELU x/2 (1 + erf(x/sqrt 2)) (Hendrycks & Gimpel 2016)", z / 2 * (1 + sp.erf(z / sp.sqrt(2))),
         {z: (-6, 6)}),
    Case("log1mexp", "log(1 - exp(-x)) as Maechler (2012, 'Accurately computing log(1 - exp(-|a|))') computes it: "
         "Piecewise of cfunctions expm1 and log1p",
         sp.Piecewise((sp.log(-expm1(-x)), x <= sp.log(2)), (log1p(-sp.exp(-x)), True)), {x: (0.001, 30)}),
    Case("erf_as_7_1_26", "erf approximation Abramowitz & Stegun 7.1.26 (x >= 0), Horner's rule written with "
         "cfunctions.fma",
         1 - fma(fma(fma(fma(1.061405429, _t_as, -1.453152027), _t_as, 1.421413741), _t_as, -0.284496736), _t_as,
                 0.254829592) * _t_as * sp.exp(-x ** 2), {x: (0.001, 3)}),
    Case("binary_entropy_bits", "binary entropy in bits -p log2 p - (1-p) log2(1-p) (Shannon 1948), cfunctions.log2",
         -p * log2(p) - (1 - p) * log2(1 - p), {p: (0.001, 0.999)}),
    Case("phase_wrap", "phase wrapped to [-pi, pi): Mod(theta + pi, 2 pi) - pi", sp.Mod(theta + pi, 2 * pi) - pi,
         {theta: (-20, 20)}),
    Case("sawtooth", "sawtooth wave 2 frac(f t) - 1", 2 * sp.frac(f * t) - 1, {f: (0.5, 5), t: (0, 4)}),
    Case("discrete_compounding", "compound interest P (1 + r/n)**floor(n t), interest credited per whole period",
         P0 * (1 + rate / n) ** sp.floor(n * t), {P0: (100, 1e4), rate: (0.001, 0.2), n: (1, 12), t: (0.1, 30)}),
    Case("black_scholes_call", "Black-Scholes call price S N(d1) - K exp(-rT) N(d2) (Hull, Options, Futures and "
         "Other Derivatives, chapter 'The Black-Scholes-Merton model'), N via erf",
         S * _phi(_d1) - K * sp.exp(-rate * T) * _phi(_d2),
         {S: (50, 150), K: (50, 150), T: (0.1, 2), rate: (0.001, 0.1), sigma: (0.1, 0.5)},
         where=lambda v: abs(v["S"] / v["K"] - 1) < 0.25),
]

u, v = real("u", "v")
eps_ppo, Delta = pos("epsilon", "Delta")
ML_NUMERICS_MORE = [
    Case("ber_q_inverse", "required SNR for a bit-error rate: Q^-1(BER) = sqrt(2) erfcinv(2 BER) (Proakis, Digital "
         "Communications)", sp.sqrt(2) * sp.erfcinv(2 * p), {p: (1e-12, 0.4, "log")}),
    Case("logsumexp3", "log-sum-exp of three scores log(exp(z) + exp(u) + exp(v))",
         sp.log(sp.exp(z) + sp.exp(u) + sp.exp(v)), {z: (-20, 20), u: (-20, 20), v: (-20, 20)}),
    Case("midtread_quantizer", "mid-tread uniform quantizer Delta ceiling(x/Delta - 1/2) (Gray & Neuhoff 1998)",
         Delta * sp.ceiling(z / Delta - sp.Rational(1, 2)), {z: (-5, 5), Delta: (0.1, 1)}),
    Case("asinh_transform", "inverse hyperbolic sine transform asinh(theta x)/theta (Burbidge, Magee & Robb 1988)",
         sp.asinh(theta * x) / theta, {x: (-100, 100), theta: (0.01, 5)}),
    Case("gelu_tanh", "GELU tanh approximation (Hendrycks & Gimpel 2016, section 2)",
         0.5 * z * (1 + sp.tanh(sp.sqrt(2 / pi) * (z + 0.044715 * z ** 3))), {z: (-6, 6)}),
    Case("swish", "Swish / SiLU x sigmoid(beta x) (Ramachandran et al. 2017)", z / (1 + sp.exp(-f * z)),
         {z: (-10, 10), f: (0.1, 3)}),
    Case("mish", "Mish x tanh(softplus(x)) (Misra 2019)", z * sp.tanh(sp.log(1 + sp.exp(z))), {z: (-10, 10)}),
    Case("elu", "ELU (Clevert et al. 2015) as a Piecewise", sp.Piecewise((z, z > 0), (a * (sp.exp(z) - 1), True)),
         {z: (-5, 5), a: (0.1, 2)}),
    Case("ppo_clip", "PPO clipped surrogate Min(r A, clip(r, 1-eps, 1+eps) A) (Schulman et al. 2017, eq. 7)",
         sp.Min(y_pos * u, sp.Min(sp.Max(y_pos, 1 - eps_ppo), 1 + eps_ppo) * u),
         {y_pos: (0.5, 1.5), u: (-2, 2), eps_ppo: (0.1, 0.3)}),
]


# ---------------------------------------------------------------------------------------------------------------
# Physics, chemistry and biology. Physical constants are written as numbers, as people write them.

(r, eps_lj, sig, De, a_ph, r_e, T_ph, V_m, b_ph, S_ph, V_max, K_m, K_ph, N0, A_ph, E_a, lam_ph, m, v_ph, c_ph,
 alpha_ph, beta_ph, ecc, M, rho, I_inf, N_pop, gamma_ph, I_s, R_ph, I_0, n_1, n_2) = pos(
    "r", "epsilon", "sigma", "D_e", "a", "r_e", "T", "V_m", "b", "S", "V_max", "K_m", "K", "N_0", "A", "E_a", "lambda",
    "m", "v", "c", "alpha", "beta", "e", "M", "rho", "I", "N", "gamma", "I_s", "R", "I_0", "n_1", "n_2")
q, xs, ys, zs, p_mom, E_anom, t_ph, V, th = real("q", "x", "y", "z", "p", "E", "t", "V", "theta")

R_GAS = sp.Float("8.314462618")
H_PLANCK, C_LIGHT, K_BOLTZ = sp.Float("6.62607015e-34"), sp.Float(299792458), sp.Float("1.380649e-23")
G_NEWTON, K_COULOMB = sp.Float("6.674e-11"), sp.Float("8.9875517923e9")


def _hh_rate(vm, c0, shift, scale):   # Hodgkin & Huxley (1952): c0 (V + shift)/(1 - exp(-(V + shift)/scale))
    return c0 * (vm + shift) / (1 - sp.exp(-(vm + shift) / scale))


def _away_from(name, centre, gap):
    return lambda values: abs(values[name] - centre) > gap


PHYSICS = [
    Case("lennard_jones", "Lennard-Jones potential 4 epsilon ((sigma/r)**12 - (sigma/r)**6) (Jones 1924)",
         4 * eps_lj * ((sig / r) ** 12 - (sig / r) ** 6), {r: (0.9, 3), eps_lj: (0.1, 2), sig: (0.8, 1.2)}),
    Case("morse", "Morse potential D_e (1 - exp(-a (r - r_e)))**2 (Morse 1929)",
         De * (1 - sp.exp(-a_ph * (r - r_e))) ** 2, {r: (0.5, 4), De: (0.5, 5), a_ph: (0.5, 3), r_e: (0.8, 1.5)}),
    Case("van_der_waals", "van der Waals equation of state P = R T/(V_m - b) - a/V_m**2, R = 8.314 J/(mol K)",
         R_GAS * T_ph / (V_m - b_ph) - a_ph / V_m ** 2,
         {T_ph: (100, 600), V_m: (0.05, 1), a_ph: (0.01, 0.5), b_ph: (1e-5, 0.04)}),
    Case("michaelis_menten", "Michaelis-Menten rate V_max S/(K_m + S) (Michaelis & Menten 1913)",
         V_max * S_ph / (K_m + S_ph), {V_max: (0.1, 10), S_ph: (0.001, 100), K_m: (0.01, 10)}),
    Case("logistic_growth", "logistic growth solution K/(1 + ((K - N0)/N0) exp(-r t)) (Verhulst 1838)",
         K_ph / (1 + (K_ph - N0) / N0 * sp.exp(-r * t_ph)),
         {K_ph: (50, 200), N0: (1, 40), r: (0.05, 2), t_ph: (0, 20)}),
    Case("arrhenius", "Arrhenius equation k = A exp(-E_a/(R T)) (Arrhenius 1889)", A_ph * sp.exp(-E_a / (R_GAS * T_ph)),
         {A_ph: (1e3, 1e13, "log"), E_a: (1e4, 2e5), T_ph: (250, 1500)}),
    Case("planck", "Planck's law B(lambda, T) = 2hc**2/lambda**5 / (exp(hc/(lambda k T)) - 1), SI constants",
         2 * H_PLANCK * C_LIGHT ** 2 / lam_ph ** 5 / (sp.exp(H_PLANCK * C_LIGHT / (lam_ph * K_BOLTZ * T_ph)) - 1),
         {lam_ph: (2e-7, 5e-6), T_ph: (1000, 8000)}),
    Case("coulomb", "Coulomb potential k q/r of a point charge at distance r = |(x, y)|, k = 8.99e9 N m**2/C**2, r by "
         "cfunctions.hypot", K_COULOMB * q / hypot(xs, ys), {q: (-1e-6, 1e-6), xs: (-1, 1), ys: (-1, 1)},
         where=lambda v: v["x"] ** 2 + v["y"] ** 2 > 0.01),
    Case("relativistic_kinetic_energy", "relativistic kinetic energy (gamma - 1) m c**2, "
         "gamma = 1/sqrt(1 - v**2/c**2), c = 299792458 m/s",
         (1 / sp.sqrt(1 - v_ph ** 2 / C_LIGHT ** 2) - 1) * m * C_LIGHT ** 2,
         {m: (0.1, 10), v_ph: (3e7, 2.9e8)}),
    Case("duffing_energy", "Duffing oscillator energy p**2/2 + alpha x**2/2 + beta x**4/4 (Kovacic & Brennan, "
         "The Duffing Equation, 2011)", p_mom ** 2 / 2 + alpha_ph * xs ** 2 / 2 + beta_ph * xs ** 4 / 4,
         {p_mom: (-3, 3), xs: (-3, 3), alpha_ph: (0.1, 2), beta_ph: (0.01, 1)}),
    Case("kepler_residual", "Kepler's equation residual E - e sin E - M (Kepler 1609)",
         E_anom - ecc * sp.sin(E_anom) - M,
         {E_anom: (-pi, pi), ecc: (0.01, 0.99), M: (0.01, pi)}),
    Case("lorenz_dx", "Lorenz (1963) system: dx/dt = sigma (y - x)", sig * (ys - xs),
         {sig: (5, 15), xs: (-20, 20), ys: (-20, 20)}),
    Case("lorenz_dy", "Lorenz (1963) system: dy/dt = x (rho - z) - y", xs * (rho - zs) - ys,
         {xs: (-20, 20), ys: (-20, 20), zs: (0, 50), rho: (10, 40)}),
    Case("lorenz_dz", "Lorenz (1963) system: dz/dt = x y - beta z", xs * ys - beta_ph * zs,
         {xs: (-20, 20), ys: (-20, 20), zs: (0, 50), beta_ph: (1, 4)}),
    Case("sir_dS", "SIR model (Kermack & McKendrick 1927): dS/dt = -beta S I/N", -beta_ph * S_ph * I_inf / N_pop,
         {beta_ph: (0.1, 1), S_ph: (1, 1000), I_inf: (1, 1000), N_pop: (1000, 2000)}),
    Case("sir_dI", "SIR model: dI/dt = beta S I/N - gamma I", beta_ph * S_ph * I_inf / N_pop - gamma_ph * I_inf,
         {beta_ph: (0.1, 1), S_ph: (1, 1000), I_inf: (1, 1000), N_pop: (1000, 2000), gamma_ph: (0.05, 0.5)}),
    Case("sir_dR", "SIR model: dR/dt = gamma I", gamma_ph * I_inf, {gamma_ph: (0.05, 0.5), I_inf: (1, 1000)}),
    Case("hh_alpha_n", "Hodgkin-Huxley (1952) alpha_n(V) = 0.01 (V + 55)/(1 - exp(-(V + 55)/10)) (mV, resting "
         "potential -65 mV; Dayan & Abbott, Theoretical Neuroscience, section 5.6)",
         _hh_rate(V, sp.Float("0.01"), 55, 10), {V: (-100, 50)}, where=_away_from("V", -55, 1.0)),
    Case("hh_beta_n", "Hodgkin-Huxley (1952) beta_n(V) = 0.125 exp(-(V + 65)/80) (Dayan & Abbott section 5.6)",
         0.125 * sp.exp(-(V + 65) / 80), {V: (-100, 50)}),
    Case("diode_series_resistance", "diode in series with a resistor, exact current by Lambert W: I = (n V_T/R) "
         "W(I_s R/(n V_T) exp((V + I_s R)/(n V_T))) - I_s (Banwell & Jayakumar 2000), n V_T = 0.0258 V",
         0.0258 / R_ph * sp.LambertW(I_s * R_ph / 0.0258 * sp.exp((V + I_s * R_ph) / 0.0258)) - I_s,
         {I_s: (1e-12, 1e-9, "log"), R_ph: (1, 100), V: (0.3, 1)}),
    Case("single_slit", "Fraunhofer single-slit intensity I0 sinc(pi a sin(theta)/lambda)**2 (Hecht, Optics, "
         "section 10.2)", I_0 * sp.sinc(pi * a_ph * sp.sin(th) / lam_ph) ** 2,
         {I_0: (0.5, 2), a_ph: (1, 5), th: (-1.2, 1.2), lam_ph: (0.4, 0.8)},
         where=lambda v: abs(np.pi * v["a"] * np.sin(v["theta"]) / v["lambda"]) > 0.05),
]

(k_w, h_w, g_w, t_half, p_rms, M_sun, R_earth, tau_ph, A_prism, dev, l_rope, S_0) = pos(
    "k", "h", "g", "t_half", "p_rms", "M", "R", "tau", "A", "delta", "a", "S_0")
Y_l, Y_n, x_1, y_1, x_2, y_2, phi, phi_1, phi_2, lam_1, lam_2, t_0 = real(
    "Y", "Y_n", "x_1", "y_1", "x_2", "y_2", "phi", "phi_1", "phi_2", "lambda_1", "lambda_2", "t_0")
_dist = sp.sqrt(xs ** 2 + ys ** 2 + zs ** 2)
PHYSICS_MORE = [
    Case("snell_refraction_angle", "Snell's law: refraction angle asin(n1 sin(theta)/n2), n1 < n2",
         sp.asin(n_1 * sp.sin(th) / n_2), {n_1: (1, 1.4), n_2: (1.45, 2.4), th: (-1.5, 1.5)}),
    Case("hh_alpha_m", "Hodgkin-Huxley alpha_m(V) = 0.1 (V + 40)/(1 - exp(-(V + 40)/10)) (Dayan & Abbott section 5.6)",
         _hh_rate(V, sp.Float("0.1"), 40, 10), {V: (-100, 50)}, where=_away_from("V", -40, 1.0)),
    Case("hh_beta_h", "Hodgkin-Huxley beta_h(V) = 1/(1 + exp(-(V + 35)/10)) (Dayan & Abbott section 5.6)",
         1 / (1 + sp.exp(-(V + 35) / 10)), {V: (-100, 50)}),
    Case("michaelis_menten_integrated", "integrated Michaelis-Menten equation "
         "S(t) = K_m W((S0/K_m) exp((S0 - V t)/K_m)) (Schnell & Mendoza 1997), LambertW",
         K_m * sp.LambertW(S_0 / K_m * sp.exp((S_0 - V_max * t_ph) / K_m)),
         {K_m: (0.1, 10), S_0: (0.1, 10), V_max: (0.1, 2), t_ph: (0, 20)}),
    Case("hill", "Hill equation S**n/(K**n + S**n) (Hill 1910)", S_ph ** n_1 / (K_ph ** n_1 + S_ph ** n_1),
         {S_ph: (0.01, 10), K_ph: (0.1, 5), n_1: (0.5, 4)}),
    Case("gompertz", "Gompertz growth curve a exp(-b exp(-c t)) (Gompertz 1825)",
         a_ph * sp.exp(-b_ph * sp.exp(-c_ph * t_ph)), {a_ph: (1, 100), b_ph: (0.1, 5), c_ph: (0.05, 2), t_ph: (0, 20)}),
    Case("maxwell_boltzmann_speed", "Maxwell-Boltzmann speed density sqrt(2/pi) v**2/a**3 exp(-v**2/(2 a**2)), "
         "a = sqrt(kT/m)", sp.sqrt(2 / pi) * v_ph ** 2 / a_ph ** 3 * sp.exp(-v_ph ** 2 / (2 * a_ph ** 2)),
         {v_ph: (0.01, 10), a_ph: (0.5, 3)}),
    Case("fermi_dirac", "Fermi-Dirac occupation 1/(exp((E - mu)/(k T)) + 1), E and mu in units of 1e-20 J",
         1 / (sp.exp((E_anom - ys) * sp.Float("1e-20") / (K_BOLTZ * T_ph)) + 1),
         {E_anom: (-1, 1), ys: (-1, 1), T_ph: (100, 1000)}),
    Case("damped_oscillator", "underdamped oscillator x(t) = A exp(-gamma t) cos(omega t + phi)",
         A_ph * sp.exp(-gamma_ph * t_ph) * sp.cos(c_ph * t_ph + phi),
         {A_ph: (0.1, 5), gamma_ph: (0.01, 1), t_ph: (0, 10), c_ph: (0.5, 5), phi: (-pi, pi)}),
    Case("driven_oscillator_phase", "phase lag of a driven damped oscillator atan2(2 zeta w w0, w0**2 - w**2)",
         sp.atan2(2 * alpha_ph * v_ph * c_ph, c_ph ** 2 - v_ph ** 2),
         {alpha_ph: (0.05, 1), v_ph: (0.1, 3), c_ph: (0.5, 2)}),
    Case("projectile_height", "projectile trajectory y = x tan(theta) - g x**2/(2 v**2 cos(theta)**2)",
         xs * sp.tan(th) - g_w * xs ** 2 / (2 * v_ph ** 2 * sp.cos(th) ** 2),
         {xs: (0, 50), th: (0.1, 1.4), g_w: (9.7, 9.9), v_ph: (5, 40)}),
    Case("law_of_cosines_angle", "triangle angle from its sides acos((a**2 + b**2 - c**2)/(2ab))",
         sp.acos((a_ph ** 2 + b_ph ** 2 - c_ph ** 2) / (2 * a_ph * b_ph)), {a_ph: (1, 3), b_ph: (1, 3), c_ph: (0.5, 4)},
         where=lambda v: (v["c"] < 0.97 * (v["a"] + v["b"])) & (v["c"] > 1.03 * abs(v["a"] - v["b"]))),
    Case("cauchy_cdf", "Cauchy CDF 1/2 + atan((x - x0)/gamma)/pi (scipy.stats.cauchy)",
         sp.Rational(1, 2) + sp.atan((xs - ys) / gamma_ph) / pi, {xs: (-20, 20), ys: (-2, 2), gamma_ph: (0.1, 5)}),
    Case("water_wave_dispersion", "linear (Airy) water waves: omega = sqrt(g k tanh(k h))",
         # k h <= 6 (shallow to intermediate depth): in deep water d/dh is ~sech(k h)**2, which gradc and SymPy both
         # compute as 1 - tanh(k h)**2, losing digits (at k h = 11.3: gradc off by 1.4e-7, SymPy by 2.1e-7)
         sp.sqrt(g_w * k_w * sp.tanh(k_w * h_w)), {g_w: (9.7, 9.9), k_w: (0.01, 1.2), h_w: (0.1, 5)}),
    Case("catenary", "catenary y = a cosh(x/a) plus its arc length a sinh(x/a)",
         l_rope * sp.cosh(xs / l_rope) + l_rope * sp.sinh(xs / l_rope), {l_rope: (0.5, 5), xs: (-5, 5)}),
    Case("langevin", "Langevin function of paramagnetism L(x) = 1/tanh(x) - 1/x (coth written 1/tanh)",
         1 / sp.tanh(a_ph) - 1 / a_ph, {a_ph: (0.5, 20)}),
    Case("fick_erfc", "diffusion into a semi-infinite medium C0 erfc(x/(2 sqrt(D t))) (Crank, The Mathematics of "
         "Diffusion, section 3.3)", c_ph * sp.erfc(h_w / (2 * sp.sqrt(k_w * tau_ph))),
         {c_ph: (0.1, 5), h_w: (0.001, 3), k_w: (0.1, 2), tau_ph: (0.1, 10)}),
    Case("kepler_third_law", "Kepler's third law: semi-major axis cbrt(G M T**2/(4 pi**2)), cfunctions.Cbrt",
         Cbrt(G_NEWTON * M_sun * T_ph ** 2 / (4 * pi ** 2)), {M_sun: (1e24, 1e31, "log"), T_ph: (1e5, 1e9, "log")}),
    Case("escape_velocity", "escape velocity sqrt(2 G M/r), cfunctions.Sqrt", Sqrt(2 * G_NEWTON * M_sun / r),
         {M_sun: (1e22, 1e31, "log"), r: (1e6, 1e9, "log")}),
    Case("half_life_decay", "radioactive decay N0 2**(-t/t_half), cfunctions.exp2", N0 * exp2(-t_ph / t_half),
         {N0: (1, 1e6), t_ph: (0, 100), t_half: (1, 50)}),
    Case("sound_pressure_level", "sound pressure level 20 log10(p_rms/p_ref), p_ref = 20 uPa, cfunctions.log10",
         20 * log10(p_rms / sp.Float("2e-5")), {p_rms: (1e-4, 100, "log")}),
    Case("rocket_equation", "Tsiolkovsky rocket equation delta-v = v_e log(m0/mf)", c_ph * sp.log(M / m),
         {c_ph: (1000, 4500), M: (2, 100), m: (1, 1.9)}),
    Case("haversine", "haversine great-circle distance 2R asin(sqrt(sin(dphi/2)**2 + cos phi1 cos phi2 "
         "sin(dlambda/2)**2)) (Sinnott 1984)",
         2 * R_earth * sp.asin(sp.sqrt(sp.sin((phi_2 - phi_1) / 2) ** 2
                                       + sp.cos(phi_1) * sp.cos(phi_2) * sp.sin((lam_2 - lam_1) / 2) ** 2)),
         {R_earth: (6.37e6, 6.38e6), phi_1: (-1.5, 1.5), phi_2: (-1.5, 1.5), lam_1: (-3, 3), lam_2: (-3, 3)},
         where=lambda v: abs(v["phi_1"] - v["phi_2"]) + abs(v["lambda_1"] - v["lambda_2"]) > 0.05),
    Case("spherical_polar_angle", "Cartesian to spherical coordinates: polar angle acos(z/sqrt(x**2 + y**2 + z**2))",
         sp.acos(zs / _dist), {xs: (-2, 2), ys: (-2, 2), zs: (-2, 2)},
         where=lambda v: v["x"] ** 2 + v["y"] ** 2 > 0.01),
    Case("spherical_azimuth", "Cartesian to spherical coordinates: azimuth atan2(y, x)", sp.atan2(ys, xs),
         {xs: (-2, 2), ys: (-2, 2)}, where=lambda v: v["x"] ** 2 + v["y"] ** 2 > 0.01),
    Case("mercator_y", "Mercator projection ordinate R log(sec(phi) + tan(phi)) (Snyder 1987, USGS PP 1395, ch. 7)",
         R_earth * sp.log(sp.sec(phi) + sp.tan(phi)), {R_earth: (6.37e6, 6.38e6), phi: (-1.4, 1.4)}),
    Case("prism_index", "refractive index of a prism from its minimum deviation sin((A + delta)/2) csc(A/2) "
         "(Hecht, Optics)", sp.sin((A_prism + dev) / 2) * sp.csc(A_prism / 2),
         {A_prism: (0.3, 1.2), dev: (0.1, 0.8)}),
    Case("cotangent_laplacian_weight", "cotangent Laplacian edge weight (cot alpha + cot beta)/2 (Pinkall & "
         "Polthier 1993)", (sp.cot(alpha_ph) + sp.cot(beta_ph)) / 2, {alpha_ph: (0.2, 2.8), beta_ph: (0.2, 2.8)}),
    Case("poincare_distance", "hyperbolic distance in the Poincare half-plane acosh(1 + ((x2-x1)**2 + (y2-y1)**2)/"
         "(2 y1 y2))", sp.acosh(1 + ((x_2 - x_1) ** 2 + (y_2 - y_1) ** 2) / (2 * y_1 * y_2)),
         {x_1: (-2, 2), x_2: (-2, 2), y_1: (0.1, 3), y_2: (0.1, 3)},
         where=lambda v: (v["x_1"] - v["x_2"]) ** 2 + (v["y_1"] - v["y_2"]) ** 2 > 0.01),
    Case("cielab_lightness", "CIE 1976 lightness L* = 116 f(Y/Yn) - 16, f(t) = cube root above (6/29)**3, linear "
         "below (CIE 15:2004), real_root", 116 * sp.Piecewise(
             (sp.real_root(Y_l / Y_n, 3), Y_l / Y_n > sp.Rational(6, 29) ** 3),
             (Y_l / Y_n / (3 * sp.Rational(6, 29) ** 2) + sp.Rational(4, 29), True)) - 16,
         {Y_l: (0.0005, 1), Y_n: (0.9, 1.1)}),
    Case("first_order_step_response", "first-order system step response K (1 - exp(-(t - t0)/tau)) Heaviside(t - t0) "
         "(Ogata, Modern Control Engineering)", K_ph * (1 - sp.exp(-(t_ph - t_0) / tau_ph)) * sp.Heaviside(t_ph - t_0),
         {K_ph: (0.5, 2), t_ph: (0, 10), t_0: (0, 5), tau_ph: (0.2, 3)}),
]


# ---------------------------------------------------------------------------------------------------------------
# Lagrangians built with sympy.physics.mechanics, then q(t), q'(t) replaced by plain symbols, the derivatives first
# (sympy docs: "Lagrange's Method in Physics/Mechanics", and the double pendulum of "A double pendulum" examples).

def _plain(expr, qs, values, rates):
    """L(q, q') with q(t) -> value symbols and q'(t) -> rate symbols, the derivative substitution first."""
    t = me.dynamicsymbols._t
    expr = expr.subs({q.diff(t): s for q, s in zip(qs, rates)})
    return expr.subs(dict(zip(qs, values)))


def _pendulum_chain(n_links: int):
    """Lagrangian of an n-link chain of point masses on massless rods hanging from a fixed pivot."""
    qs = me.dynamicsymbols(f"q1:{n_links + 1}")
    ms = sp.symbols(f"m1:{n_links + 1}", positive=True)
    ls = sp.symbols(f"l1:{n_links + 1}", positive=True)
    g = sp.Symbol("g", positive=True)
    N = me.ReferenceFrame("N")
    pivot = me.Point("O")
    pivot.set_vel(N, 0)
    point, particles = pivot, []
    for i in range(n_links):
        P = point.locatenew(f"P{i + 1}", ls[i] * (sp.sin(qs[i]) * N.x - sp.cos(qs[i]) * N.y))
        P.set_vel(N, P.pos_from(pivot).dt(N))
        particle = me.Particle(f"pa{i + 1}", P, ms[i])
        particle.potential_energy = ms[i] * g * P.pos_from(pivot).dot(N.y)
        particles.append(particle)
        point = P
    L = me.Lagrangian(N, *particles)
    thetas = sp.symbols(f"theta1:{n_links + 1}", real=True)
    omegas = sp.symbols(f"omega1:{n_links + 1}", real=True)
    return L, qs, thetas, omegas, ms, ls, g


def _chain_case(n_links: int, name: str, source: str, **kwargs) -> Case:
    L, qs, thetas, omegas, ms, ls, g = _pendulum_chain(n_links)
    domain = {g: (9.7, 9.9)}
    domain.update({s: (-pi, pi) for s in thetas})
    domain.update({s: (-3, 3) for s in omegas})
    domain.update({s: (0.2, 3) for s in ms})
    domain.update({s: (0.3, 2) for s in ls})
    return Case(name, source, _plain(L, qs, thetas, omegas), domain, **kwargs)


def _cart_pole() -> Case:
    """Cart (mass M, position x) with a pendulum (mass m, length l, angle theta) on a frictionless track."""
    xq, thq = me.dynamicsymbols("x theta")
    M, m, ell, g = sp.symbols("M m l g", positive=True)
    N = me.ReferenceFrame("N")
    pivot = me.Point("O")
    pivot.set_vel(N, 0)
    C = pivot.locatenew("C", xq * N.x)
    C.set_vel(N, C.pos_from(pivot).dt(N))
    P = C.locatenew("P", ell * (sp.sin(thq) * N.x - sp.cos(thq) * N.y))
    P.set_vel(N, P.pos_from(pivot).dt(N))
    cart, bob = me.Particle("cart", C, M), me.Particle("bob", P, m)
    bob.potential_energy = m * g * P.pos_from(pivot).dot(N.y)
    X, TH, V, W = sp.symbols("x theta v omega", real=True)
    L = _plain(me.Lagrangian(N, cart, bob), [xq, thq], [X, TH], [V, W])
    return Case("cart_pole_lagrangian", "sympy.physics.mechanics: cart-pole Lagrangian, a pendulum on a cart on a "
                "frictionless track (the classic control benchmark; Barto, Sutton & Anderson 1983)", L,
                {X: (-2, 2), TH: (-pi, pi), V: (-3, 3), W: (-5, 5), M: (0.5, 5), m: (0.1, 2), ell: (0.2, 2),
                 g: (9.7, 9.9)})


def _spring_pendulum() -> Case:
    """Elastic pendulum: a mass on a spring of rest length l0, stiffness k, polar coordinates (r, theta)."""
    rq, thq = me.dynamicsymbols("r theta")
    m, k, l0, g = sp.symbols("m k l_0 g", positive=True)
    N = me.ReferenceFrame("N")
    pivot = me.Point("O")
    pivot.set_vel(N, 0)
    P = pivot.locatenew("P", rq * (sp.sin(thq) * N.x - sp.cos(thq) * N.y))
    P.set_vel(N, P.pos_from(pivot).dt(N))
    bob = me.Particle("bob", P, m)
    bob.potential_energy = m * g * P.pos_from(pivot).dot(N.y) + k * (rq - l0) ** 2 / 2
    R_, TH, RD, W = sp.symbols("r theta rdot omega", real=True)
    L = _plain(me.Lagrangian(N, bob), [rq, thq], [R_, TH], [RD, W])
    return Case("spring_pendulum_lagrangian", "sympy.physics.mechanics: elastic (spring) pendulum Lagrangian, "
                "potential energy of gravity and the spring", L,
                {R_: (0.5, 2), TH: (-pi, pi), RD: (-2, 2), W: (-3, 3), m: (0.1, 2), k: (1, 50), l0: (0.5, 1.5),
                 g: (9.7, 9.9)})


def _double_pendulum_rhs() -> list[Case]:
    """The accelerations of the double pendulum from LagrangesMethod (mass matrix solved), as plain expressions."""
    L, qs, thetas, omegas, ms, ls, g = _pendulum_chain(2)
    lm = me.LagrangesMethod(L, qs)
    lm.form_lagranges_equations()
    rhs = lm.rhs()   # [q1', q2', q1'', q2'']
    domain = {g: (9.7, 9.9)}
    domain.update({s: (-pi, pi) for s in thetas})
    domain.update({s: (-3, 3) for s in omegas})
    domain.update({s: (0.2, 3) for s in ms})
    domain.update({s: (0.3, 2) for s in ls})
    return [Case(f"double_pendulum_accel{i + 1}", "sympy.physics.mechanics LagrangesMethod(L, q).rhs() of the double "
                 f"pendulum: theta{i + 1}'' (mass matrix solved by SymPy)", _plain(rhs[2 + i], qs, thetas, omegas),
                 domain) for i in range(2)]


MECHANICS = [
    _chain_case(1, "pendulum_lagrangian", "sympy.physics.mechanics: simple pendulum Lagrangian me.Lagrangian(N, "
                "Particle) with potential energy m g y (docs: 'Lagrange's Method in Physics/Mechanics')"),
    _chain_case(2, "double_pendulum_lagrangian", "sympy.physics.mechanics: double pendulum Lagrangian, point masses "
                "on massless rods (docs: 'Lagrange's Method in Physics/Mechanics')"),
]

MECHANICS_MORE = [
    _cart_pole(),
    _spring_pendulum(),
    _chain_case(3, "triple_pendulum_lagrangian", "sympy.physics.mechanics: triple pendulum Lagrangian"),
    *_double_pendulum_rhs(),
]

#: the groups of the default run, each compiled as one module
GROUPS = {
    "optimization": OPTIMIZATION,
    "physics": PHYSICS + MECHANICS,
}
#: more of the corpus, in groups marked pytest.mark.slow (run with `make test-slow`); the likelihoods call the
#: special functions, each of which costs a second of Numba's time (they are checked against scipy.special in
#: the default run by tests/test_special.py)
SLOW_GROUPS = {
    "statistics": STATISTICS + ML_NUMERICS,
    "optimization_more": OPTIMIZATION_MORE,
    "statistics_more": STATISTICS_MORE + ML_NUMERICS_MORE,
    "physics_more": PHYSICS_MORE,
    "mechanics_more": MECHANICS_MORE,
}
