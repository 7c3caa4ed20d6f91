#!/usr/bin/env python3
"""Trains the float32 reference weights of examples/mlp.qnn and examples/lenet.qnn on qc's
digits split and writes examples/weights/{mlp,lenet}.safetensors.

numpy only. Plain minibatch training with hand-written backpropagation, using the
hyperparameters of each model's `train { ... }` section:
  mlp:   sgd(lr = 0.1, momentum = 0.9, weight_decay = 5e-4), cosine schedule, 20 epochs, batch 32, seed 0
  lenet: adam(lr = 1e-3), step(every = 10, gamma = 0.5), 30 epochs, batch 64, seed 7
The networks are trained in float32 throughout: the formats the .qnn files give (bf16, e4m3,
int8, the int8 casts in lenet) are ignored here; `qc run` applies them to these weights.

qc's data pipeline is re-implemented exactly (and checked against values pinned by
runtime/tests/data_digits.rs): the digits from runtime/data/digits.csv.gz scaled by 1/16 into
[N, 8, 8, 1]; the train/test split of runtime/src/data/mod.rs (Split::seeded, seed 1797) and the
per-epoch batch order of runtime/src/data/batches.rs, both drawn from qc's counter-based
RandomStream (runtime/src/numerics/rng.rs). Initial weights come from numpy's default_rng(seed)
with the .qnn initialisers (he_normal, glorot_uniform, zeros, fill).

Usage: python3 examples/train_reference.py   (from the repository root; takes about a minute)
"""

import gzip
import json
import os

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "examples", "weights")
M64 = (1 << 64) - 1
M32 = (1 << 32) - 1

# ---- qc's RandomStream (runtime/src/numerics/rng.rs) and shuffle (runtime/src/data/shuffle.rs)


def mix64(z):
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    return z ^ (z >> 31)


def hash32(x):
    x ^= x >> 16
    x = (x * 0x7FEB352D) & M32
    x ^= x >> 15
    x = (x * 0x846CA68B) & M32
    return x ^ (x >> 16)


class RandomStream:
    def __init__(self, seed, stream):
        key = mix64(((seed * 0x9E3779B97F4A7C15) & M64) ^ mix64(stream ^ 0xD1B54A32D192ED03))
        self.k0, self.k1 = key & M32, key >> 32

    def word(self, index, j):
        lo, hi = index & M32, (index >> 32) & M32
        return hash32(hash32(lo ^ self.k0 ^ ((j * 0x9E3779B9) & M32)) ^ hi ^ self.k1)


SPLIT_STREAM = 0xDA7A_0000_0000_0000
EPOCH_STREAM = 0xDA7A_0001_0000_0000
DIGITS_SPLIT_SEED = 1797


def shuffled_indices(n, stream):
    p = list(range(n))
    for i in range(n - 1, 0, -1):
        j = (stream.word(i, 0) * (i + 1)) >> 32
        p[i], p[j] = p[j], p[i]
    return np.array(p, dtype=np.int64)


def digits_split():
    rows = np.loadtxt(gzip.open(os.path.join(ROOT, "runtime", "data", "digits.csv.gz")), delimiter=",", dtype=np.int64)
    x = (rows[:, :64] / 16.0).astype(np.float32).reshape(-1, 8, 8, 1)
    y = rows[:, 64]
    order = shuffled_indices(len(y), RandomStream(DIGITS_SPLIT_SEED, SPLIT_STREAM))
    n_test = -(-len(y) // 5)
    train, test = order[: len(y) - n_test], order[len(y) - n_test :]
    # Pinned by runtime/tests/data_digits.rs: the same split as qc's.
    assert test[:8].tolist() == PINNED_TEST_START and int((order * np.arange(len(order))).sum()) == PINNED_CHECKSUM, (
        "the split differs from qc's"
    )
    return (x[train], y[train]), (x[test], y[test])


PINNED_TEST_START = [1118, 1740, 408, 428, 1008, 861, 750, 173]
PINNED_CHECKSUM = 1474136305


def epoch_batches(n, batch, seed, epoch):
    order = shuffled_indices(n, RandomStream(seed, (EPOCH_STREAM + epoch) & M64))
    return [order[i : i + batch] for i in range(0, n, batch)]


# ---- initialisers (spec/lang.md §5: fan_in = product of all axes but the first;
# fan_out = first axis × the axes between the first and the last)


def fans(shape):
    fan_in = int(np.prod(shape[1:]))
    fan_out = shape[0] * int(np.prod(shape[1:-1]))
    return fan_in, fan_out


def he_normal(rng, shape):
    return (rng.standard_normal(shape) * np.sqrt(2.0 / fans(shape)[0])).astype(np.float32)


def glorot_uniform(rng, shape):
    fan_in, fan_out = fans(shape)
    limit = np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-limit, limit, shape).astype(np.float32)


def zeros(shape):
    return np.zeros(shape, dtype=np.float32)


# ---- layers (NHWC; dense weights [out, in]; conv weights [O, KH, KW, C])


