# Run from a folder holding X.npy (4e6 x 2 float32) and y.npy; see README.md.
import resource, sys, time, numpy as np, nnbackend as nb
from nnbackend.backends.dask.chunks import open_npy
X = open_npy("X.npy"); y = np.load("y.npy")
m = nb.MLP([2, 64, 1], hidden_activation="relu", loss="bce", backend="dask", seed=0)
t = time.perf_counter(); r = m.evaluate(X, y); dt = time.perf_counter() - t
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(sys.argv[1], r, "%.2f s" % dt, "maxrss %.0f MiB" % peak)
