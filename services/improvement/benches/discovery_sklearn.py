"""The scikit-learn side of the discovery benchmark: TF-IDF (accents stripped, sublinear, min_df=2), LSA (100
components), unit rows, k-means (k given, one k-means++ init) on the same texts. Prints one JSON line with the times,
the peak memory of this process and the labels' adjusted Rand index against the planted themes.

Reads a TSV (label<TAB>text) given on the command line.
"""
import json
import resource
import sys
import time

from sklearn.cluster import KMeans
from sklearn.decomposition import TruncatedSVD
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.metrics import adjusted_rand_score
from sklearn.preprocessing import Normalizer

path, k = sys.argv[1], int(sys.argv[2])
rows = [line.rstrip("\n").split("\t", 1) for line in open(path, encoding="utf-8")]
labels = [r[0] for r in rows]
texts = [r[1] for r in rows]
start = time.perf_counter()
x = TfidfVectorizer(strip_accents="unicode", sublinear_tf=True, min_df=2).fit_transform(texts)
z = Normalizer(copy=False).fit_transform(TruncatedSVD(100, random_state=0).fit_transform(x))
found = KMeans(n_clusters=k, n_init=1, random_state=0).fit_predict(z)
seconds = time.perf_counter() - start
peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"seconds": seconds, "peak_mb": peak_mb, "ari": adjusted_rand_score(labels, found)}))
