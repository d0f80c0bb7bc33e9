import sys, time, numpy as np, nnbackend as nb
rng = np.random.default_rng(0)
X = rng.normal(size=(1_000_000, 32)); X[:, 0] += 1e7
y = (X[:, 1] > 0).astype(np.float64)
best = []
for _ in range(3):
    m = nb.MLP([32, 16, 1], loss="bce", standardize=True, seed=0)
    t = time.perf_counter(); m._features(X, fit_scaling=True); best.append(time.perf_counter() - t)
m = nb.MLP([32, 16, 1], loss="bce", standardize=True, seed=0)
h = m.fit(X[:20000], y[:20000], epochs=5, lr=0.5)
print(sys.argv[1],
      "features+scaler 1e6x32 float64 -> float32: %.0f ms (min of 3)" % (1e3 * min(best)),
      "| 2e4 rows, 5 epochs: accuracy %.4f" % m.evaluate(X[:20000], y[:20000])["accuracy"],
      "| distinct values of column 0 after scaling:",
      len(np.unique(np.asarray(m._features(X[:20000])[:, 0]))))
