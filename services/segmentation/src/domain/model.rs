//! A trained model as the service keeps it: features, scaler, centroids, stable ids, labels and metrics; the whole
//! training pipeline (sample → scale → fit → assign everyone in parallel → profile) and online assignment.
use ndarray::{Array2, ArrayView1};
use serde::{Deserialize, Serialize};

use super::{
    clustering::{self, Algorithm, Centers, ClusteringError, Component, FitConfig, Scaler},
    features::Features,
};

/// One cluster of a model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cluster {
    /// Stable id.
    pub id: i32,
    /// Generated label.
    pub label: String,
    /// Customers assigned at training.
    pub size: i64,
    /// Centroid in scaled space (= z-scores against the population).
    pub z: Vec<f64>,
    /// Centroid in original units.
    pub original: Vec<f64>,
}

/// A trained model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelSpec {
    /// Feature names, in order.
    pub features: Vec<String>,
    /// Scaler.
    pub scaler: Scaler,
    /// Clusters.
    pub clusters: Vec<Cluster>,
    /// Inertia on the fitted sample (scaled space).
    pub inertia: f64,
    /// Mean silhouette on a sample.
    pub silhouette: f64,
    /// The algorithm.
    #[serde(default)]
    pub algorithm: Algorithm,
    /// Gaussian components, in cluster order (mixtures only).
    #[serde(default)]
    pub components: Vec<Component>,
}

/// Where a customer falls.
#[derive(Debug, Clone, PartialEq)]
pub struct Placement {
    /// Stable cluster id.
    pub cluster_id: i32,
    /// Distance to the centroid (scaled space).
    pub distance: f64,
    /// (feature, value, z-score, centroid z-score), the features that place it there first.
    pub contributions: Vec<(String, f64, f64, f64)>,
}

impl ModelSpec {
    /// The raw feature row of a customer.
    pub fn row(&self, f: &Features, now_ms: i64) -> Vec<f64> {
        self.features.iter().map(|n| f.value(n, now_ms).unwrap_or(0.0)).collect()
    }

    fn centers(&self) -> Centers {
        let k = self.clusters.len();
        let d = self.features.len();
        let centroids = Array2::from_shape_fn((k, d), |(i, j)| self.clusters[i].z[j]);
        let components = (self.algorithm == Algorithm::Gmm).then(|| self.components.clone());
        Centers { centroids, components }
    }

    /// Assigns one customer (online, as features change).
    pub fn place(&self, f: &Features, now_ms: i64) -> Placement {
        let raw = self.row(f, now_ms);
        let z: Vec<f64> = raw.iter().enumerate().map(|(j, x)| self.scaler.scale_one(j, *x)).collect();
        let (c, distance) = self.centers().place(ArrayView1::from(&z));
        let cluster = &self.clusters[c];
        // The features that pull the customer towards this centroid: those where the centroid stands out and the
        // customer stands out the same way.
        let mut contributions: Vec<(String, f64, f64, f64)> =
            self.features.iter().enumerate().map(|(j, n)| (n.clone(), raw[j], z[j], cluster.z[j])).collect();
        contributions.sort_by(|a, b| (b.3.abs() - (b.2 - b.3).abs()).total_cmp(&(a.3.abs() - (a.2 - a.3).abs())));
        Placement { cluster_id: cluster.id, distance, contributions }
    }

    /// The cluster with a stable id.
    pub fn cluster(&self, id: i32) -> Option<&Cluster> {
        self.clusters.iter().find(|c| c.id == id)
    }
}

