//! Theme classification of complaint texts, pure. A taxonomy of themes, each with keywords (and phrases) and example
//! texts; a model trained on the examples decides: accents folded, words lightly stemmed plus the four-letter
//! pieces of each word (robust to typos and to French and English sharing roots), a naive Bayes model (linfa). The keywords explain the decision and break near-ties; a text
//! the model is unsure of, with no keyword to back it, stays unclassified (the improvement service clusters those).
//!
//! The model is linfa's Bernoulli naive Bayes over which terms a text has: short complaints rarely repeat a word,
//! and linfa-bayes 0.8.1's multinomial model prints its whole histogram to stderr on every fit (a stray `dbg!`),
//! which a service cannot have in its logs. The default taxonomy ships 120 example texts per theme
//! (`taxonomy/examples.tsv`, French and English).
use std::collections::{BTreeSet, HashMap};

use linfa::{Dataset, ParamGuard, traits::FitWith};
use linfa_bayes::{BernoulliNb, NaiveBayes};
use ndarray::{Array1, Array2};
use serde::{Deserialize, Serialize};

/// The theme of a text nobody can place.
pub const UNCLASSIFIED: &str = "unclassified";
/// Below this probability the model's choice needs a keyword to stand.
pub const MIN_CONFIDENCE: f64 = 0.5;
/// Two themes closer than this are a near-tie, which the keywords break.
const TIE_MARGIN: f64 = 0.15;
/// Naive Bayes smoothing.
const ALPHA: f64 = 0.1;

/// A theme of the taxonomy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Theme {
    /// Identifier (`delivery`).
    pub id: String,
    /// Words and phrases that signal it, in any language and with or without accents.
    pub keywords: Vec<String>,
    /// Example texts the model learns from.
    pub examples: Vec<String>,
}

/// Why a classifier could not be trained.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ThemeError {
    /// Fewer than two themes have examples or keywords.
    #[error("at least two themes with examples or keywords are needed")]
    TooFewThemes,
    /// The model could not be fitted.
    #[error("the theme model could not be fitted: {0}")]
    Model(String),
}

/// What the classifier decided about a text.
#[derive(Debug, Clone, PartialEq)]
pub struct Classification {
    /// The theme, or [`UNCLASSIFIED`].
    pub theme: String,
    /// The model's probability of that theme (0 when unclassified for want of known words).
    pub confidence: f64,
    /// The keywords of that theme found in the text: the explanation.
    pub keywords: Vec<String>,
    /// Whether the keywords decided between two near-tied themes.
    pub tie_broken: bool,
}

/// A trained classifier: vocabulary, weights and model. Training is deterministic and takes milliseconds, so the
/// taxonomy (in the database, versioned) is what replicas share; each trains its own copy of the active version.
#[derive(Debug, Clone)]
pub struct Classifier {
    vocab: HashMap<String, usize>,
    themes: Vec<String>,
    /// Folded keywords per theme, with their text as written.
    keywords: Vec<Vec<(String, String)>>,
    model: BernoulliNb<f64, usize>,
}

pub use rapport_text::fold;

/// The words of a text: folded, stop words dropped, plural `s` removed and cut to 6 letters (a crude stemmer that
/// maps `livraison`/`livraisons` and `delivered`/`delivery` together well enough).
fn words(text: &str) -> Vec<String> {
    fold(text)
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| w.len() >= 2 && !rapport_text::is_stop_word(w) && !w.chars().all(|c| c.is_ascii_digit()))
        .map(|w| {
            let w = if w.len() > 3 { w.strip_suffix('s').unwrap_or(w) } else { w };
            w.chars().take(6).collect()
        })
        .collect()
}

/// The features of a text: its words, and the four-letter pieces of each word marked at its ends (`<col`, `coli`,
/// `olis`, `lis>`).
fn features(text: &str) -> Vec<String> {
    let mut out = words(text);
    for token in fold(text).split(|c: char| !c.is_alphanumeric()).filter(|t| !t.is_empty()) {
        let marked: Vec<char> = std::iter::once('<').chain(token.chars()).chain(std::iter::once('>')).collect();
        if marked.len() >= 4 {
            out.extend(marked.windows(4).map(|w| format!("#{}", w.iter().collect::<String>())));
        }
    }
    out
}

