//! Clustering helpers shared by segmentation (customers) and improvement (complaint texts): greedy k-means++ seeds,
//! linfa's k-means run from them, deterministic samples, and the adjusted Rand index that tests and benchmarks
//! score clusterings with. CPU-heavy: callers run them off the async runtime.
use linfa::{DatasetBase, traits::Fit as _};
use linfa_clustering::{KMeans, KMeansInit};
use ndarray::{Array2, ArrayView1, ArrayView2};
use rand_xoshiro::{Xoshiro256Plus, rand_core::SeedableRng};

/// How linfa's k-means runs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct KMeansSettings {
    /// Seed of the k-means++ seeding (run `r` uses `seed + r`).
    pub seed: u64,
    /// Restarts from different seeds; the lowest inertia wins.
    pub n_runs: usize,
    /// Iteration cap of one run.
    pub max_iterations: u64,
    /// Convergence tolerance.
    pub tolerance: f64,
}

/// Why k-means could not run.
#[derive(Debug, Clone, PartialEq)]
pub enum KMeansError {
    /// Fewer points than clusters.
    TooFewPoints {
        /// Points.
        points: usize,
        /// Clusters.
        k: usize,
    },
    /// linfa failed.
    Linfa(String),
}

impl std::fmt::Display for KMeansError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::TooFewPoints { points, k } => write!(f, "{points} points cannot make {k} clusters"),
            Self::Linfa(e) => write!(f, "k-means: {e}"),
        }
    }
}

impl std::error::Error for KMeansError {}

/// Squared Euclidean distance.
pub fn sq_dist(a: ArrayView1<f64>, b: ArrayView1<f64>) -> f64 {
    a.iter().zip(b.iter()).map(|(x, y)| (x - y) * (x - y)).sum()
}

