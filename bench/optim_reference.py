#!/usr/bin/env python3
"""The optimizers' reference: 20 steps of models/mlp.c's network (784-256-10, ReLU, mean
cross-entropy) with each optimizer of torch.optim, in float64, on the first 20 batches of 64
Fashion-MNIST training images in order, from weights given by a formula both sides compute.
Writes a fixed subset of every parameter and every state tensor (about 512 elements each,
every k-th) to tests/data/optim/reference.txt, which tests/passes/test_optimizers.c compares
aotgrad's train step with (within 1e-5, norm-wise, per tensor).

    python3 bench/optim_reference.py [--data /usr/share/datasets/fashion-mnist] [--out FILE]

Needs PyTorch (Debian's python3-torch, or PyPI's) for the reference only; aotgrad never runs it.
"""
import argparse
import gzip
import math
import os
import struct
import sys

import torch

# name, torch.optim class, its arguments: the same as test_optimizers.c's ag_* calls
CONFIGS = [
    ("sgd", "SGD", dict(lr=0.1, weight_decay=0.001)),
    ("momentum", "SGD", dict(lr=0.05, momentum=0.9, weight_decay=0.001)),
    ("nesterov", "SGD", dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.001)),
    ("adam", "Adam", dict(lr=0.001, weight_decay=0.001)),
    ("adamw", "AdamW", dict(lr=0.001, weight_decay=0.01)),
    ("rmsprop", "RMSprop", dict(lr=0.001, weight_decay=0.001)),
    ("adagrad", "Adagrad", dict(lr=0.01, weight_decay=0.001)),
]
# the state aotgrad keeps (torch's RMSprop and Adagrad also count steps, which their
# formulas here do not read)
STATE = {"SGD": ["momentum_buffer"], "Adam": ["step", "exp_avg", "exp_avg_sq"],
         "AdamW": ["step", "exp_avg", "exp_avg_sq"], "RMSprop": ["square_avg"], "Adagrad": ["sum"]}
STEPS, BATCH = 20, 64


def idx(path):
    opener = gzip.open if os.path.exists(path + ".gz") else open
    with opener(path + ".gz" if os.path.exists(path + ".gz") else path, "rb") as f:
        data = f.read()
    magic, n = struct.unpack(">II", data[:8])
    dims = [n] + list(struct.unpack(">" + "I" * ((magic & 0xFF) - 1), data[8:8 + 4 * ((magic & 0xFF) - 1)]))
    off = 8 + 4 * (len(dims) - 1)
    return torch.frombuffer(bytearray(data[off:]), dtype=torch.uint8).reshape(dims)


def initial():
    """The weights both sides start from (test_optimizers.c: mlp_start)"""
    i = torch.arange(784, dtype=torch.float64)[:, None]
    j = torch.arange(256, dtype=torch.float64)[None, :]
    W1 = 0.01 * torch.sin(0.37 * i + 0.11 * j + 0.5)
    b1 = 0.001 * torch.cos(torch.arange(256, dtype=torch.float64))
    i2 = torch.arange(256, dtype=torch.float64)[:, None]
    j2 = torch.arange(10, dtype=torch.float64)[None, :]
    W2 = 0.05 * torch.sin(0.13 * i2 + 0.71 * j2)
    b2 = torch.zeros(10, dtype=torch.float64)
    return [W1, b1, W2, b2]


def subset(numel):
    stride = max(1, numel // 512)
    return range(0, numel, stride)


def run(X, Y, cls, kw, dtype):
    """20 steps of one optimizer in dtype: the parameters and optimizer, and the last loss"""
    params = [p.to(dtype).clone().requires_grad_(True) for p in initial()]
    opt = getattr(torch.optim, cls)(params, **kw)
    for s in range(STEPS):
        x, y = X[s * BATCH:(s + 1) * BATCH].to(dtype), Y[s * BATCH:(s + 1) * BATCH]
        logits = torch.relu(x @ params[0] + params[1]) @ params[2] + params[3]
        loss = torch.nn.functional.cross_entropy(logits, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return params, opt, loss


def tensors_of(params, opt, cls):
    """name and flat float64 values of every parameter and state tensor"""
    out = []
    for name, p in zip(["W1", "b1", "W2", "b2"], params):
        out.append((name, p.detach().double().reshape(-1)))
        for st in STATE[cls]:
            if opt.state[p].get(st) is not None:
                out.append((f"{name}.{st}", torch.as_tensor(opt.state[p][st]).double().reshape(-1)))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--out", default=os.path.join(here, "..", "tests", "data", "optim", "reference.txt"))
    ap.add_argument("--f32-drift", action="store_true",
                    help="write nothing; print how far torch's own float32 run ends from its float64 one")
    a = ap.parse_args()
    X = idx(os.path.join(a.data, "train-images-idx3-ubyte"))[:STEPS * BATCH].reshape(-1, 784).double() / 255
    Y = idx(os.path.join(a.data, "train-labels-idx1-ubyte"))[:STEPS * BATCH].long()
    if a.f32_drift:
        for cname, cls, kw in CONFIGS:
            want = dict(tensors_of(*run(X, Y, cls, kw, torch.float64)[:2], cls))
            worst = max((float((t - want[n]).norm() / max(float(want[n].norm()), 1e-300)), n)
                        for n, t in tensors_of(*run(X, Y, cls, kw, torch.float32)[:2], cls))
            print(f"{cname}: torch float32 ends {worst[0]:.3g} (norm-wise) from float64, at {worst[1]}")
        return
    lines = [f"# bench/optim_reference.py, torch {torch.__version__}: CONFIG TENSOR INDEX VALUE (float64)"]
    for cname, cls, kw in CONFIGS:
        params, opt, loss = run(X, Y, cls, kw, torch.float64)
        for tname, flat in tensors_of(params, opt, cls):
            for k in subset(flat.numel()):
                lines.append(f"{cname} {tname} {k} {float(flat[k]):.17g}")
        print(f"{cname}: loss after {STEPS} steps {float(loss):.6f}", file=sys.stderr)
    os.makedirs(os.path.dirname(a.out), exist_ok=True)
    with open(a.out, "w") as f:
        f.write("\n".join(lines) + "\n")
    print(f"wrote {a.out}: {len(lines) - 1} values", file=sys.stderr)


if __name__ == "__main__":
    main()
