//! Theme discovery, pure and deterministic: texts into terms ([`super::text`]), TF-IDF vectors (sublinear term
//! frequency, smoothed idf, unit length), linfa's k-means on a sample of them (k chosen by the silhouette in cosine
//! distance, computed exactly from the clusters' sums), every text placed on the nearest centroid and a few
//! spherical Lloyd passes over all of them; each theme described by its heaviest terms and the texts closest to its
//! centroid; ids kept across runs by matching the new themes' terms with the earlier ones', greedily, closest first.
//! CPU-heavy: the store runs it off the async runtime.
use std::collections::{BTreeMap, HashMap};

use ndarray::Array2;
use rapport_stats::cluster::{self, KMeansSettings};

use super::{lsa::Projection, text};

/// Terms kept to describe and match a theme.
pub const MATCH_TERMS: usize = 30;
/// Terms people are shown.
pub const TOP_TERMS: usize = 10;
/// Representative texts kept.
pub const REPRESENTATIVES: usize = 10;
/// Below this similarity of terms a new theme is not the earlier one.
pub const MIN_MATCH: f64 = 0.3;

/// How to discover.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Themes; `None` = choose in `k_range` by silhouette.
    pub k: Option<usize>,
    /// Range to choose k from (inclusive).
    pub k_range: (usize, usize),
    /// Texts the k-means fit uses at most (all are placed).
    pub sample_size: usize,
    /// Terms kept at most (the most frequent).
    pub max_vocabulary: usize,
    /// A term must appear in this many texts.
    pub min_df: usize,
    /// k-means restarts per k.
    pub n_runs: usize,
    /// Spherical Lloyd passes over every text after the fit.
    pub refine_passes: usize,
    /// Dimensions of the latent semantic space the texts are clustered in.
    pub components: usize,
    /// Seed of the sample and the k-means++ seeding.
    pub seed: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            k: None,
            k_range: (2, 12),
            sample_size: 5_000,
            max_vocabulary: 2_000,
            min_df: 2,
            n_runs: 4,
            refine_passes: 3,
            components: 100,
            seed: 20_261_203,
        }
    }
}

/// A theme found earlier, for stable ids.
#[derive(Debug, Clone, PartialEq)]
pub struct Known {
    /// Its id.
    pub id: String,
    /// Its terms and weights.
    pub terms: Vec<(String, f64)>,
}

/// A theme found now.
#[derive(Debug, Clone, PartialEq)]
pub struct Found {
    /// Its id (an earlier theme's when matched).
    pub id: String,
    /// Whether it is an earlier theme found again.
    pub known: bool,
    /// Its heaviest terms with weights, for matching later runs.
    pub terms: Vec<(String, f64)>,
    /// Its heaviest terms as people read them (the word customers wrote most often for each), with weights.
    pub top_terms: Vec<(String, f64)>,
    /// Indices of its texts closest to the centroid, closest first.
    pub representatives: Vec<usize>,
    /// Its texts.
    pub size: usize,
}

/// The outcome of a discovery over `texts`.
#[derive(Debug, Clone, PartialEq)]
pub struct Discovery {
    /// Themes, largest first.
    pub themes: Vec<Found>,
    /// For each text, its theme's index in `themes` (None: no known term).
    pub labels: Vec<Option<usize>>,
    /// The k chosen.
    pub k: usize,
    /// Mean silhouette (cosine distance) of the final placement.
    pub silhouette: f64,
}

/// Why discovery could not run.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DiscoveryError {
    /// Too few texts with known words for two themes.
    #[error("{texts} texts with words in common cannot make {k} themes")]
    TooFewTexts {
        /// Texts with terms.
        texts: usize,
        /// Themes asked at least.
        k: usize,
    },
    /// linfa failed.
    #[error("{0}")]
    KMeans(String),
}

/// A unit-length sparse vector: (term index, weight), by index.
type Sparse = super::lsa::Sparse;

