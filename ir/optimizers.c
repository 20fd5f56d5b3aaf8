/* The optimizers: the one table of their kinds (ir.h), and the check of a train's optimizer
 * that the builder and the verifier share. The update formulas are passes/optimizer.c's. */
#include <float.h>
#include <math.h>
#include <string.h>

#include "fail.h"
#include "ir.h"

const char *const ir_hp_names[IR_HP_COUNT] = {"momentum", "nesterov", "beta1", "beta2", "eps", "alpha"};

/* PyTorch's torch.optim, with its defaults (the DSL's ag_adam() etc. take them) */
const ir_optimizer_kind ir_optimizer_kinds[] = {
    {"sgd",
     "p -= lr * d, d = grad + wd p, or with momentum mu a buffer b = mu b + d (nesterov: d + mu b)",
     1u << IR_HP_MOMENTUM | 1u << IR_HP_NESTEROV,
     1u << IR_HP_MOMENTUM | 1u << IR_HP_NESTEROV,
     {0},
     {"momentum_buffer"}},
    {"adam",
     "Adam (Kingma and Ba), L2 decay added to the gradient, as torch.optim.Adam",
     1u << IR_HP_BETA1 | 1u << IR_HP_BETA2 | 1u << IR_HP_EPS,
     0,
     {[IR_HP_BETA1] = 0.9, [IR_HP_BETA2] = 0.999, [IR_HP_EPS] = 1e-8},
     {"step", "exp_avg", "exp_avg_sq"}},
    {"adamw",
     "Adam with decoupled weight decay, p *= 1 - lr wd first, as torch.optim.AdamW",
     1u << IR_HP_BETA1 | 1u << IR_HP_BETA2 | 1u << IR_HP_EPS,
     0,
     {[IR_HP_BETA1] = 0.9, [IR_HP_BETA2] = 0.999, [IR_HP_EPS] = 1e-8},
     {"step", "exp_avg", "exp_avg_sq"}},
    {"rmsprop",
     "RMSProp: s = alpha s + (1 - alpha) d^2, p -= lr d / (sqrt(s) + eps), as torch.optim.RMSprop",
     1u << IR_HP_ALPHA | 1u << IR_HP_EPS,
     0,
     {[IR_HP_ALPHA] = 0.99, [IR_HP_EPS] = 1e-8},
     {"square_avg"}},
    {"adagrad",
     "Adagrad: s += d^2, p -= lr d / (sqrt(s) + eps), as torch.optim.Adagrad",
     1u << IR_HP_EPS,
     0,
     {[IR_HP_EPS] = 1e-10},
     {"sum"}},
    {NULL, NULL, 0, 0, {0}, {NULL}},
};

const ir_optimizer_kind *ir_optimizer_find(const char *name)
{
    for (const ir_optimizer_kind *k = ir_optimizer_kinds; name && k->name; k++)
        if (strcmp(k->name, name) == 0)
            return k;
    return NULL;
}

const char *ir_optimizer_names(void)
{
    static char names[128]; /* the table's, made once: it never changes */
    if (!names[0])
        for (const ir_optimizer_kind *k = ir_optimizer_kinds; k->name; k++) {
            size_t at = strlen(names);
            snprintf(names + at, sizeof names - at, "%s%s", at ? ", " : "", k->name);
        }
    return names;
}

bool ir_optimizer_check(const ir_train *t, char *err, size_t len)
{
    const ir_optimizer_kind *k = ir_optimizer_find(t->optimizer);
    if (!k)
        return rt_fail(err, len, "unknown optimizer '%s' (aotgrad has %s)", t->optimizer ? t->optimizer : "(null)",
                       ir_optimizer_names());
    if (!(t->lr >= 0 && t->lr <= FLT_MAX && t->wd >= 0 && t->wd <= FLT_MAX))
        return rt_fail(err, len, "lr %g and wd %g must be finite, >= 0 and fit an f32", t->lr, t->wd);
    for (int h = 0; h < IR_HP_COUNT; h++) {
        double v = t->hp[h];
        bool takes = k->keys >> h & 1;
        if (!takes && v != 0) {
            char list[128] = "lr, wd";
            for (int j = 0; j < IR_HP_COUNT; j++)
                if (k->keys >> j & 1)
                    snprintf(list + strlen(list), sizeof list - strlen(list), ", %s", ir_hp_names[j]);
            return rt_fail(err, len, "%s takes no %s (it takes %s)", k->name, ir_hp_names[h], list);
        }
        bool ok = h == IR_HP_NESTEROV                    ? v == 0 || v == 1
                  : h == IR_HP_BETA1 || h == IR_HP_BETA2 ? v >= 0 && v < 1
                                                         : v >= 0 && v <= FLT_MAX;
        if (!ok)
            return rt_fail(err, len, "%s: %s is %g; expected %s", k->name, ir_hp_names[h], v,
                           h == IR_HP_NESTEROV                    ? "0 or 1"
                           : h == IR_HP_BETA1 || h == IR_HP_BETA2 ? "a number in [0, 1)"
                                                                  : "a finite number >= 0");
    }
    if (t->hp[IR_HP_NESTEROV] != 0 && !(t->hp[IR_HP_MOMENTUM] > 0))
        return rt_fail(err, len, "sgd: nesterov needs a momentum above 0");
    return true;
}
