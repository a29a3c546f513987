//! Clustering customers: robust scaling (log for skewed money and counts, then standardisation), linfa k-means
//! with k-means++ (k given, or chosen by silhouette on a sample), parallel assignment, stable cluster ids across
//! refits, and readable profiles with generated labels. CPU-heavy: callers run it off the async runtime.
use linfa::{DatasetBase, traits::Fit as _};
use linfa_clustering::GaussianMixtureModel;
use ndarray::{Array2, ArrayView1, ArrayView2, Axis};
use rand_xoshiro::{Xoshiro256Plus, rand_core::SeedableRng};
pub use rapport_stats::cluster::{self, adjusted_rand_index, greedy_kmeans_pp, inertia, sample_indices, sq_dist};
use serde::{Deserialize, Serialize};

use super::features::is_skewed;

/// How one feature is scaled.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScaledFeature {
    /// Feature name.
    pub name: String,
    /// `ln(1 + x)` before standardising.
    pub log: bool,
    /// Mean after the log.
    pub mean: f64,
    /// Standard deviation after the log (1 when constant).
    pub std: f64,
}

/// The scaler of a model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scaler {
    /// Per feature, in model order.
    pub features: Vec<ScaledFeature>,
}

impl Scaler {
    /// Fits on raw rows (one column per feature in `names`).
    pub fn fit(names: &[String], raw: ArrayView2<f64>) -> Self {
        let features = names
            .iter()
            .enumerate()
            .map(|(j, name)| {
                let log = is_skewed(name);
                let col: Vec<f64> = raw.column(j).iter().map(|x| if log { x.max(0.0).ln_1p() } else { *x }).collect();
                let n = col.len().max(1) as f64;
                let mean = col.iter().sum::<f64>() / n;
                let var = col.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n;
                let std = if var.sqrt() < 1e-12 { 1.0 } else { var.sqrt() };
                ScaledFeature { name: name.clone(), log, mean, std }
            })
            .collect();
        Self { features }
    }

    /// The scaled value of feature `j`.
    pub fn scale_one(&self, j: usize, x: f64) -> f64 {
        let f = &self.features[j];
        let v = if f.log { x.max(0.0).ln_1p() } else { x };
        (v - f.mean) / f.std
    }

    /// Back to original units.
    pub fn unscale_one(&self, j: usize, z: f64) -> f64 {
        let f = &self.features[j];
        let v = z * f.std + f.mean;
        if f.log { v.exp_m1() } else { v }
    }

    /// Scales rows in place.
    pub fn transform(&self, raw: &mut Array2<f64>) {
        for mut row in raw.rows_mut() {
            for (j, x) in row.iter_mut().enumerate() {
                *x = self.scale_one(j, *x);
            }
        }
    }
}

/// The clustering algorithm.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Algorithm {
    /// k-means (k-means++ initialisation): hard clusters around centroids.
    #[default]
    KMeans,
    /// A Gaussian mixture (full covariances): customers go to their most likely component.
    Gmm,
}

/// A Gaussian component in scaled space (its mean is the cluster's centroid).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Component {
    /// ln of the mixing weight.
    pub log_weight: f64,
    /// Precision matrix (inverse covariance), row-major d × d.
    pub precision: Vec<f64>,
    /// ½ ln det(precision).
    pub half_log_det: f64,
}

impl Component {
    /// Log-likelihood of `x` under the component, up to a constant shared by all components.
    pub fn score(&self, x: ArrayView1<f64>, mean: ArrayView1<f64>) -> f64 {
        let d = x.len();
        let diff: Vec<f64> = x.iter().zip(mean.iter()).map(|(a, b)| a - b).collect();
        let mut q = 0.0;
        for i in 0..d {
            for j in 0..d {
                q += diff[i] * self.precision[i * d + j] * diff[j];
            }
        }
        self.log_weight + self.half_log_det - 0.5 * q
    }
}