struct Vectors {
    /// Terms, by index (sorted).
    vocabulary: Vec<String>,
    /// Per text (None: no term of the vocabulary).
    rows: Vec<Option<Sparse>>,
    /// Per term: its surface forms and their counts.
    surfaces: Vec<BTreeMap<String, usize>>,
}

/// The vocabulary counts a term's texts once per writer (`writers[i]` wrote `texts[i]`): words only one customer
/// writes, however often, never become a term.
fn vectorise(texts: &[String], writers: &[String], cfg: &Config) -> Vectors {
    let tokens: Vec<Vec<text::Token>> = texts.iter().map(|t| text::terms(t)).collect();
    let mut pairs: Vec<(&str, &str)> = Vec::new();
    for (doc, writer) in tokens.iter().zip(writers) {
        pairs.extend(doc.iter().map(|t| (t.term.as_str(), writer.as_str())));
    }
    pairs.sort_unstable();
    pairs.dedup();
    let mut df: HashMap<&str, usize> = HashMap::new();
    for (t, _) in pairs {
        *df.entry(t).or_default() += 1;
    }
    let n = texts.len();
    // Terms in at least min_df texts and (in a large corpus) at most half of them, the most frequent first.
    let max_df = if n >= 200 { n / 2 } else { n };
    let mut kept: Vec<(&str, usize)> = df.into_iter().filter(|(_, d)| *d >= cfg.min_df && *d <= max_df).collect();
    kept.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    kept.truncate(cfg.max_vocabulary);
    kept.sort_by(|a, b| a.0.cmp(b.0));
    let index: HashMap<&str, usize> = kept.iter().enumerate().map(|(i, (t, _))| (*t, i)).collect();
    let idf: Vec<f64> = kept.iter().map(|(_, d)| ((1.0 + n as f64) / (1.0 + *d as f64)).ln() + 1.0).collect();
    let mut surfaces = vec![BTreeMap::new(); kept.len()];
    let rows = tokens
        .iter()
        .map(|doc| {
            let mut tf: BTreeMap<usize, f64> = BTreeMap::new();
            for t in doc {
                if let Some(&i) = index.get(t.term.as_str()) {
                    *tf.entry(i).or_default() += 1.0;
                    *surfaces[i].entry(t.surface.clone()).or_insert(0) += 1;
                }
            }
            let mut v: Sparse = tf.into_iter().map(|(i, c)| (i, (1.0 + f64::ln(c)) * idf[i])).collect();
            let norm = v.iter().map(|(_, w)| w * w).sum::<f64>().sqrt();
            if norm == 0.0 {
                return None;
            }
            for (_, w) in &mut v {
                *w /= norm;
            }
            Some(v)
        })
        .collect();
    Vectors { vocabulary: kept.iter().map(|(t, _)| t.to_string()).collect(), rows, surfaces }
}

fn dense_dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// The index of the centroid most like `row` (unit vectors: the largest dot product; ties to the lower index).
fn nearest(row: &[f64], centroids: &[Vec<f64>]) -> (usize, f64) {
    let mut best = (0, f64::NEG_INFINITY);
    for (c, centroid) in centroids.iter().enumerate() {
        let d = dense_dot(row, centroid);
        if d > best.1 {
            best = (c, d);
        }
    }
    best
}

fn normalised(mut v: Vec<f64>) -> Vec<f64> {
    let norm = v.iter().map(|x| x * x).sum::<f64>().sqrt();
    if norm > 0.0 {
        for x in &mut v {
            *x /= norm;
        }
    }
    v
}

/// Each cluster's sum of rows, and its size.
fn sums<R: AsRef<[f64]>>(rows: &[R], labels: &[usize], k: usize) -> (Vec<Vec<f64>>, Vec<usize>) {
    let dim = rows.first().map_or(0, |r| r.as_ref().len());
    let mut sums = vec![vec![0.0; dim]; k];
    let mut counts = vec![0usize; k];
    for (row, l) in rows.iter().zip(labels) {
        counts[*l] += 1;
        for (s, x) in sums[*l].iter_mut().zip(row.as_ref()) {
            *s += x;
        }
    }
    (sums, counts)
}

