"""The scikit-learn side of the k-means benchmark: Lloyd, one k-means++ init, the same data and thread count.

Reads the benchmark's matrix (raw little-endian f64, shape given on the command line), prints one JSON line.
"""
import json
import sys
import time

import numpy as np
from sklearn.cluster import KMeans
from threadpoolctl import threadpool_limits

path, rows, cols, k, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
x = np.fromfile(path, dtype="<f8").reshape(rows, cols)
with threadpool_limits(limits=threads):
    start = time.perf_counter()
    km = KMeans(n_clusters=k, init="k-means++", n_init=1, algorithm="lloyd", max_iter=300, tol=1e-4, random_state=0)
    km.fit(x)
    fit = time.perf_counter() - start
    start = time.perf_counter()
    labels = km.predict(x)
    predict = time.perf_counter() - start
print(json.dumps({"fit_s": fit, "predict_s": predict, "inertia": float(km.inertia_), "iterations": int(km.n_iter_)}))