/// ½ ln det of a symmetric positive-definite matrix (Cholesky); `None` when it is not positive definite.
pub fn half_log_det(m: &[f64], d: usize) -> Option<f64> {
    let mut l = vec![0.0; d * d];
    for i in 0..d {
        for j in 0..=i {
            let mut sum = m[i * d + j];
            for k in 0..j {
                sum -= l[i * d + k] * l[j * d + k];
            }
            if i == j {
                if sum <= 0.0 {
                    return None;
                }
                l[i * d + i] = sum.sqrt();
            } else {
                l[i * d + j] = sum / l[j * d + j];
            }
        }
    }
    Some((0..d).map(|i| l[i * d + i].ln()).sum())
}

/// Fitted cluster centres: centroids, and the Gaussian components for a mixture.
#[derive(Debug, Clone)]
pub struct Centers {
    /// Centroids (k × features), scaled.
    pub centroids: Array2<f64>,
    /// Components, for [`Algorithm::Gmm`].
    pub components: Option<Vec<Component>>,
}

impl Centers {
    /// The cluster of one scaled row, and its distance to the centroid.
    pub fn place(&self, row: ArrayView1<f64>) -> (usize, f64) {
        match &self.components {
            None => {
                let (c, d2) = nearest(row, self.centroids.view());
                (c, d2.sqrt())
            }
            Some(comps) => {
                let mut best = (0, f64::NEG_INFINITY);
                for (c, comp) in comps.iter().enumerate() {
                    let s = comp.score(row, self.centroids.row(c));
                    if s > best.1 {
                        best = (c, s);
                    }
                }
                (best.0, sq_dist(row, self.centroids.row(best.0)).sqrt())
            }
        }
    }
}

/// How to fit.
#[derive(Debug, Clone)]
pub struct FitConfig {
    /// Algorithm.
    pub algorithm: Algorithm,
    /// Clusters; `None` = choose in `k_range` by silhouette.
    pub k: Option<usize>,
    /// Range to choose k from (inclusive).
    pub k_range: (usize, usize),
    /// k-means++ restarts (the best inertia wins).
    pub n_runs: usize,
    /// Iteration cap.
    pub max_iterations: u64,
    /// Convergence tolerance.
    pub tolerance: f64,
    /// Points used for silhouettes.
    pub silhouette_sample: usize,
    /// Seed.
    pub seed: u64,
}

impl Default for FitConfig {
    fn default() -> Self {
        Self {
            algorithm: Algorithm::KMeans,
            k: None,
            k_range: (2, 10),
            n_runs: 1,
            max_iterations: 200,
            tolerance: 1e-4,
            silhouette_sample: 2_000,
            seed: 42,
        }
    }
}

/// A fitted clustering in scaled space.
#[derive(Debug, Clone)]
pub struct Fit {
    /// Centres.
    pub centers: Centers,
    /// Sum of squared distances of the fitted points to their centroid.
    pub inertia: f64,
    /// Mean silhouette on a sample.
    pub silhouette: f64,
}

/// Why fitting failed.
#[derive(Debug, thiserror::Error)]
pub enum ClusteringError {
    /// Not enough points for the clusters asked.
    #[error("{points} customers cannot make {k} clusters")]
    TooFewPoints {
        /// Points.
        points: usize,
        /// Clusters.
        k: usize,
    },
    /// linfa failed.
    #[error("k-means: {0}")]
    KMeans(String),
    /// linfa's Gaussian mixture failed.
    #[error("gaussian mixture: {0}")]
    Gmm(String),
}