def softmax_cross_entropy(logits, y):
    z = logits - logits.max(axis=1, keepdims=True)
    p = np.exp(z)
    p /= p.sum(axis=1, keepdims=True)
    loss = -np.log(p[np.arange(len(y)), y] + 1e-30).mean()
    grad = p
    grad[np.arange(len(y)), y] -= 1.0
    return loss, (grad / len(y)).astype(np.float32)


def im2col3(x):
    """[N, H, W, C] -> [N·H·W, 9·C] with 'same' zero padding, columns in (kh, kw, c) order."""
    n, h, w, c = x.shape
    xp = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    win = np.lib.stride_tricks.sliding_window_view(xp, (3, 3), axis=(1, 2))  # [N, H, W, C, 3, 3]
    return win.transpose(0, 1, 2, 4, 5, 3).reshape(n * h * w, 9 * c)


def col2im3(dcols, shape):
    n, h, w, c = shape
    d = dcols.reshape(n, h, w, 3, 3, c)
    dxp = np.zeros((n, h + 2, w + 2, c), dtype=np.float32)
    for i in range(3):
        for j in range(3):
            dxp[:, i : i + h, j : j + w, :] += d[:, :, :, i, j, :]
    return dxp[:, 1:-1, 1:-1, :]


def conv_forward(x, w, b):
    cols = im2col3(x)
    out = cols @ w.reshape(w.shape[0], -1).T + b
    return out.reshape(x.shape[0], x.shape[1], x.shape[2], w.shape[0]), cols


def conv_backward(dout, cols, x_shape, w):
    d = dout.reshape(-1, w.shape[0])
    dw = (d.T @ cols).reshape(w.shape)
    db = d.sum(axis=0)
    dx = col2im3(d @ w.reshape(w.shape[0], -1), x_shape)
    return dx, dw, db


