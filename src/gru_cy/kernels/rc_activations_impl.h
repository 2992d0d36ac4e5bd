/* Vectorisable sigmoid and tanh for the gate loops, instantiated by
 * rc_cells.c once per instruction set with:
 *   A(name)          this instantiation's name for name
 *   MADF(a, b, c)    a * b + c in float: one fused multiply-add (an FMA
 *   MADD(a, b, c)    instruction on the AVX2 and AVX-512 paths, C99's fmaf
 *                    on the portable one; double: MADD)
 * Written out as fused operations where they are wanted, they are the same
 * operations in every copy of a loop (vector body, scalar remainder): the
 * file they are compiled in lets the compiler contract nothing else.
 *
 * float: exp by range reduction (x = k ln2 + r, |r| <= ln2/2) and a degree-6
 * polynomial for e^r (fitted for this project to minimise the relative
 * error on that interval: 3e-9), 2^k assembled in the exponent bits; no
 * libm call, no branches, so GCC keeps a whole row of gates in SIMD
 * registers. Worst error over all floats (checked exhaustively against
 * double): exp 1.2 ulp, sigmoid 2.5 ulp, tanh 1.5 ulp.
 * tanh uses an odd polynomial near 0 (fitted by least squares for this
 * project, 0.55 ulp on [0, 0.55]) so that small arguments keep their
 * relative accuracy, and 1 - 2 / (e^{2|x|} + 1) elsewhere.
 * double: the same scheme at double precision (see the double exp below).
 *
 * Special values: a NaN argument falls through every clamp to the
 * arithmetic and gives NaN; the limits are exact: sigmoid(-inf) = 0,
 * sigmoid(+inf) = 1, tanh(+-inf) = +-1 (so that a saturated gate has
 * z (1 - z) = 0 exactly and 0 * inf gives NaN as IEEE says). The float exp
 * returns +inf from about 88.38 up (true overflow is at 88.72) and the
 * smallest normal float, not a subnormal, below -87.34.
 */

static RC_ALWAYS_INLINE float A(expf)(float x)
{
    /* k = round(x / ln2) stays in [-126, 128]; 2^128 is built as +inf. */
    x = x > 88.7228394f ? 88.7228394f : x;
    x = x < -87.3365479f ? -87.3365479f : x;
    /* round(x / ln2) with the 1.5 * 2^23 trick (no floorf: vectorises on SSE2) */
    const float shifter = 12582912.0f;
    float k = MADF(x, 1.44269504088896341f, shifter) - shifter;
    float r = MADF(-k, 0.693145751953125f, x);  /* ln2 high part, exact k*hi */
    r = MADF(-k, 1.42860682030941723212e-6f, r);  /* ln2 low part */
    float p = 0.0013814601615491152f;
    p = MADF(p, r, 0.008368707202626393f);
    p = MADF(p, r, 0.041668387330310766f);
    p = MADF(p, r, 0.1666652071159477f);
    p = MADF(p, r, 0.4999999345259426f);
    p = MADF(p, r, 1.0f);
    p = MADF(p, r, 1.0f);
    int32_t bits = ((int32_t)k + 127) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

static RC_ALWAYS_INLINE float A(sigmoidf)(float x)
{
    return 1.0f / (1.0f + A(expf)(-x));
}

static RC_ALWAYS_INLINE float A(tanhf)(float x)
{
    float ax = fabsf(x);
    float s = x * x;
    float p = -0.006657440457191356f;
    p = MADF(p, s, 0.021339745244267072f);
    p = MADF(p, s, -0.05391574102343582f);
    p = MADF(p, s, 0.13333159245390422f);
    p = MADF(p, s, -0.3333333272706008f);
    float small = x + x * s * p;
    float big = 1.0f - 2.0f / (A(expf)(2.0f * ax) + 1.0f);
    big = copysignf(big, x);
    return ax < 0.55f ? small : big;   /* NaN: ax < 0.55 is false, big is NaN */
}

/* double: the same construction with a degree-13 Taylor polynomial for
 * e^r (truncation error 4e-18) and 2^k built from the low bits of the
 * rounding shifter (AVX2 has no double -> int64 conversion); tanh's odd
 * polynomial on [0, 0.55] was fitted for this project (relative error
 * 3e-17). Worst error on 2e7 random arguments against long double: exp
 * 1.1 ulp, sigmoid 2.3 ulp, tanh 1.5 ulp. */
static RC_ALWAYS_INLINE double A(exp)(double x)
{
    /* k = round(x / ln2) stays in [-1022, 1024]; 2^1024 is built as +inf. */
    x = x > 709.782712893384 ? 709.782712893384 : x;
    x = x < -708.3964185322641 ? -708.3964185322641 : x;
    const double shifter = 6755399441055744.0;          /* 1.5 * 2^52 */
    double kd = MADD(x, 1.4426950408889634, shifter);   /* k in the low bits */
    double k = kd - shifter;
    double r = MADD(-k, 0.6931471803691238, x);         /* ln2 high part, exact k*hi */
    r = MADD(-k, 1.9082149292705877e-10, r);            /* ln2 low part */
    double p = 1.0 / 6227020800.0;
    p = MADD(p, r, 1.0 / 479001600.0);
    p = MADD(p, r, 1.0 / 39916800.0);
    p = MADD(p, r, 1.0 / 3628800.0);
    p = MADD(p, r, 1.0 / 362880.0);
    p = MADD(p, r, 1.0 / 40320.0);
    p = MADD(p, r, 1.0 / 5040.0);
    p = MADD(p, r, 1.0 / 720.0);
    p = MADD(p, r, 1.0 / 120.0);
    p = MADD(p, r, 1.0 / 24.0);
    p = MADD(p, r, 1.0 / 6.0);
    p = MADD(p, r, 0.5);
    p = MADD(p, r, 1.0);
    p = MADD(p, r, 1.0);
    int64_t bits;
    memcpy(&bits, &kd, sizeof bits);
    bits = (int64_t)((uint64_t)(bits + 1023) << 52);
    double scale;
    memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

static RC_ALWAYS_INLINE double A(sigmoid)(double x)
{
    return 1.0 / (1.0 + A(exp)(-x));
}

static RC_ALWAYS_INLINE double A(tanh)(double x)
{
    double ax = fabs(x);
    double s = x * x;
    double p = 5.052455360561819e-05;
    p = MADD(p, s, -0.0002095530577218758);
    p = MADD(p, s, 0.0005786573793438883);
    p = MADD(p, s, -0.0014530470803392035);
    p = MADD(p, s, 0.0035916835164439393);
    p = MADD(p, s, -0.008863189748909267);
    p = MADD(p, s, 0.02186948559720716);
    p = MADD(p, s, -0.05396825385912282);
    p = MADD(p, s, 0.13333333333131456);
    p = MADD(p, s, -0.3333333333333203);
    double small = x + x * s * p;
    double big = 1.0 - 2.0 / (A(exp)(2.0 * ax) + 1.0);
    big = copysign(big, x);
    return ax < 0.55 ? small : big;    /* NaN: ax < 0.55 is false, big is NaN */
}