/// Fits a Gaussian mixture (full covariances, k-means initialisation) on scaled rows.
pub fn gmm(data: ArrayView2<f64>, k: usize, cfg: &FitConfig) -> Result<Centers, ClusteringError> {
    if data.nrows() < k || k == 0 {
        return Err(ClusteringError::TooFewPoints { points: data.nrows(), k });
    }
    let ds = DatasetBase::from(data.to_owned());
    let model = GaussianMixtureModel::params_with_rng(k, Xoshiro256Plus::seed_from_u64(cfg.seed))
        .n_runs(cfg.n_runs.max(1) as u64)
        .max_n_iterations(cfg.max_iterations)
        .tolerance(1e-3)
        .reg_covariance(1e-6)
        .fit(&ds)
        .map_err(|e| ClusteringError::Gmm(e.to_string()))?;
    let d = data.ncols();
    let mut components = Vec::with_capacity(k);
    for c in 0..k {
        let precision: Vec<f64> = model.precisions().index_axis(Axis(0), c).iter().copied().collect();
        let half =
            half_log_det(&precision, d).ok_or_else(|| ClusteringError::Gmm("a covariance is singular".into()))?;
        components.push(Component {
            log_weight: model.weights()[c].max(f64::MIN_POSITIVE).ln(),
            precision,
            half_log_det: half,
        });
    }
    Ok(Centers { centroids: model.means().clone(), components: Some(components) })
}

fn centers(data: ArrayView2<f64>, k: usize, cfg: &FitConfig) -> Result<Centers, ClusteringError> {
    match cfg.algorithm {
        Algorithm::KMeans => kmeans(data, k, cfg).map(|(centroids, _)| Centers { centroids, components: None }),
        Algorithm::Gmm => gmm(data, k, cfg),
    }
}

/// Runs linfa k-means on scaled rows from greedy k-means++ seeds, `n_runs` times with different seeds; the lowest
/// inertia wins.
pub fn kmeans(data: ArrayView2<f64>, k: usize, cfg: &FitConfig) -> Result<(Array2<f64>, f64), ClusteringError> {
    let settings = cluster::KMeansSettings {
        seed: cfg.seed,
        n_runs: cfg.n_runs,
        max_iterations: cfg.max_iterations,
        tolerance: cfg.tolerance,
    };
    cluster::kmeans(data, k, &settings).map_err(|e| match e {
        cluster::KMeansError::TooFewPoints { points, k } => ClusteringError::TooFewPoints { points, k },
        cluster::KMeansError::Linfa(e) => ClusteringError::KMeans(e),
    })
}

/// Fits on scaled rows: k given, or the best silhouette in the range. `progress` gets 0..1.
pub fn fit(data: ArrayView2<f64>, cfg: &FitConfig, progress: &dyn Fn(f64)) -> Result<Fit, ClusteringError> {
    let sample = sample_rows(data, cfg.silhouette_sample, cfg.seed);
    let ks: Vec<usize> = match cfg.k {
        Some(k) => vec![k],
        None => (cfg.k_range.0.max(2)..=cfg.k_range.1.max(cfg.k_range.0.max(2))).collect(),
    };
    let mut best: Option<Fit> = None;
    for (i, k) in ks.iter().enumerate() {
        let centers = centers(data, *k, cfg)?;
        let labels = assign_to(sample.view(), &centers);
        let silhouette = silhouette(sample.view(), &labels, *k);
        let inertia = inertia(data, centers.centroids.view());
        tracing::debug!(k, inertia, silhouette, "clustering fitted");
        if best.as_ref().is_none_or(|b| silhouette > b.silhouette) {
            best = Some(Fit { centers, inertia, silhouette });
        }
        progress((i + 1) as f64 / ks.len() as f64);
    }
    best.ok_or(ClusteringError::TooFewPoints { points: data.nrows(), k: 0 })
}

/// The nearest centroid of one scaled row, and the squared distance.
pub fn nearest(row: ArrayView1<f64>, centroids: ArrayView2<f64>) -> (usize, f64) {
    let mut best = (0, f64::INFINITY);
    for (c, centroid) in centroids.rows().into_iter().enumerate() {
        let d = sq_dist(row, centroid);
        if d < best.1 {
            best = (c, d);
        }
    }
    best
}

/// Nearest centroid of every row, in parallel chunks over the machine's cores.
pub fn assign(data: ArrayView2<f64>, centroids: ArrayView2<f64>) -> Vec<usize> {
    let n = data.nrows();
    let threads = std::thread::available_parallelism().map(|t| t.get()).unwrap_or(1).min(n.max(1));
    let chunk = n.div_ceil(threads.max(1)).max(1);
    let mut out = vec![0usize; n];
    std::thread::scope(|s| {
        for (part, rows) in out.chunks_mut(chunk).zip(data.axis_chunks_iter(Axis(0), chunk)) {
            s.spawn(move || {
                for (slot, row) in part.iter_mut().zip(rows.rows()) {
                    *slot = nearest(row, centroids).0;
                }
            });
        }
    });
    out
}