/// Trains on everyone in `rows` (fitting on at most `sample` of them) and returns the model and every customer's
/// stable cluster id, in `rows` order. `previous` keeps ids stable across refits. `progress(phase, 0..1)`.
pub fn train(
    names: &[String],
    rows: &[Vec<f64>],
    sample: usize,
    cfg: &FitConfig,
    previous: Option<&ModelSpec>,
    progress: &dyn Fn(&str, f64),
) -> Result<(ModelSpec, Vec<i32>), ClusteringError> {
    let d = names.len();
    let n = rows.len();
    if n == 0 {
        return Err(ClusteringError::TooFewPoints { points: 0, k: cfg.k.unwrap_or(cfg.k_range.0) });
    }
    progress("sampling", 0.0);
    let all = Array2::from_shape_fn((n, d), |(i, j)| rows[i][j]);
    let idx = clustering::sample_indices(n, sample, cfg.seed);
    let mut fit_rows = all.select(ndarray::Axis(0), &idx);
    let scaler = Scaler::fit(names, fit_rows.view());
    scaler.transform(&mut fit_rows);
    progress("fitting", 0.05);
    let fit = clustering::fit(fit_rows.view(), cfg, &|p| progress("fitting", 0.05 + 0.75 * p))?;
    progress("assigning", 0.8);
    let mut scaled = all;
    scaler.transform(&mut scaled);
    // k-means was fitted on a sample: a few Lloyd passes over everyone move the centroids to where all the
    // customers are (mixtures keep their components).
    let mut centers = fit.centers.clone();
    if centers.components.is_none() && idx.len() < n {
        progress("refining", 0.82);
        centers.centroids = clustering::refine(scaled.view(), &centers.centroids, 3);
    }
    let labels = clustering::assign_to(scaled.view(), &centers);
    let centroids = &centers.centroids;
    let k = centroids.nrows();
    let original: Vec<Vec<f64>> =
        (0..k).map(|c| (0..d).map(|j| scaler.unscale_one(j, centroids[[c, j]])).collect()).collect();
    let prev: Vec<(i32, Vec<f64>)> = previous
        .filter(|p| p.features == names)
        .map(|p| p.clusters.iter().map(|c| (c.id, c.original.clone())).collect())
        .unwrap_or_default();
    let ids = clustering::stable_ids(&prev, &original, &scaler);
    let mut sizes = vec![0i64; k];
    for l in &labels {
        sizes[*l] += 1;
    }
    let clusters = (0..k)
        .map(|c| {
            let z: Vec<f64> = centroids.row(c).to_vec();
            Cluster {
                id: ids[c],
                label: clustering::label(names, &z),
                size: sizes[c],
                z,
                original: original[c].clone(),
            }
        })
        .collect();
    progress("done", 1.0);
    let spec = ModelSpec {
        features: names.to_vec(),
        scaler,
        clusters,
        inertia: fit.inertia,
        silhouette: fit.silhouette,
        algorithm: cfg.algorithm,
        components: centers.components.clone().unwrap_or_default(),
    };
    Ok((spec, labels.into_iter().map(|l| ids[l]).collect()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{DAY_MS, clustering::adjusted_rand_index, features::DEFAULT_MODEL_FEATURES};
    use crate::synthetic::from_synth;

    fn dataset(n: u64, seed: u64, now: i64) -> (Vec<Vec<f64>>, Vec<usize>, Vec<String>) {
        let names: Vec<String> = DEFAULT_MODEL_FEATURES.iter().map(|s| s.to_string()).collect();
        let spec = ModelSpec {
            features: names.clone(),
            scaler: Scaler { features: vec![] },
            clusters: vec![],
            inertia: 0.0,
            silhouette: 0.0,
            algorithm: Algorithm::KMeans,
            components: vec![],
        };
        let mut rows = Vec::new();
        let mut truth = Vec::new();
        for c in rapport_synth::customers(seed, n, now) {
            let f = from_synth(&c, now);
            rows.push(spec.row(&f, now));
            truth.push(c.persona);
        }
        (rows, truth, names)
    }

    #[test]
    fn recovers_planted_personas_with_readable_labels_and_stable_ids() {
        let now = 20_000 * DAY_MS;
        let (rows, truth, names) = dataset(3_000, 11, now);
        let cfg = FitConfig { k_range: (2, 8), ..FitConfig::default() };
        let (model, ids) = train(&names, &rows, 2_000, &cfg, None, &|_, _| {}).unwrap();
        let labels: Vec<usize> = ids.iter().map(|i| *i as usize).collect();
        let ari = adjusted_rand_index(&labels, &truth);
        assert!(ari >= 0.9, "ari {ari}, k {}", model.clusters.len());
        assert_eq!(model.clusters.len(), 4);
        // the label of the cluster holding most VIPs names their traits
        let vip_cluster = ids[truth.iter().position(|p| *p == 0).unwrap()];
        let vip_label = &model.cluster(vip_cluster).unwrap().label;
        for t in ["high value", "frequent", "mobile-first", "promoters"] {
            assert!(vip_label.contains(t), "{vip_label}");
        }
        let lapsing = &model.cluster(ids[truth.iter().position(|p| *p == 3).unwrap()]).unwrap().label;
        for t in ["lapsing", "complaining", "detractors"] {
            assert!(lapsing.contains(t), "{lapsing}");
        }
        // a refit on new data of the same population keeps the ids
        let (rows2, truth2, _) = dataset(3_000, 12, now);
        let cfg2 = FitConfig { seed: 99, ..cfg };
        let (model2, ids2) = train(&names, &rows2, 2_000, &cfg2, Some(&model), &|_, _| {}).unwrap();
        for persona in 0..4 {
            let before = ids[truth.iter().position(|p| *p == persona).unwrap()];
            let after = ids2[truth2.iter().position(|p| *p == persona).unwrap()];
            assert_eq!(before, after, "persona {persona} keeps its cluster id");
        }
        assert_eq!(model2.clusters.iter().map(|c| c.id).max(), Some(3));
    }

    #[test]
    fn a_gaussian_mixture_also_recovers_the_personas() {
        let now = 20_000 * DAY_MS;
        let (rows, truth, names) = dataset(2_000, 13, now);
        let cfg = FitConfig { algorithm: Algorithm::Gmm, k: Some(4), ..FitConfig::default() };
        let (model, ids) = train(&names, &rows, 2_000, &cfg, None, &|_, _| {}).unwrap();
        let labels: Vec<usize> = ids.iter().map(|i| *i as usize).collect();
        let ari = adjusted_rand_index(&labels, &truth);
        assert!(ari >= 0.85, "ari {ari}");
        assert_eq!(model.components.len(), 4);
        // online placement agrees with the batch assignment
        let c = rapport_synth::customer(13, 0, now);
        let placed = model.place(&from_synth(&c, now), now);
        assert_eq!(placed.cluster_id, ids[0]);
    }
}