/// The mean TF-IDF row of each cluster (term space), for describing it.
fn term_means(rows: &[&Sparse], labels: &[usize], k: usize, dim: usize) -> Vec<Vec<f64>> {
    let mut sums = vec![vec![0.0; dim]; k];
    let mut counts = vec![0usize; k];
    for (row, l) in rows.iter().zip(labels) {
        counts[*l] += 1;
        for (i, w) in row.iter() {
            sums[*l][*i] += w;
        }
    }
    for (s, n) in sums.iter_mut().zip(&counts) {
        if *n > 0 {
            for x in s.iter_mut() {
                *x /= *n as f64;
            }
        }
    }
    sums
}

/// Mean silhouette of unit rows in cosine distance, exactly: the mean distance of a row to a cluster is
/// 1 − row · (the cluster's sum) / its size, without the row itself in its own cluster. A row alone in its cluster
/// counts 0.
pub fn silhouette<R: AsRef<[f64]>>(rows: &[R], labels: &[usize], k: usize) -> f64 {
    if rows.len() < 2 || k < 2 {
        return 0.0;
    }
    let (sums, counts) = sums(rows, labels, k);
    let mut total = 0.0;
    for (row, own) in rows.iter().zip(labels) {
        let row = row.as_ref();
        if counts[*own] < 2 {
            continue;
        }
        let self_dot = dense_dot(row, row);
        let a = 1.0 - (dense_dot(row, &sums[*own]) - self_dot) / (counts[*own] - 1) as f64;
        let b = (0..k)
            .filter(|c| c != own && counts[*c] > 0)
            .map(|c| 1.0 - dense_dot(row, &sums[c]) / counts[c] as f64)
            .fold(f64::INFINITY, f64::min);
        if b.is_finite() && a.max(b) > 0.0 {
            total += (b - a) / a.max(b);
        }
    }
    total / rows.len() as f64
}

/// Fits k clusters on the sample with linfa's k-means; the unit centroids.
fn fit(sample: &[&Vec<f64>], k: usize, cfg: &Config) -> Result<Vec<Vec<f64>>, DiscoveryError> {
    let dim = sample.first().map_or(0, |r| r.len());
    let mut dense = Array2::<f64>::zeros((sample.len(), dim));
    for (r, row) in sample.iter().enumerate() {
        for (c, x) in row.iter().enumerate() {
            dense[[r, c]] = *x;
        }
    }
    let settings = KMeansSettings { seed: cfg.seed, n_runs: cfg.n_runs, max_iterations: 200, tolerance: 1e-6 };
    let (centroids, _) =
        cluster::kmeans(dense.view(), k, &settings).map_err(|e| DiscoveryError::KMeans(e.to_string()))?;
    Ok(centroids.rows().into_iter().map(|c| normalised(c.to_vec())).collect())
}

/// Places every row on its nearest centroid, then moves each centroid to its rows' mean direction, `passes` times.
fn refine(rows: &[Vec<f64>], mut centroids: Vec<Vec<f64>>, passes: usize) -> (Vec<usize>, Vec<Vec<f64>>) {
    let k = centroids.len();
    let mut labels: Vec<usize> = rows.iter().map(|r| nearest(r, &centroids).0).collect();
    for _ in 0..passes {
        let (s, counts) = sums(rows, &labels, k);
        for (c, (sum, n)) in s.into_iter().zip(counts).enumerate() {
            if n > 0 {
                centroids[c] = normalised(sum);
            }
        }
        let next: Vec<usize> = rows.iter().map(|r| nearest(r, &centroids).0).collect();
        if next == labels {
            break;
        }
        labels = next;
    }
    (labels, centroids)
}