/// Lloyd iterations over all rows from given centroids (a fit on a sample, refined on everyone): each assigns in
/// parallel and moves every centroid to the mean of its rows. Stops early when nothing moves.
pub fn refine(data: ArrayView2<f64>, centroids: &Array2<f64>, iterations: usize) -> Array2<f64> {
    let mut c = centroids.clone();
    for _ in 0..iterations {
        let mut pass = LloydPass::new(c.view());
        pass.add(data);
        if pass.finish(&mut c) < 1e-10 {
            break;
        }
    }
    c
}

/// One Lloyd iteration, fed rows page by page: each row counts for its nearest centroid, then every centroid moves
/// to the mean of its rows (one with none stays).
pub struct LloydPass {
    centroids: Array2<f64>,
    sums: Array2<f64>,
    counts: Vec<usize>,
}

impl LloydPass {
    /// A pass from these centroids.
    pub fn new(centroids: ArrayView2<f64>) -> Self {
        let (k, d) = centroids.dim();
        Self { centroids: centroids.to_owned(), sums: Array2::zeros((k, d)), counts: vec![0; k] }
    }

    /// Counts scaled rows (assigned in parallel).
    pub fn add(&mut self, data: ArrayView2<f64>) {
        for (row, l) in data.rows().into_iter().zip(assign(data, self.centroids.view())) {
            self.counts[l] += 1;
            let mut s = self.sums.row_mut(l);
            s += &row;
        }
    }

    /// Moves `centroids` to the means and returns how far they moved (sum of squared distances).
    pub fn finish(self, centroids: &mut Array2<f64>) -> f64 {
        let mut moved = 0.0;
        for (j, n) in self.counts.iter().enumerate() {
            if *n == 0 {
                continue;
            }
            let mean = self.sums.row(j).mapv(|v| v / *n as f64);
            moved += sq_dist(mean.view(), centroids.row(j));
            centroids.row_mut(j).assign(&mean);
        }
        moved
    }
}

/// The cluster of every row (nearest centroid, or most likely component), in parallel chunks.
pub fn assign_to(data: ArrayView2<f64>, centers: &Centers) -> Vec<usize> {
    if centers.components.is_none() {
        return assign(data, centers.centroids.view());
    }
    let n = data.nrows();
    let threads = std::thread::available_parallelism().map(|t| t.get()).unwrap_or(1).min(n.max(1));
    let chunk = n.div_ceil(threads.max(1)).max(1);
    let mut out = vec![0usize; n];
    std::thread::scope(|s| {
        for (part, rows) in out.chunks_mut(chunk).zip(data.axis_chunks_iter(Axis(0), chunk)) {
            s.spawn(move || {
                for (slot, row) in part.iter_mut().zip(rows.rows()) {
                    *slot = centers.place(row).0;
                }
            });
        }
    });
    out
}

/// Mean silhouette of labelled rows (O(n²): use a sample).
pub fn silhouette(data: ArrayView2<f64>, labels: &[usize], k: usize) -> f64 {
    let n = data.nrows();
    if n < 2 || k < 2 {
        return 0.0;
    }
    let mut total = 0.0;
    for i in 0..n {
        let mut sums = vec![0.0; k];
        let mut counts = vec![0usize; k];
        for j in 0..n {
            if i != j {
                sums[labels[j]] += sq_dist(data.row(i), data.row(j)).sqrt();
                counts[labels[j]] += 1;
            }
        }
        let own = labels[i];
        if counts[own] == 0 {
            continue;
        }
        let a = sums[own] / counts[own] as f64;
        let b = (0..k)
            .filter(|c| *c != own && counts[*c] > 0)
            .map(|c| sums[c] / counts[c] as f64)
            .fold(f64::INFINITY, f64::min);
        if b.is_finite() {
            total += (b - a) / a.max(b);
        }
    }
    total / n as f64
}

