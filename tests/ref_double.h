/*
 * ref_double.h - an independent double-precision reference of FASA, written
 * from include/fasa.h and the method description only (no code from src/).
 * Tensors are dense double arrays [tokens][heads][dim].
 */
#ifndef FASA_TEST_REF_DOUBLE_H
#define FASA_TEST_REF_DOUBLE_H

#include <stddef.h>
#include <stdint.h>

/* The two head dims of FC f for a fasa_pair_layout and even head_dim d. */
void ref_fc_dims(int pair_layout, size_t d, size_t f, size_t *d0, size_t *d1);

/* Number of tokens a budget selects among t_i visible ones; 0 when the
 * budget is invalid (<= 0, NaN, Inf). */
size_t ref_budget_count(double budget, size_t t_i);

/* Visible keys of query i of n_q (bottom-right causal): t - n_q + i + 1. */
size_t ref_visible(size_t t, size_t n_q, size_t i);

/* TIP scores of one query vector w[d] against rows k[j*k_stride ...],
 * j < t_vis, over the dims of fcs[n_fc]. abs_sum[j] (optional) gets the sum
 * of |w_d * k_d| over the same dims, the scale of rounding error. */
void ref_tip_scores(const double *w, const double *k, size_t k_stride, size_t t_vis,
                    const uint32_t *fcs, size_t n_fc, int pair_layout, size_t d,
                    double *scores, double *abs_sum);

/* order[0..n) = token indices ranked best first: higher score, then lower
 * index; NaN after every number (NaNs by index). */
void ref_rank(const double *scores, size_t n, uint32_t *order);

/* Top-k with the same rule; writes the k chosen indices ascending. */
void ref_topk(const double *scores, size_t n, size_t k, uint32_t *out);

/* FC set of a GROUP_SHARED group derived by vote from the heads' sets
 * (fcs rows of the g-th group, G rows of n_fc): FCs used by most heads,
 * ties to the lower FC index; result ascending. */
void ref_group_vote(const uint32_t *head_fcs, size_t G, size_t n_fc, size_t head_dim,
                    uint32_t *out);

/* Softmax attention of q[d] over rows idx[0..n) of k (stride k_stride, d
 * dims) and v (stride v_stride, dv dims): out[dv], *lse. Empty set: zeros
 * and -INFINITY. scale is used as given. */
void ref_attend(const double *q, const double *k, size_t k_stride, size_t d, const double *v,
                size_t v_stride, size_t dv, const uint32_t *idx, size_t n, double scale,
                double *out, double *lse);

/* ref_attend with what runtimes add: logit_r = softcap(scale * q.k) +
 * bias[r] (bias may be NULL; softcap <= 0 is off), and a sink logit
 * joining the denominator (has_sink). Nothing to weigh: zeros, -INFINITY. */
void ref_attend_ex(const double *q, const double *k, size_t k_stride, size_t d, const double *v,
                   size_t v_stride, size_t dv, const uint32_t *idx, const double *bias, size_t n,
                   double scale, double softcap, int has_sink, double sink, double *out,
                   double *lse);

/* Dense causal attention: the first t_vis rows. */
void ref_attend_dense(const double *q, const double *k, size_t k_stride, size_t d,
                      const double *v, size_t v_stride, size_t dv, size_t t_vis, double scale,
                      double *out, double *lse);

/* Contextual agreement |TopK'(s) & TopK'(s^f)| / K' of one query against t
 * keys (full dot product vs FC f only), K' = min(K, t). */
double ref_contextual_agreement(const double *q, const double *k, size_t k_stride, size_t t,
                                size_t d, int pair_layout, size_t f, size_t K);

#endif