def maxpool2_forward(x):
    n, h, w, c = x.shape
    win = x.reshape(n, h // 2, 2, w // 2, 2, c).transpose(0, 1, 3, 5, 2, 4).reshape(n, h // 2, w // 2, c, 4)
    arg = win.argmax(axis=-1)
    return np.take_along_axis(win, arg[..., None], axis=-1)[..., 0], arg


def maxpool2_backward(dout, arg, x_shape):
    n, h, w, c = x_shape
    dwin = np.zeros((n, h // 2, w // 2, c, 4), dtype=np.float32)
    np.put_along_axis(dwin, arg[..., None], dout[..., None], axis=-1)
    return dwin.reshape(n, h // 2, w // 2, c, 2, 2).transpose(0, 1, 4, 2, 5, 3).reshape(x_shape)


# ---- models


def mlp_init(seed):
    rng = np.random.default_rng(seed)
    return {
        "w1": he_normal(rng, (128, 64)),
        "b1": zeros((128,)),
        "w2": he_normal(rng, (128, 128)),
        "b2": zeros((128,)),
        "w3": glorot_uniform(rng, (10, 128)),
        "b3": zeros((10,)),
    }


def mlp_forward(p, x, y=None):
    x = x.reshape(len(x), 64)
    z1 = x @ p["w1"].T + p["b1"]
    h1 = np.maximum(z1, 0)
    z2 = h1 @ p["w2"].T + p["b2"]
    h2 = np.maximum(z2, 0)
    logits = h2 @ p["w3"].T + p["b3"]
    if y is None:
        return logits
    loss, d = softmax_cross_entropy(logits, y)
    g = {"w3": d.T @ h2, "b3": d.sum(0)}
    d = (d @ p["w3"]) * (z2 > 0)
    g.update(w2=d.T @ h1, b2=d.sum(0))
    d = (d @ p["w2"]) * (z1 > 0)
    g.update(w1=d.T @ x, b1=d.sum(0))
    return loss, g


def lenet_init(seed):
    rng = np.random.default_rng(seed)
    return {
        "c1": he_normal(rng, (8, 3, 3, 1)),
        "c1_bias": zeros((8,)),
        "alpha1": np.array(6.0, dtype=np.float32),
        "c2": he_normal(rng, (16, 3, 3, 8)),
        "c2_bias": zeros((16,)),
        "fc1": he_normal(rng, (32, 64)),
        "fc1_bias": zeros((32,)),
        "fc2": glorot_uniform(rng, (10, 32)),
        "fc2_bias": zeros((10,)),
    }


def lenet_forward(p, x, y=None):
    z1, cols1 = conv_forward(x, p["c1"], p["c1_bias"])  # [N, 8, 8, 8]
    a1 = np.clip(z1, 0, p["alpha1"])  # pact
    p1, arg1 = maxpool2_forward(a1)  # [N, 4, 4, 8]
    z2, cols2 = conv_forward(p1, p["c2"], p["c2_bias"])  # [N, 4, 4, 16]
    a2 = np.maximum(z2, 0)
    p2, arg2 = maxpool2_forward(a2)  # [N, 2, 2, 16]
    f = p2.reshape(len(x), 64)  # flatten, NHWC order
    zh = f @ p["fc1"].T + p["fc1_bias"]
    h = np.maximum(zh, 0)
    logits = h @ p["fc2"].T + p["fc2_bias"]
    if y is None:
        return logits
    loss, d = softmax_cross_entropy(logits, y)
    g = {"fc2": d.T @ h, "fc2_bias": d.sum(0)}
    d = (d @ p["fc2"]) * (zh > 0)
    g.update(fc1=d.T @ f, fc1_bias=d.sum(0))
    d = maxpool2_backward((d @ p["fc1"]).reshape(p2.shape), arg2, a2.shape) * (z2 > 0)
    d, g["c2"], g["c2_bias"] = conv_backward(d, cols2, p1.shape, p["c2"])
    d = maxpool2_backward(d, arg1, a1.shape)
    # PACT: dy/dx = 1 on [0, alpha), dy/dalpha = 1 where x >= alpha.
    g["alpha1"] = np.array((d * (z1 >= p["alpha1"])).sum(), dtype=np.float32)
    d = d * ((z1 >= 0) & (z1 < p["alpha1"]))
    _, g["c1"], g["c1_bias"] = conv_backward(d, cols1, x.shape, p["c1"])
    return loss, g


# ---- optimizers and training


def sgd(params, lr, momentum, weight_decay):
    velocity = {k: np.zeros_like(v) for k, v in params.items()}

    def step(grads, scale):
        for k in params:
            g = grads[k] + weight_decay * params[k]
            velocity[k] = momentum * velocity[k] + g
            params[k] = (params[k] - lr * scale * velocity[k]).astype(np.float32)

    return step


def adam(params, lr, beta1=0.9, beta2=0.999, eps=1e-8):
    m = {k: np.zeros_like(v) for k, v in params.items()}
    v = {k: np.zeros_like(x) for k, x in params.items()}
    t = [0]

    def step(grads, scale):
        t[0] += 1
        for k in params:
            m[k] = beta1 * m[k] + (1 - beta1) * grads[k]
            v[k] = beta2 * v[k] + (1 - beta2) * grads[k] ** 2
            mhat = m[k] / (1 - beta1 ** t[0])
            vhat = v[k] / (1 - beta2 ** t[0])
            params[k] = (params[k] - lr * scale * mhat / (np.sqrt(vhat) + eps)).astype(np.float32)

    return step


def accuracy(forward, params, x, y):
    return float((forward(params, x).argmax(axis=1) == y).mean())


def train(name, forward, params, step, schedule, epochs, batch, seed, data):
    (xtr, ytr), (xte, yte) = data
    for epoch in range(epochs):
        scale = schedule(epoch)
        losses = []
        for idx in epoch_batches(len(ytr), batch, seed, epoch):
            loss, grads = forward(params, xtr[idx], ytr[idx])
            step(grads, scale)
            losses.append(loss)
        print(f"{name} epoch {epoch + 1:2d}: loss {np.mean(losses):.4f}  test accuracy {accuracy(forward, params, xte, yte):.4f}")
    return accuracy(forward, params, xtr, ytr), accuracy(forward, params, xte, yte)


def write_safetensors(path, tensors):
    """The safetensors layout: u64 LE header length, JSON header (space-padded to 8 bytes), data."""
    header, blobs, offset = {}, [], 0
    for name in sorted(tensors):
        a = np.asarray(tensors[name], dtype="<f4", order="C")  # keeps 0-d scalars 0-d
        header[name] = {"dtype": "F32", "shape": list(a.shape), "data_offsets": [offset, offset + a.nbytes]}
        blobs.append(a.tobytes())
        offset += a.nbytes
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(len(text).to_bytes(8, "little") + text + b"".join(blobs))


def main():
    data = digits_split()
    os.makedirs(OUT, exist_ok=True)
    results = {}

    epochs = 20
    params = mlp_init(seed=0)
    step = sgd(params, lr=0.1, momentum=0.9, weight_decay=5e-4)
    cosine = lambda e: 0.5 * (1 + np.cos(np.pi * e / epochs))
    results["mlp"] = train("mlp", mlp_forward, params, step, cosine, epochs, 32, 0, data)
    write_safetensors(os.path.join(OUT, "mlp.safetensors"), params)

    params = lenet_init(seed=7)
    step = adam(params, lr=1e-3)
    results["lenet"] = train("lenet", lenet_forward, params, step, lambda e: 0.5 ** (e // 10), 30, 64, 7, data)
    write_safetensors(os.path.join(OUT, "lenet.safetensors"), params)

    for name, (train_acc, test_acc) in results.items():
        print(f"{name}: float32 train accuracy {train_acc:.4f} ({round(train_acc * len(data[0][1]))}/{len(data[0][1])}), "
              f"test accuracy {test_acc:.4f} ({round(test_acc * len(data[1][1]))}/{len(data[1][1])})")


if __name__ == "__main__":
    main()