/// A deterministic sample of at most `max` rows.
pub fn sample_rows(data: ArrayView2<f64>, max: usize, seed: u64) -> Array2<f64> {
    let n = data.nrows();
    if n <= max {
        return data.to_owned();
    }
    let idx = sample_indices(n, max, seed);
    data.select(Axis(0), &idx)
}

/// Stable ids for new centroids: each takes the id of the nearest previous centroid (compared in original units,
/// scaled with the new scaler), greedily closest pair first; new clusters get fresh ids.
pub fn stable_ids(previous: &[(i32, Vec<f64>)], new_original: &[Vec<f64>], scaler: &Scaler) -> Vec<i32> {
    let z = |v: &[f64]| v.iter().enumerate().map(|(j, x)| scaler.scale_one(j, *x)).collect::<Vec<f64>>();
    let new_z: Vec<Vec<f64>> = new_original.iter().map(|v| z(v)).collect();
    let prev_z: Vec<(i32, Vec<f64>)> = previous.iter().map(|(id, v)| (*id, z(v))).collect();
    let mut pairs: Vec<(f64, usize, usize)> = Vec::new();
    for (i, n) in new_z.iter().enumerate() {
        for (p, (_, v)) in prev_z.iter().enumerate() {
            if v.len() == n.len() {
                pairs.push((n.iter().zip(v).map(|(a, b)| (a - b).powi(2)).sum(), i, p));
            }
        }
    }
    pairs.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut ids = vec![-1; new_z.len()];
    let mut used = vec![false; prev_z.len()];
    for (_, i, p) in pairs {
        if ids[i] < 0 && !used[p] {
            ids[i] = prev_z[p].0;
            used[p] = true;
        }
    }
    let mut next = previous.iter().map(|(id, _)| *id).max().unwrap_or(-1) + 1;
    for id in &mut ids {
        if *id < 0 {
            *id = next;
            next += 1;
        }
    }
    ids
}