/// Whether the folded text holds the folded keyword as whole words.
fn contains_phrase(text: &str, phrase: &str) -> bool {
    !phrase.is_empty()
        && text.match_indices(phrase).any(|(i, _)| {
            let before = text[..i].chars().next_back().is_none_or(|c| !c.is_alphanumeric());
            let after = text[i + phrase.len()..].chars().next().is_none_or(|c| !c.is_alphanumeric());
            before && after
        })
}

impl Classifier {
    /// Trains on the themes' examples (each theme's keywords count as one more short example).
    pub fn train(themes: &[Theme]) -> Result<Self, ThemeError> {
        let usable: Vec<&Theme> = themes.iter().filter(|t| !t.examples.is_empty() || !t.keywords.is_empty()).collect();
        if usable.len() < 2 {
            return Err(ThemeError::TooFewThemes);
        }
        // Each theme's texts repeated up to the largest theme's count: a theme just added with a handful of examples
        // is not drowned by the prior and the absent words of themes with hundreds.
        let per_theme: Vec<Vec<Vec<String>>> = usable
            .iter()
            .map(|t| {
                let mut d: Vec<Vec<String>> = t.examples.iter().map(|e| features(e)).collect();
                if !t.keywords.is_empty() {
                    d.push(features(&t.keywords.join(" . ")));
                }
                d
            })
            .collect();
        let most = per_theme.iter().map(Vec::len).max().unwrap_or(0);
        let mut docs: Vec<(Vec<String>, usize)> = Vec::new();
        for (label, d) in per_theme.iter().enumerate() {
            docs.extend(d.iter().cycle().take(most).map(|f| (f.clone(), label)));
        }
        let mut vocab: HashMap<String, usize> = HashMap::new();
        for (f, _) in &docs {
            for term in f.iter().collect::<BTreeSet<_>>() {
                let next = vocab.len();
                vocab.entry(term.clone()).or_insert(next);
            }
        }
        // Fitted one theme at a time, so memory holds one theme's rows, not the whole taxonomy's. (Each theme in
        // one batch: linfa 0.8.1's Bernoulli model counts a class's rows per batch, so a class must not span two.)
        let params =
            BernoulliNb::params().alpha(ALPHA).binarize(None).check().map_err(|e| ThemeError::Model(e.to_string()))?;
        let mut model = None;
        for batch in docs.chunk_by(|a, b| a.1 == b.1) {
            let mut x = Array2::<f64>::zeros((batch.len(), vocab.len()));
            for (i, (f, _)) in batch.iter().enumerate() {
                x.row_mut(i).assign(&presence(f, &vocab));
            }
            let y = Array1::from_iter(batch.iter().map(|(_, l)| *l));
            model = Some(params.fit_with(model, &Dataset::new(x, y)).map_err(|e| ThemeError::Model(e.to_string()))?);
        }
        let model = model.ok_or(ThemeError::TooFewThemes)?;
        Ok(Self {
            vocab,
            themes: usable.iter().map(|t| t.id.clone()).collect(),
            keywords: usable
                .iter()
                .map(|t| t.keywords.iter().map(|k| (fold(k.trim()), k.trim().to_string())).collect())
                .collect(),
            model,
        })
    }

    /// The themes it knows, in training order.
    pub fn themes(&self) -> &[String] {
        &self.themes
    }

