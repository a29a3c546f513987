//! A trained model as the service keeps it: features, scaler, centroids, stable ids, labels and metrics; the whole
//! training pipeline (sample → scale → fit → assign everyone in parallel → profile) and online assignment.
use ndarray::{Array2, ArrayView1, ArrayView2};
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

/// What a pass hands each page to: the customers' ids and their raw feature rows.
pub type Visit<'a, Id, E> = dyn FnMut(&[Id], ArrayView2<f64>) -> Result<(), E> + 'a;
/// What placing everyone hands each page to: the customers' ids and their stable cluster ids.
pub type Placed<'a, Id, E> = dyn FnMut(&[Id], &[i32]) -> Result<(), E> + 'a;

/// Customers read page by page, the same pages in the same order on every pass: training keeps a sample and one
/// page in memory, whatever the number of customers.
pub trait Pages {
    /// What identifies a customer.
    type Id;
    /// What reading a page (or handling it) can fail with.
    type Error: From<ClusteringError>;
    /// How many customers a pass visits (a pass that finds more or fewer is still correct: the sample is drawn
    /// from the first `count`).
    fn count(&mut self) -> Result<usize, Self::Error>;
    /// Visits every page in order: the customers' ids and their raw feature rows (one row per id).
    fn pass(&mut self, visit: &mut Visit<'_, Self::Id, Self::Error>) -> Result<(), Self::Error>;
}

/// Rows already in memory, as pages (the model's own tests and small populations).
struct InMemory<'a> {
    rows: &'a [Vec<f64>],
    page: usize,
}

impl Pages for InMemory<'_> {
    type Id = usize;
    type Error = ClusteringError;
    fn count(&mut self) -> Result<usize, ClusteringError> {
        Ok(self.rows.len())
    }
    fn pass(&mut self, visit: &mut Visit<'_, usize, ClusteringError>) -> Result<(), ClusteringError> {
        for (p, chunk) in self.rows.chunks(self.page).enumerate() {
            let d = chunk.first().map_or(0, Vec::len);
            let page = Array2::from_shape_fn((chunk.len(), d), |(i, j)| chunk[i][j]);
            let ids: Vec<usize> = (p * self.page..p * self.page + chunk.len()).collect();
            visit(&ids, page.view())?;
        }
        Ok(())
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
    // Pages smaller than the population, so the pipeline's tests cross pages as ten million customers do.
    let mut pages = InMemory { rows, page: 1_000 };
    let fitted = fit_pages(names, &mut pages, sample, cfg, previous, progress)?;
    let mut ids = Vec::with_capacity(rows.len());
    let spec = fitted.assign(&mut pages, progress, &mut |_, placed| {
        ids.extend_from_slice(placed);
        Ok(())
    })?;
    Ok((spec, ids))
}

/// A model fitted on a sample and refined on everyone: its centroids, scaler and stable ids are final; placing
/// every customer ([`Fitted::assign`]) counts the clusters' sizes.
#[derive(Debug, Clone)]
pub struct Fitted {
    spec: ModelSpec,
    centers: Centers,
}

impl Fitted {
    /// The model, with sizes of 0 until every customer is placed.
    pub fn spec(&self) -> &ModelSpec {
        &self.spec
    }

    /// Places every customer, page by page, handing each page's ids and stable cluster ids to `placed`; returns the
    /// model with the size of each cluster.
    pub fn assign<P: Pages>(
        self,
        pages: &mut P,
        progress: &dyn Fn(&str, f64),
        placed: &mut Placed<'_, P::Id, P::Error>,
    ) -> Result<ModelSpec, P::Error> {
        let Fitted { mut spec, centers } = self;
        let ids: Vec<i32> = spec.clusters.iter().map(|c| c.id).collect();
        let mut sizes = vec![0i64; ids.len()];
        progress("assigning", 0.9);
        pages.pass(&mut |who, raw| {
            let mut scaled = raw.to_owned();
            spec.scaler.transform(&mut scaled);
            let labels = clustering::assign_to(scaled.view(), &centers);
            let stable: Vec<i32> = labels.iter().map(|l| ids[*l]).collect();
            for l in &labels {
                sizes[*l] += 1;
            }
            placed(who, &stable)
        })?;
        for (cluster, size) in spec.clusters.iter_mut().zip(sizes) {
            cluster.size = size;
        }
        progress("done", 1.0);
        Ok(spec)
    }
}