/// A readable label from a centroid's z-scores: the traits that stand out.
pub fn label(names: &[String], z: &[f64]) -> String {
    let get = |n: &str| names.iter().position(|x| x == n).map(|j| z[j]);
    let mut traits = Vec::new();
    let mut say = |name: &str, high: &'static str, low: &'static str, t: f64| {
        if let Some(v) = get(name) {
            if v >= t {
                traits.push(high);
            } else if v <= -t && !low.is_empty() {
                traits.push(low);
            }
        }
    };
    say("monetary_365d", "high value", "low value", 0.5);
    say("frequency_365d", "frequent", "occasional", 0.5);
    say("recency_days", "lapsing", "", 0.8);
    say("channel_mix.mobile", "mobile-first", "", 0.8);
    say("channel_mix.store", "in-store", "", 0.8);
    say("complaints_90d", "complaining", "", 0.8);
    say("last_nps", "promoters", "detractors", 0.6);
    if traits.is_empty() { "average".to_string() } else { traits.join(" · ") }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    fn blobs() -> (Array2<f64>, Vec<usize>) {
        let centers = [[0.0, 0.0], [10.0, 10.0], [0.0, 10.0]];
        let mut rows = Vec::new();
        let mut truth = Vec::new();
        for i in 0..300 {
            let c = i % 3;
            let jitter = ((i * 7919) % 100) as f64 / 100.0 - 0.5;
            let jitter2 = ((i * 104_729) % 100) as f64 / 100.0 - 0.5;
            rows.extend_from_slice(&[centers[c][0] + jitter, centers[c][1] + jitter2]);
            truth.push(c);
        }
        (Array2::from_shape_vec((300, 2), rows).unwrap(), truth)
    }

    #[test]
    fn recovers_blobs_and_chooses_k_by_silhouette() {
        let (data, truth) = blobs();
        let cfg = FitConfig { k_range: (2, 6), ..FitConfig::default() };
        let fit = fit(data.view(), &cfg, &|_| {}).unwrap();
        assert_eq!(fit.centers.centroids.nrows(), 3);
        let labels = assign(data.view(), fit.centers.centroids.view());
        assert!((adjusted_rand_index(&labels, &truth) - 1.0).abs() < 1e-9);
        assert!(fit.silhouette > 0.8);
    }

    #[test]
    fn greedy_seeding_picks_one_point_per_blob() {
        let (data, truth) = blobs();
        let seeds = greedy_kmeans_pp(data.view(), 3, 7);
        let labels = assign(data.view(), seeds.view());
        assert!((adjusted_rand_index(&labels, &truth) - 1.0).abs() < 1e-9);
    }

    #[test]
    fn refining_never_raises_inertia() {
        let (data, _) = blobs();
        let rough = array![[1.0, 1.0], [9.0, 9.0], [1.0, 9.0]];
        let refined = refine(data.view(), &rough, 5);
        assert!(inertia(data.view(), refined.view()) <= inertia(data.view(), rough.view()));
        assert!((refined[[0, 0]] - 0.0).abs() < 0.1);
    }

    #[test]
    fn a_gaussian_mixture_recovers_blobs_too() {
        let (data, truth) = blobs();
        let cfg = FitConfig { algorithm: Algorithm::Gmm, k: Some(3), ..FitConfig::default() };
        let fit = fit(data.view(), &cfg, &|_| {}).unwrap();
        let labels = assign_to(data.view(), &fit.centers);
        assert!((adjusted_rand_index(&labels, &truth) - 1.0).abs() < 1e-9);
        assert!(fit.centers.components.as_ref().is_some_and(|c| c.len() == 3));
    }

    #[test]
    fn half_log_det_of_known_matrices() {
        assert!((half_log_det(&[4.0, 0.0, 0.0, 9.0], 2).unwrap() - 0.5 * 36f64.ln()).abs() < 1e-12);
        assert!(half_log_det(&[1.0, 2.0, 2.0, 1.0], 2).is_none());
    }

    #[test]
    fn scaler_round_trips_and_logs_skewed_features() {
        let names = vec!["monetary_365d".to_string(), "last_nps".to_string()];
        let raw = array![[0.0, 0.0], [100.0, 10.0], [1000.0, 5.0]];
        let s = Scaler::fit(&names, raw.view());
        assert!(s.features[0].log && !s.features[1].log);
        for (j, x) in [(0, 100.0), (1, 5.0)] {
            assert!((s.unscale_one(j, s.scale_one(j, x)) - x).abs() < 1e-9);
        }
    }

    #[test]
    fn stable_ids_follow_the_nearest_previous_centroid() {
        let names = vec!["a".to_string(), "b".to_string()];
        let s = Scaler::fit(&names, array![[0.0, 0.0], [10.0, 10.0]].view());
        let previous = vec![(7, vec![0.0, 0.0]), (3, vec![10.0, 10.0])];
        let new = vec![vec![9.5, 10.2], vec![0.3, -0.1], vec![5.0, 50.0]];
        assert_eq!(stable_ids(&previous, &new, &s), vec![3, 7, 8]);
    }

    #[test]
    fn labels_name_the_traits() {
        let names: Vec<String> = ["monetary_365d", "frequency_365d", "channel_mix.mobile", "last_nps"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(label(&names, &[1.2, 0.9, 1.5, 1.0]), "high value · frequent · mobile-first · promoters");
        assert_eq!(label(&names, &[0.0, 0.0, 0.0, 0.0]), "average");
    }

    #[test]
    fn ari_of_relabelled_partitions_is_one_and_of_noise_is_low() {
        assert!((adjusted_rand_index(&[0, 0, 1, 1, 2, 2], &[5, 5, 3, 3, 9, 9]) - 1.0).abs() < 1e-12);
        let a: Vec<usize> = (0..1000).map(|i| i % 2).collect();
        let b: Vec<usize> = (0..1000).map(|i| (i / 2) % 2).collect();
        assert!(adjusted_rand_index(&a, &b).abs() < 0.05);
    }
}