    /// Classifies `text`.
    pub fn classify(&self, text: &str) -> Classification {
        let folded = fold(text);
        let hits: Vec<Vec<String>> = self
            .keywords
            .iter()
            .map(|ks| ks.iter().filter(|(f, _)| contains_phrase(&folded, f)).map(|(_, k)| k.clone()).collect())
            .collect();
        let f = features(text);
        let x = presence(&f, &self.vocab);
        if x.iter().all(|v| *v == 0.0) {
            // No word the model knows: only keywords can place it.
            return match (0..self.themes.len()).max_by_key(|&i| hits[i].len()).filter(|&i| !hits[i].is_empty()) {
                Some(i) => Classification {
                    theme: self.themes[i].clone(),
                    confidence: 0.0,
                    keywords: hits[i].clone(),
                    tie_broken: false,
                },
                None => unclassified(),
            };
        }
        let x = x.insert_axis(ndarray::Axis(0));
        // Posterior from the joint log-likelihoods, normalised with the largest subtracted first (linfa's own
        // `predict_proba` does not, and a long text underflows every class to 0/0).
        let jll = self.model.joint_log_likelihood(x.view());
        let best_ll = jll.values().map(|v| v[0]).fold(f64::NEG_INFINITY, f64::max);
        let norm: f64 = jll.values().map(|v| (v[0] - best_ll).exp()).sum();
        let mut ranked: Vec<(usize, f64)> = jll.iter().map(|(l, v)| (**l, (v[0] - best_ll).exp() / norm)).collect();
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        let (mut best, mut p) = ranked[0];
        let mut tie_broken = false;
        if let Some(&(second, p2)) = ranked.get(1)
            && p - p2 < TIE_MARGIN
            && hits[second].len() > hits[best].len()
        {
            (best, p, tie_broken) = (second, p2, true);
        }
        if p < MIN_CONFIDENCE && hits[best].is_empty() {
            return Classification { confidence: p, ..unclassified() };
        }
        Classification { theme: self.themes[best].clone(), confidence: p, keywords: hits[best].clone(), tie_broken }
    }
}

fn unclassified() -> Classification {
    Classification::unclassified()
}

impl Classification {
    /// Nobody could place it.
    pub fn unclassified() -> Self {
        Self { theme: UNCLASSIFIED.into(), confidence: 0.0, keywords: vec![], tie_broken: false }
    }
}

/// Which known features a text has (1) or not (0): the Bernoulli model's input, in training and in prediction
/// alike (linfa binarises only in `predict`, not in `predict_proba`).
fn presence(features: &[String], vocab: &HashMap<String, usize>) -> Array1<f64> {
    let mut x = Array1::<f64>::zeros(vocab.len());
    for f in features {
        if let Some(&j) = vocab.get(f) {
            x[j] = 1.0;
        }
    }
    x
}

/// The default taxonomy's example texts: `theme<TAB>lang<TAB>text` lines after a header.
const DEFAULT_EXAMPLES: &str = include_str!("../../taxonomy/examples.tsv");