/// Greedy k-means++ seeding (as scikit-learn seeds): each new centre is the best of `2 + ln k` candidates drawn
/// with probability proportional to the squared distance to the nearest centre so far, "best" being the one that
/// lowers the total squared distance most. Plain k-means++ draws one candidate and lands in worse optima more often.
pub fn greedy_kmeans_pp(data: ArrayView2<f64>, k: usize, seed: u64) -> Array2<f64> {
    use rand_xoshiro::rand_core::RngCore;
    let (n, d) = data.dim();
    let mut rng = Xoshiro256Plus::seed_from_u64(seed);
    let mut unit = move || (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
    let trials = 2 + (k as f64).ln().floor() as usize;
    let mut centres = Array2::<f64>::zeros((k, d));
    let first = ((unit() * n as f64) as usize).min(n - 1);
    centres.row_mut(0).assign(&data.row(first));
    let mut closest: Vec<f64> = data.rows().into_iter().map(|r| sq_dist(r, data.row(first))).collect();
    for c in 1..k {
        let total: f64 = closest.iter().sum();
        let mut cumulative = Vec::with_capacity(n);
        let mut acc = 0.0;
        for v in &closest {
            acc += v;
            cumulative.push(acc);
        }
        let mut best: Option<(f64, usize, Vec<f64>)> = None;
        for _ in 0..trials {
            let target = unit() * total;
            let cand = cumulative.partition_point(|x| *x < target).min(n - 1);
            let dists: Vec<f64> =
                data.rows().into_iter().zip(&closest).map(|(r, old)| sq_dist(r, data.row(cand)).min(*old)).collect();
            let pot: f64 = dists.iter().sum();
            if best.as_ref().is_none_or(|b| pot < b.0) {
                best = Some((pot, cand, dists));
            }
        }
        if let Some((_, cand, dists)) = best {
            centres.row_mut(c).assign(&data.row(cand));
            closest = dists;
        }
    }
    centres
}

/// Sum of squared distances of every row to its nearest centroid.
pub fn inertia(data: ArrayView2<f64>, centroids: ArrayView2<f64>) -> f64 {
    data.rows()
        .into_iter()
        .map(|r| centroids.rows().into_iter().map(|c| sq_dist(r, c)).fold(f64::INFINITY, f64::min))
        .sum()
}

/// linfa's k-means from greedy k-means++ seeds, `n_runs` times with different seeds; the centroids of the lowest
/// inertia and that inertia.
pub fn kmeans(data: ArrayView2<f64>, k: usize, s: &KMeansSettings) -> Result<(Array2<f64>, f64), KMeansError> {
    if data.nrows() < k || k == 0 {
        return Err(KMeansError::TooFewPoints { points: data.nrows(), k });
    }
    let ds = DatasetBase::from(data.to_owned());
    let mut best: Option<(Array2<f64>, f64)> = None;
    for run in 0..s.n_runs.max(1) as u64 {
        let seeds = greedy_kmeans_pp(data, k, s.seed.wrapping_add(run));
        let model = KMeans::params_with_rng(k, Xoshiro256Plus::seed_from_u64(s.seed.wrapping_add(run)))
            .n_runs(1)
            .max_n_iterations(s.max_iterations)
            .tolerance(s.tolerance)
            .init_method(KMeansInit::Precomputed(seeds))
            .fit(&ds)
            .map_err(|e| KMeansError::Linfa(e.to_string()))?;
        let centroids = model.centroids().clone();
        let inertia = inertia(data, centroids.view());
        if best.as_ref().is_none_or(|b| inertia < b.1) {
            best = Some((centroids, inertia));
        }
    }
    best.ok_or(KMeansError::TooFewPoints { points: data.nrows(), k })
}

/// `max` distinct indices of `0..n`, sorted, deterministic for a seed (partial Fisher-Yates). Memory is O(`max`),
/// not O(`n`): only the displaced slots of the virtual `0..n` are kept, so sampling ten million customers costs
/// what the sample costs.
pub fn sample_indices(n: usize, max: usize, seed: u64) -> Vec<usize> {
    use rand_xoshiro::rand_core::RngCore;
    let mut rng = Xoshiro256Plus::seed_from_u64(seed);
    let m = max.min(n);
    let mut moved: std::collections::HashMap<usize, usize> = std::collections::HashMap::with_capacity(2 * m);
    let mut idx = Vec::with_capacity(m);
    for i in 0..m {
        let j = i + (rng.next_u64() % (n - i) as u64) as usize;
        let at_i = moved.get(&i).copied().unwrap_or(i);
        let at_j = moved.get(&j).copied().unwrap_or(j);
        moved.insert(j, at_i);
        moved.remove(&i);
        idx.push(at_j);
    }
    idx.sort_unstable();
    idx
}

/// Adjusted Rand index of two labelings (1 = identical partitions, about 0 = chance).
pub fn adjusted_rand_index(a: &[usize], b: &[usize]) -> f64 {
    use std::collections::HashMap;
    let c2 = |n: f64| n * (n - 1.0) / 2.0;
    let mut table: HashMap<(usize, usize), f64> = HashMap::new();
    let mut ra: HashMap<usize, f64> = HashMap::new();
    let mut rb: HashMap<usize, f64> = HashMap::new();
    for (x, y) in a.iter().zip(b) {
        *table.entry((*x, *y)).or_default() += 1.0;
        *ra.entry(*x).or_default() += 1.0;
        *rb.entry(*y).or_default() += 1.0;
    }
    let index: f64 = table.values().map(|n| c2(*n)).sum();
    let sa: f64 = ra.values().map(|n| c2(*n)).sum();
    let sb: f64 = rb.values().map(|n| c2(*n)).sum();
    let total = c2(a.len() as f64);
    let expected = sa * sb / total;
    let max = (sa + sb) / 2.0;
    if (max - expected).abs() < f64::EPSILON { 1.0 } else { (index - expected) / (max - expected) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ari_by_hand() {
        assert!((adjusted_rand_index(&[0, 0, 1, 1], &[5, 5, 7, 7]) - 1.0).abs() < 1e-12);
        // Pairs: a = {01, 23}, b = {01}: index 1, sa 2, sb 1, total 6, expected 1/3, max 1.5 → (1 - 1/3) / (7/6).
        let ari = adjusted_rand_index(&[0, 0, 1, 1], &[0, 0, 1, 2]);
        assert!((ari - (2.0 / 3.0) / (7.0 / 6.0)).abs() < 1e-12, "{ari}");
    }

    #[test]
    fn kmeans_finds_two_blobs_the_same_way_twice() {
        let rows: Vec<f64> = (0..40)
            .flat_map(|i| if i < 20 { [0.0 + i as f64 * 0.01, 0.0] } else { [5.0, 5.0 + i as f64 * 0.01] })
            .collect();
        let data = Array2::from_shape_vec((40, 2), rows).unwrap();
        let s = KMeansSettings { seed: 7, n_runs: 2, max_iterations: 50, tolerance: 1e-6 };
        let (c1, i1) = kmeans(data.view(), 2, &s).unwrap();
        let (c2, i2) = kmeans(data.view(), 2, &s).unwrap();
        assert_eq!((c1.clone(), i1), (c2, i2));
        assert!(i1 < 1.0, "{i1}");
        assert!(matches!(kmeans(data.view(), 41, &s), Err(KMeansError::TooFewPoints { .. })));
        assert_eq!(sample_indices(10, 3, 1), sample_indices(10, 3, 1));
        assert_eq!(sample_indices(3, 10, 1), vec![0, 1, 2]);
    }

    /// The sparse sampler picks what a dense partial Fisher-Yates over `0..n` picks.
    #[test]
    fn sparse_sampling_equals_the_dense_shuffle() {
        use rand_xoshiro::rand_core::RngCore;
        for (n, m, seed) in [(10, 3, 1), (1000, 999, 2), (1000, 1000, 3), (5000, 100, 4), (1, 1, 5)] {
            let mut rng = Xoshiro256Plus::seed_from_u64(seed);
            let mut dense: Vec<usize> = (0..n).collect();
            for i in 0..m {
                let j = i + (rng.next_u64() % (n - i) as u64) as usize;
                dense.swap(i, j);
            }
            dense.truncate(m);
            dense.sort_unstable();
            assert_eq!(sample_indices(n, m, seed), dense, "n {n}, m {m}");
        }
    }
}