/// A slug of a word for an id: ASCII letters and digits.
fn slug(word: &str) -> String {
    word.chars().filter(|c| c.is_ascii_alphanumeric()).take(20).collect()
}

/// Cosine similarity of two term-weight lists.
pub fn similarity(a: &[(String, f64)], b: &[(String, f64)]) -> f64 {
    let bm: HashMap<&str, f64> = b.iter().map(|(t, w)| (t.as_str(), *w)).collect();
    let dotp: f64 = a.iter().filter_map(|(t, w)| bm.get(t.as_str()).map(|v| v * w)).sum();
    let na = a.iter().map(|(_, w)| w * w).sum::<f64>().sqrt();
    let nb = b.iter().map(|(_, w)| w * w).sum::<f64>().sqrt();
    if na == 0.0 || nb == 0.0 { 0.0 } else { dotp / (na * nb) }
}

/// A theme as ids are made from it: its terms with weights, and its top words as people read them.
pub type Described = (Vec<(String, f64)>, Vec<String>);

/// Ids for new themes (given by their terms): each takes the id of the most similar earlier theme, greedily,
/// most similar pair first, when similar enough; the others get `d-<top term>-<second term>` (numbered when taken).
/// Returns (id, known).
pub fn stable_ids(new: &[Described], known: &[Known]) -> Vec<(String, bool)> {
    let mut pairs: Vec<(f64, usize, usize)> = Vec::new();
    for (i, (terms, _)) in new.iter().enumerate() {
        for (p, k) in known.iter().enumerate() {
            let s = similarity(terms, &k.terms);
            if s >= MIN_MATCH {
                pairs.push((s, i, p));
            }
        }
    }
    pairs.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
    let mut ids: Vec<Option<(String, bool)>> = vec![None; new.len()];
    let mut used = vec![false; known.len()];
    for (_, i, p) in pairs {
        if ids[i].is_none() && !used[p] {
            ids[i] = Some((known[p].id.clone(), true));
            used[p] = true;
        }
    }
    let mut taken: std::collections::BTreeSet<String> = known.iter().map(|k| k.id.clone()).collect();
    for (i, (_, words)) in new.iter().enumerate() {
        if ids[i].is_some() {
            continue;
        }
        let parts: Vec<String> = words.iter().map(|w| slug(w)).filter(|w| !w.is_empty()).take(2).collect();
        let base = if parts.is_empty() { "d-theme".to_string() } else { format!("d-{}", parts.join("-")) };
        let mut id = base.clone();
        let mut n = 2;
        while taken.contains(&id) {
            id = format!("{base}-{n}");
            n += 1;
        }
        taken.insert(id.clone());
        ids[i] = Some((id, false));
    }
    ids.into_iter().map(|x| x.unwrap_or_else(|| ("d-theme".into(), false))).collect()
}

/// A labelled corpus as the tests and the benchmark keep them: a TSV with a header and `theme<TAB>lang<TAB>text`
/// lines; (theme, text) in order.
pub fn labelled(tsv: &str) -> Vec<(String, String)> {
    tsv.lines()
        .skip(1)
        .filter_map(|l| {
            let mut parts = l.splitn(3, '\t');
            let theme = parts.next()?;
            let _lang = parts.next()?;
            Some((theme.to_string(), parts.next()?.to_string()))
        })
        .collect()
}