/// The taxonomy a new installation starts with: an online retailer with shops, an app and a loyalty programme.
pub fn default_themes() -> Vec<Theme> {
    let keywords: [(&str, &[&str]); 8] = [
        (
            "billing",
            &[
                "invoice",
                "charged",
                "charged twice",
                "payment",
                "bank",
                "fee",
                "facture",
                "prélevé",
                "débité",
                "paiement",
                "frais",
            ],
        ),
        (
            "customer_service",
            &[
                "agent",
                "rude",
                "call back",
                "on hold",
                "no answer",
                "conseiller",
                "service client",
                "rappel",
                "pas de réponse",
                "attente au téléphone",
            ],
        ),
        (
            "delivery",
            &[
                "delivery",
                "delivered",
                "parcel",
                "courier",
                "tracking",
                "shipping",
                "livraison",
                "livré",
                "colis",
                "livreur",
                "transporteur",
                "suivi",
            ],
        ),
        (
            "loyalty_program",
            &["points", "loyalty", "tier", "voucher", "reward", "fidélité", "bon d'achat", "statut", "récompense"],
        ),
        (
            "product_quality",
            &[
                "broken",
                "defective",
                "faulty",
                "poor quality",
                "stopped working",
                "cassé",
                "défectueux",
                "mauvaise qualité",
                "ne marche plus",
                "abîmé",
            ],
        ),
        (
            "returns_refunds",
            &[
                "refund",
                "return",
                "return label",
                "exchange",
                "remboursement",
                "rembourser",
                "retour",
                "échange",
                "avoir",
            ],
        ),
        (
            "store_experience",
            &[
                "store", "shop", "till", "cashier", "queue", "staff", "magasin", "boutique", "caisse", "vendeur",
                "vendeuse", "rayon",
            ],
        ),
        (
            "website_app",
            &[
                "app",
                "website",
                "log in",
                "login",
                "password",
                "checkout",
                "crash",
                "site",
                "application",
                "mot de passe",
                "connexion",
                "bug",
            ],
        ),
    ];
    let mut themes: Vec<Theme> = keywords
        .iter()
        .map(|(id, k)| Theme {
            id: (*id).into(),
            keywords: k.iter().map(|s| s.to_string()).collect(),
            examples: vec![],
        })
        .collect();
    for line in DEFAULT_EXAMPLES.lines().skip(1) {
        let mut f = line.splitn(3, '\t');
        if let (Some(id), Some(_lang), Some(text)) = (f.next(), f.next(), f.next())
            && let Some(t) = themes.iter_mut().find(|t| t.id == id)
        {
            t.examples.push(text.to_string());
        }
    }
    themes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folding_and_words() {
        assert_eq!(fold("Reçu ÉTÉ Œuvre"), "recu ete oeuvre");
        assert_eq!(words("Les livraisons sont en retard !"), vec!["livrai", "retard"]);
        assert_eq!(words("recu"), words("Reçu"));
        assert!(contains_phrase("pas de reponse depuis", "pas de reponse"));
        assert!(!contains_phrase("apps", "app"));
    }

    #[test]
    fn long_texts_keep_a_probability() {
        let c = Classifier::train(&default_themes()).unwrap();
        let long = "my parcel never arrived, the courier lost it and the tracking says nothing. ".repeat(60);
        let r = c.classify(&long);
        assert_eq!(r.theme, "delivery");
        assert!((0.0..=1.0).contains(&r.confidence), "{r:?}");
    }

    #[test]
    fn training_needs_two_themes() {
        let one = vec![Theme { id: "a".into(), keywords: vec!["x".into()], examples: vec![] }];
        assert_eq!(Classifier::train(&one).unwrap_err(), ThemeError::TooFewThemes);
    }

    #[test]
    fn classifies_with_keywords_as_explanation() {
        let c = Classifier::train(&default_themes()).unwrap();
        let r = c.classify("Mon colis n'est jamais arrivé, le livreur ne répond pas");
        assert_eq!(r.theme, "delivery");
        assert!(r.keywords.contains(&"colis".to_string()), "{r:?}");
        let r = c.classify("zzz qqq xxw");
        assert_eq!(r.theme, UNCLASSIFIED);
    }

    /// The labelled set written for this test (apart from the default examples): 360 complaints in French and
    /// English over the eight default themes. Five-fold cross-validation: every text is scored by a model that never
    /// saw it, trained on the default taxonomy and the other four folds.
    #[test]
    fn accuracy_on_unseen_labelled_complaints() {
        let rows: Vec<(String, String)> = include_str!("../../tests/data/complaints.tsv")
            .lines()
            .skip(1)
            .filter_map(|l| {
                let mut f = l.split('\t');
                Some((f.next()?.to_string(), f.nth(1)?.to_string()))
            })
            .collect();
        assert!(rows.len() >= 300, "{} labelled texts", rows.len());
        let (mut right, mut unclassified) = (0, 0);
        for fold_no in 0..5 {
            let mut themes = default_themes();
            for (i, (theme, text)) in rows.iter().enumerate() {
                if i % 5 != fold_no
                    && let Some(t) = themes.iter_mut().find(|t| &t.id == theme)
                {
                    t.examples.push(text.clone());
                }
            }
            let c = Classifier::train(&themes).unwrap();
            for (i, (theme, text)) in rows.iter().enumerate() {
                if i % 5 == fold_no {
                    let r = c.classify(text);
                    right += usize::from(&r.theme == theme);
                    unclassified += usize::from(r.theme == UNCLASSIFIED);
                }
            }
        }
        let accuracy = right as f64 / rows.len() as f64;
        println!(
            "theme classification: {right}/{} right ({:.1} %), {unclassified} unclassified, 5-fold cross-validation",
            rows.len(),
            accuracy * 100.0
        );
        assert!(accuracy >= 0.90, "accuracy {:.3}", accuracy);
    }
}
