/*
 * family/tanh.h - the vector tanh of the softcap z = c tanh(x / c), shared
 * by the fused softmax options (family/fused.h) and the cross-entropy's
 * options (family/xent_opts.h).
 */

/* ---- tanh ---------------------------------------------------------------
 * |u| >= 0.5: (1 - t) / (1 + t), t = exp(-2|u|) (exp_neg; t flushes to 0
 * for large |u|, giving 1), the quotient by quot; below: u + u^3 P(u^2),
 * a least-squares fit on [0, 0.5] (max error about 1.3 ulp float32, 1 ulp
 * float64 there), where 1 - t would lose the low bits.
 * Odd: the sign of u is put back.  NaN -> NaN. */
#if SC_IS_F64
static const double V(tanh_c)[10] = {
    -0.3333333333333333,     0.13333333333329891,     -0.0539682539636808,
    0.021869488300128893,    -0.00886322932944357,    0.00359203414987979,
    -0.0014549640213966121,  0.0005849836852513502,   -0.0002211112367688425,
    5.950419239051892e-05};
#define SC_TANH_DEG 10
#else
static const float V(tanh_c)[5] = {-0.3333333134651184f, 0.1333322674036026f,
                                   -0.05393378809094429f, 0.021472711116075516f,
                                   -0.006946984212845564f};
#define SC_TANH_DEG 5
#endif

/* a / b for b in [1, 2] (tanh's 1 + t): with the level's approximate
 * reciprocal y, refined by Newton steps to at least half the precision,
 * the quotient q = a y corrected once, q + y (a - b q) (the residual
 * exact by fma): about 0.5 ulp, without the division's long latency;
 * levels without a reciprocal divide. */
#define SC_RCP_BITS SC_PASTE(SC_RCP_BITS_, SC_S)
SC_ALWAYS_INLINE static inline VEC V(quot)(VEC a, VEC b)
{
#if SC_RCP_BITS > 0
    const VEC one = V(set1)((SC_T)1), nb = V(sub)(V(set1)((SC_T)0), b);
    VEC y = V(rcp)(b);
    for (int bits = SC_RCP_BITS; 2 * bits < (SC_IS_F64 ? 57 : 28); bits *= 2)
        y = V(fma)(y, V(fma)(nb, y, one), y);
    const VEC q = V(mul)(a, y);
    return V(fma)(V(fma)(nb, q, a), y, q);
#else
    return V(div)(a, b);
#endif
}
#undef SC_RCP_BITS

SC_ALWAYS_INLINE static inline VEC V(tanh)(VEC u)
{
    const VEC zero = V(set1)((SC_T)0), one = V(set1)((SC_T)1), half = V(set1)((SC_T)0.5);
    const VEC a = V(max)(u, V(sub)(zero, u));
    VEC small = zero, big = zero, r;
    /* each branch only when a lane needs it: scores well below the cap
     * are all in the polynomial's range, saturated ones all past it */
    const int all_small = V(all_lt)(a, half);
    const int all_big = !all_small && V(all_lt)(V(set1)(SC_IS_F64 ? 0x1.fffffffffffffp-2 : 0x1.fffffep-2f), a);
    if (!all_big) {
        const VEC w = V(mul)(a, a);
        VEC p = V(set1)(V(tanh_c)[SC_TANH_DEG - 1]);
        for (int j = SC_TANH_DEG - 2; j >= 0; j--)
            p = V(fma)(p, w, V(set1)(V(tanh_c)[j]));
        small = V(fma)(V(mul)(a, w), p, a);
    }
    if (!all_small) {
        const VEC t = V(exp_neg)(V(mul)(a, V(set1)((SC_T)-2)));
        big = V(quot)(V(sub)(one, t), V(add)(one, t));
    }
    r = all_small ? small : all_big ? big : V(select_lt)(a, half, small, big);
    return V(select_lt)(u, zero, V(sub)(zero, r), r);
}
#undef SC_TANH_DEG