/// The words of `text` whose term is one of `shared`, in order, once each: what a customer wrote that many others
/// wrote too (a theme's example for feedback without the customer's own words).
pub fn shared_words(text: &str, shared: &std::collections::BTreeSet<String>) -> String {
    let mut seen = std::collections::BTreeSet::new();
    text::terms(text)
        .into_iter()
        .filter(|t| shared.contains(&t.term) && seen.insert(t.surface.clone()))
        .map(|t| t.surface)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Discovers themes in `texts`, each written by someone else, keeping the ids of `known` themes found again.
pub fn discover(texts: &[String], known: &[Known], cfg: &Config) -> Result<Discovery, DiscoveryError> {
    let writers: Vec<String> = (0..texts.len()).map(|i| i.to_string()).collect();
    discover_written(texts, &writers, known, cfg)
}

/// Discovers themes in `texts`, `writers[i]` having written `texts[i]`, keeping the ids of `known` themes found again.
pub fn discover_written(
    texts: &[String],
    writers: &[String],
    known: &[Known],
    cfg: &Config,
) -> Result<Discovery, DiscoveryError> {
    let v = vectorise(texts, writers, cfg);
    let dim = v.vocabulary.len();
    let present: Vec<usize> = (0..texts.len()).filter(|i| v.rows[*i].is_some()).collect();
    let rows: Vec<&Sparse> = present.iter().filter_map(|i| v.rows[*i].as_ref()).collect();
    let (k_lo, k_hi) = match cfg.k {
        Some(k) => (k, k),
        None => (cfg.k_range.0.max(2), cfg.k_range.1.max(cfg.k_range.0.max(2))),
    };
    if rows.len() < k_lo.max(2) * 2 || dim == 0 {
        return Err(DiscoveryError::TooFewTexts { texts: rows.len(), k: k_lo.max(2) });
    }
    let picked = cluster::sample_indices(rows.len(), cfg.sample_size.max(k_hi), cfg.seed);
    let sample: Vec<&Sparse> = picked.iter().map(|i| rows[*i]).collect();
    // Latent semantic space, fitted on the sample: every text is projected into it.
    let projection = Projection::fit(&sample, dim, cfg.components, cfg.seed);
    let embedded: Vec<Vec<f64>> = rows.iter().map(|r| projection.project(r)).collect();
    let sample_embedded: Vec<&Vec<f64>> = picked.iter().map(|i| &embedded[*i]).collect();
    let k_hi = k_hi.min(sample.len() / 2).max(k_lo);
    // k by the silhouette of the fit on the sample; ties to the smaller k.
    let mut best: Option<(f64, usize, Vec<Vec<f64>>)> = None;
    for k in k_lo..=k_hi {
        let centroids = fit(&sample_embedded, k, cfg)?;
        let labels: Vec<usize> = sample_embedded.iter().map(|r| nearest(r, &centroids).0).collect();
        let s = silhouette(&sample_embedded, &labels, k);
        tracing::debug!(k, silhouette = s, "themes fitted");
        if best.as_ref().is_none_or(|b| s > b.0) {
            best = Some((s, k, centroids));
        }
    }
    let Some((_, _, centroids)) = best else {
        return Err(DiscoveryError::TooFewTexts { texts: rows.len(), k: k_lo });
    };
    let (labels, centroids) = refine(&embedded, centroids, cfg.refine_passes);
    // Clusters left empty by the refinement are dropped; the rest renumbered.
    let k = centroids.len();
    let mut counts = vec![0usize; k];
    for l in &labels {
        counts[*l] += 1;
    }
    struct Draft {
        old: usize,
        terms: Vec<(String, f64)>,
        words: Vec<(String, f64)>,
        members: Vec<(f64, usize)>,
    }
    let m = term_means(&rows, &labels, k, dim);
    let mut drafts: Vec<Draft> = Vec::new();
    for (c, mean) in m.iter().enumerate().filter(|(c, _)| counts[*c] > 0) {
        let mut order: Vec<usize> = (0..dim).filter(|i| mean[*i] > 0.0).collect();
        order.sort_by(|a, b| mean[*b].total_cmp(&mean[*a]).then(a.cmp(b)));
        order.truncate(MATCH_TERMS);
        let terms: Vec<(String, f64)> = order.iter().map(|i| (v.vocabulary[*i].clone(), mean[*i])).collect();
        let words: Vec<(String, f64)> = order
            .iter()
            .take(TOP_TERMS)
            .map(|i| {
                let surface = v.surfaces[*i]
                    .iter()
                    .max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0)))
                    .map(|(s, _)| s.clone())
                    .unwrap_or_else(|| v.vocabulary[*i].clone());
                (surface, mean[*i])
            })
            .collect();
        let mut members: Vec<(f64, usize)> = labels
            .iter()
            .enumerate()
            .filter(|(_, l)| **l == c)
            .map(|(r, _)| (dense_dot(&embedded[r], &centroids[c]), present[r]))
            .collect();
        members.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        drafts.push(Draft { old: c, terms, words, members });
    }
    drafts.sort_by(|a, b| {
        b.members.len().cmp(&a.members.len()).then(a.terms.first().map(|t| &t.0).cmp(&b.terms.first().map(|t| &t.0)))
    });
    let ids = stable_ids(
        &drafts.iter().map(|d| (d.terms.clone(), d.words.iter().map(|w| w.0.clone()).collect())).collect::<Vec<_>>(),
        known,
    );
    let mut new_index = vec![usize::MAX; k];
    for (n, d) in drafts.iter().enumerate() {
        new_index[d.old] = n;
    }
    let mut out_labels = vec![None; texts.len()];
    for (r, l) in labels.iter().enumerate() {
        out_labels[present[r]] = Some(new_index[*l]);
    }
    let final_labels: Vec<usize> = labels.iter().map(|l| new_index[*l]).collect();
    let silhouette = silhouette(&embedded, &final_labels, drafts.len());
    let themes = drafts
        .into_iter()
        .zip(ids)
        .map(|(d, (id, known))| Found {
            id,
            known,
            size: d.members.len(),
            representatives: d.members.iter().take(REPRESENTATIVES).map(|m| m.1).collect(),
            terms: d.terms,
            top_terms: d.words,
        })
        .collect::<Vec<_>>();
    Ok(Discovery { k: themes.len(), themes, labels: out_labels, silhouette })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A labelled corpus under `tests/data`: (theme, text).
    pub(crate) fn corpus(name: &str) -> Vec<(String, String)> {
        let path = format!("{}/tests/data/{name}", env!("CARGO_MANIFEST_DIR"));
        labelled(&std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}")))
    }

    /// Discovers themes in a labelled corpus; the ARI against its labels, printed with the themes found.
    fn score(name: &str) -> (f64, Vec<String>, Discovery) {
        let corpus = corpus(name);
        let texts: Vec<String> = corpus.iter().map(|(_, t)| t.clone()).collect();
        let mut names: Vec<&String> = corpus.iter().map(|(t, _)| t).collect();
        names.sort();
        names.dedup();
        let truth: Vec<usize> = corpus.iter().map(|(t, _)| names.iter().position(|n| *n == t).unwrap_or(0)).collect();
        let d = discover(&texts, &[], &Config::default()).unwrap();
        let found: Vec<usize> = d.labels.iter().map(|l| l.unwrap_or(usize::MAX)).collect();
        let ari = cluster::adjusted_rand_index(&truth, &found);
        println!(
            "discovery on {name}: {} texts, k = {}, silhouette {:.3}, adjusted Rand index {ari:.3}",
            texts.len(),
            d.k,
            d.silhouette
        );
        for t in &d.themes {
            let words: Vec<&str> = t.top_terms.iter().take(5).map(|w| w.0.as_str()).collect();
            println!("  {} ({}): {}", t.id, t.size, words.join(", "));
        }
        (ari, texts, d)
    }

    #[test]
    fn recovers_the_planted_themes_of_a_bilingual_corpus() {
        let (ari, texts, d) = score("discovery.tsv");
        assert!(texts.len() >= 600, "{}", texts.len());
        assert!(ari >= 0.8, "adjusted Rand index {ari}");
        // The same input gives the same themes and ids.
        let again = discover(&texts, &[], &Config::default()).unwrap();
        assert_eq!(again, d);
        // A later run over the same texts keeps every id.
        let known: Vec<Known> = d.themes.iter().map(|t| Known { id: t.id.clone(), terms: t.terms.clone() }).collect();
        let later = discover(&texts, &known, &Config::default()).unwrap();
        assert!(later.themes.iter().all(|t| t.known));
        assert_eq!(
            later.themes.iter().map(|t| &t.id).collect::<Vec<_>>(),
            d.themes.iter().map(|t| &t.id).collect::<Vec<_>>()
        );
    }

    /// One-line complaints carry little to cluster on: a floor against regressions, and the figure printed.
    #[test]
    fn one_line_complaints_are_harder() {
        let (ari, texts, _) = score("short.tsv");
        assert!(texts.len() >= 600);
        assert!(ari >= 0.35, "adjusted Rand index {ari}");
    }

    #[test]
    fn one_writers_words_are_not_terms() {
        // Eight customers write of parcels; one of them signs every text with a name: the name is not a term.
        let mut texts = Vec::new();
        let mut writers = Vec::new();
        for i in 0..8 {
            texts.push(format!("parcel late again {i}"));
            writers.push(format!("c{i}"));
            texts.push("invoice wrong amount".to_string());
            writers.push(format!("c{i}"));
        }
        for _ in 0..4 {
            texts.push("parcel late, signed Zebulon".to_string());
            writers.push("c0".to_string());
        }
        let d = discover_written(&texts, &writers, &[], &Config { k: Some(2), ..Config::default() }).unwrap();
        assert!(d.themes.iter().all(|t| t.terms.iter().all(|(w, _)| w != "zebulon")), "{:?}", d.themes);
        // Counted per text, the name would be one.
        let per_text = discover(&texts, &[], &Config { k: Some(2), ..Config::default() }).unwrap();
        assert!(per_text.themes.iter().any(|t| t.terms.iter().any(|(w, _)| w == "zebulon")));
    }

    #[test]
    fn silhouette_by_hand() {
        // Two tight pairs of orthogonal unit vectors: a = 0 within, b = 1 between → 1.
        let rows: Vec<Sparse> = vec![vec![(0, 1.0)], vec![(0, 1.0)], vec![(1, 1.0)], vec![(1, 1.0)]];
        let refs: Vec<&Sparse> = rows.iter().collect();
        let rows: Vec<Vec<f64>> = refs
            .iter()
            .map(|r| {
                let mut d = vec![0.0; 2];
                for (i, w) in r.iter() {
                    d[*i] = *w;
                }
                d
            })
            .collect();
        assert!((silhouette(&rows, &[0, 0, 1, 1], 2) - 1.0).abs() < 1e-12);
        // Mixed up: a row's twin is in the other cluster: a = 1, b = (0 + 1) / 2 → (0.5 - 1) / 1 = -0.5.
        assert!((silhouette(&rows, &[0, 1, 0, 1], 2) + 0.5).abs() < 1e-12);
    }

    #[test]
    fn ids_are_kept_when_terms_match_and_made_from_words_otherwise() {
        let known = vec![Known { id: "d-app-crash".into(), terms: vec![("app".into(), 0.5), ("crash".into(), 0.4)] }];
        let new = vec![
            (vec![("box".into(), 0.6), ("plastic".into(), 0.3)], vec!["boite".to_string(), "plastic".to_string()]),
            (
                vec![("crash".into(), 0.5), ("app".into(), 0.5), ("update".into(), 0.1)],
                vec!["crash".into(), "app".into()],
            ),
            (vec![("box".into(), 0.6)], vec!["boite".to_string(), "plastic".to_string()]),
        ];
        let ids = stable_ids(&new, &known);
        assert_eq!(ids[0], ("d-boite-plastic".into(), false));
        assert_eq!(ids[1], ("d-app-crash".into(), true));
        assert_eq!(ids[2], ("d-boite-plastic-2".into(), false));
        let too_few = discover(&["colis".into(), "colis".into()], &[], &Config::default());
        assert!(matches!(too_few, Err(DiscoveryError::TooFewTexts { .. })));
    }
}