/// Fits a model on a sample of the customers `pages` visits (at most `sample`, the same sample as drawing from
/// them all in memory), then — k-means only, when the sample is not everyone — moves the centroids with three Lloyd
/// passes over every page. Memory: the sample, one page and the centroids.
pub fn fit_pages<P: Pages>(
    names: &[String],
    pages: &mut P,
    sample: usize,
    cfg: &FitConfig,
    previous: Option<&ModelSpec>,
    progress: &dyn Fn(&str, f64),
) -> Result<Fitted, P::Error> {
    let d = names.len();
    let n = pages.count()?;
    if n == 0 {
        return Err(ClusteringError::TooFewPoints { points: 0, k: cfg.k.unwrap_or(cfg.k_range.0) }.into());
    }
    progress("sampling", 0.0);
    let idx = clustering::sample_indices(n, sample, cfg.seed);
    let mut fit_rows = Array2::<f64>::zeros((idx.len(), d));
    let (mut seen, mut next, mut taken) = (0usize, 0usize, 0usize);
    pages.pass(&mut |_, raw| {
        for row in raw.rows() {
            if idx.get(next) == Some(&seen) {
                fit_rows.row_mut(next).assign(&row);
                next += 1;
                taken += 1;
            }
            seen += 1;
        }
        Ok(())
    })?;
    // Customers gone since the count: fit on those found.
    let mut fit_rows =
        if taken < idx.len() { fit_rows.select(ndarray::Axis(0), &(0..taken).collect::<Vec<_>>()) } else { fit_rows };
    let scaler = Scaler::fit(names, fit_rows.view());
    scaler.transform(&mut fit_rows);
    progress("fitting", 0.05);
    let fit = clustering::fit(fit_rows.view(), cfg, &|p| progress("fitting", 0.05 + 0.65 * p))?;
    drop(fit_rows);
    // k-means was fitted on a sample: a few Lloyd passes over everyone move the centroids to where all the
    // customers are (mixtures keep their components).
    let mut centers = fit.centers.clone();
    if centers.components.is_none() && taken < seen {
        for pass in 0..3 {
            progress("refining", 0.7 + 0.06 * pass as f64);
            let mut lloyd = clustering::LloydPass::new(centers.centroids.view());
            pages.pass(&mut |_, raw| {
                let mut scaled = raw.to_owned();
                scaler.transform(&mut scaled);
                lloyd.add(scaled.view());
                Ok(())
            })?;
            if lloyd.finish(&mut centers.centroids) < 1e-10 {
                break;
            }
        }
    }
    let centroids = &centers.centroids;
    let k = centroids.nrows();
    let original: Vec<Vec<f64>> =
        (0..k).map(|c| (0..d).map(|j| scaler.unscale_one(j, centroids[[c, j]])).collect()).collect();
    let prev: Vec<(i32, Vec<f64>)> = previous
        .filter(|p| p.features == names)
        .map(|p| p.clusters.iter().map(|c| (c.id, c.original.clone())).collect())
        .unwrap_or_default();
    let ids = clustering::stable_ids(&prev, &original, &scaler);
    let clusters = (0..k)
        .map(|c| {
            let z: Vec<f64> = centroids.row(c).to_vec();
            Cluster { id: ids[c], label: clustering::label(names, &z), size: 0, z, original: original[c].clone() }
        })
        .collect();
    let spec = ModelSpec {
        features: names.to_vec(),
        scaler,
        clusters,
        inertia: fit.inertia,
        silhouette: fit.silhouette,
        algorithm: cfg.algorithm,
        components: centers.components.clone().unwrap_or_default(),
    };
    Ok(Fitted { spec, centers })
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
