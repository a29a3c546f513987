//! Latent semantic analysis, pure: a truncated SVD of sparse TF-IDF rows by the randomised range finder (Halko,
//! Martinsson and Tropp 2011: a Gaussian sketch, power iterations, Gram-Schmidt, then the exact eigenvectors of a
//! small symmetric matrix by Jacobi rotations). Texts become short dense vectors in which words that customers use
//! together are close, so two complaints about the same thing in other words still meet. Deterministic for a seed.
use rand_xoshiro::{
    Xoshiro256PlusPlus,
    rand_core::{RngCore, SeedableRng},
};

/// A sparse row: (column, value), by column.
pub type Sparse = Vec<(usize, f64)>;

/// The projection onto the top components: `components[c]` is a dense vector over the columns.
#[derive(Debug, Clone, PartialEq)]
pub struct Projection {
    components: Vec<Vec<f64>>,
}

/// Standard normal numbers by Box-Muller, from a seeded generator.
fn gaussian(rng: &mut Xoshiro256PlusPlus) -> f64 {
    let unit = |r: &mut Xoshiro256PlusPlus| ((r.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
    let (u, v) = (unit(rng), unit(rng));
    (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
}

/// Orthonormalises the columns of `m` (rows × cols, row-major) in place by modified Gram-Schmidt; a column that
/// depends on the earlier ones becomes zero.
fn orthonormalise(m: &mut [Vec<f64>], cols: usize) {
    for j in 0..cols {
        for i in 0..j {
            let d: f64 = m.iter().map(|r| r[i] * r[j]).sum();
            for r in m.iter_mut() {
                r[j] -= d * r[i];
            }
        }
        let norm = m.iter().map(|r| r[j] * r[j]).sum::<f64>().sqrt();
        for r in m.iter_mut() {
            r[j] = if norm > 1e-12 { r[j] / norm } else { 0.0 };
        }
    }
}

/// Y = X · Ω, X sparse (n × dim), Ω dense (dim × l): n × l.
fn times_dense(x: &[&Sparse], omega: &[Vec<f64>], l: usize) -> Vec<Vec<f64>> {
    x.iter()
        .map(|row| {
            let mut out = vec![0.0; l];
            for (c, v) in row.iter() {
                for (o, w) in out.iter_mut().zip(&omega[*c]) {
                    *o += v * w;
                }
            }
            out
        })
        .collect()
}

/// Z = Xᵀ · Y, X sparse (n × dim), Y dense (n × l): dim × l.
fn transpose_times(x: &[&Sparse], y: &[Vec<f64>], dim: usize, l: usize) -> Vec<Vec<f64>> {
    let mut z = vec![vec![0.0; l]; dim];
    for (row, yr) in x.iter().zip(y) {
        for (c, v) in row.iter() {
            for (o, w) in z[*c].iter_mut().zip(yr) {
                *o += v * w;
            }
        }
    }
    z
}

/// Eigenvalues and eigenvectors (as columns of the returned matrix) of a symmetric matrix, by cyclic Jacobi
/// rotations; sorted by eigenvalue, largest first.
fn symmetric_eigen(mut a: Vec<Vec<f64>>) -> (Vec<f64>, Vec<Vec<f64>>) {
    let n = a.len();
    let mut v: Vec<Vec<f64>> = (0..n).map(|i| (0..n).map(|j| if i == j { 1.0 } else { 0.0 }).collect()).collect();
    for _sweep in 0..60 {
        let off: f64 = (0..n)
            .flat_map(|i| (0..n).filter(move |j| *j != i).map(move |j| (i, j)))
            .map(|(i, j)| a[i][j] * a[i][j])
            .sum();
        if off < 1e-22 {
            break;
        }
        for p in 0..n {
            for q in p + 1..n {
                if a[p][q].abs() < 1e-300 {
                    continue;
                }
                let theta = (a[q][q] - a[p][p]) / (2.0 * a[p][q]);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let t = if theta == 0.0 { 1.0 } else { t };
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                for row in a.iter_mut() {
                    let (akp, akq) = (row[p], row[q]);
                    row[p] = c * akp - s * akq;
                    row[q] = s * akp + c * akq;
                }
                let new_p: Vec<f64> = a[p].iter().zip(&a[q]).map(|(x, y)| c * x - s * y).collect();
                let new_q: Vec<f64> = a[p].iter().zip(&a[q]).map(|(x, y)| s * x + c * y).collect();
                a[p] = new_p;
                a[q] = new_q;
                for row in v.iter_mut() {
                    let (vkp, vkq) = (row[p], row[q]);
                    row[p] = c * vkp - s * vkq;
                    row[q] = s * vkp + c * vkq;
                }
            }
        }
    }
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|x, y| a[*y][*y].total_cmp(&a[*x][*x]).then(x.cmp(y)));
    let values = order.iter().map(|i| a[*i][*i]).collect();
    let vectors = (0..n).map(|r| order.iter().map(|c| v[r][*c]).collect()).collect();
    (values, vectors)
}

impl Projection {
    /// The top `rank` right singular vectors of the rows `x` (over `dim` columns).
    pub fn fit(x: &[&Sparse], dim: usize, rank: usize, seed: u64) -> Self {
        let rank = rank.min(x.len()).min(dim);
        if rank == 0 {
            return Self { components: Vec::new() };
        }
        let l = (rank + 10).min(x.len()).min(dim);
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
        let omega: Vec<Vec<f64>> = (0..dim).map(|_| (0..l).map(|_| gaussian(&mut rng)).collect()).collect();
        // The range of X, sharpened by two power iterations.
        let mut y = times_dense(x, &omega, l);
        orthonormalise(&mut y, l);
        for _ in 0..2 {
            let mut z = transpose_times(x, &y, dim, l);
            orthonormalise(&mut z, l);
            y = times_dense(x, &z, l);
            orthonormalise(&mut y, l);
        }
        // B = Qᵀ X (l × dim), then B Bᵀ = U Σ² Uᵀ; the right singular vectors are Bᵀ U Σ⁻¹.
        let bt = transpose_times(x, &y, dim, l); // dim × l, i.e. Bᵀ
        let mut bbt = vec![vec![0.0; l]; l];
        for row in &bt {
            for i in 0..l {
                if row[i] == 0.0 {
                    continue;
                }
                for j in 0..l {
                    bbt[i][j] += row[i] * row[j];
                }
            }
        }
        let (values, u) = symmetric_eigen(bbt);
        let mut components = Vec::with_capacity(rank);
        for c in 0..rank {
            let sigma = values[c].max(0.0).sqrt();
            if sigma < 1e-9 {
                break;
            }
            let mut comp: Vec<f64> =
                bt.iter().map(|row| row.iter().zip(&u).map(|(b, ur)| b * ur[c]).sum::<f64>() / sigma).collect();
            // A sign fixed by the heaviest column, so the projection does not flip between runs.
            let heaviest = comp
                .iter()
                .enumerate()
                .max_by(|a, b| a.1.abs().total_cmp(&b.1.abs()).then(b.0.cmp(&a.0)))
                .map(|(i, _)| i);
            if let Some(h) = heaviest
                && comp[h] < 0.0
            {
                for x in &mut comp {
                    *x = -*x;
                }
            }
            components.push(comp);
        }
        Self { components }
    }

    /// Components kept.
    pub fn rank(&self) -> usize {
        self.components.len()
    }

    /// A row in component space, unit length (zero stays zero).
    pub fn project(&self, row: &Sparse) -> Vec<f64> {
        let mut out: Vec<f64> = self.components.iter().map(|c| row.iter().map(|(i, v)| v * c[*i]).sum()).collect();
        let norm = out.iter().map(|x| x * x).sum::<f64>().sqrt();
        if norm > 0.0 {
            for x in &mut out {
                *x /= norm;
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eigen_of_a_small_matrix() {
        // [[2, 1], [1, 2]]: eigenvalues 3 and 1, vectors (1, 1)/√2 and (1, -1)/√2.
        let (values, vectors) = symmetric_eigen(vec![vec![2.0, 1.0], vec![1.0, 2.0]]);
        assert!((values[0] - 3.0).abs() < 1e-12 && (values[1] - 1.0).abs() < 1e-12);
        assert!((vectors[0][0].abs() - std::f64::consts::FRAC_1_SQRT_2).abs() < 1e-12);
        assert!((vectors[0][0] - vectors[1][0]).abs() < 1e-12);
    }

    #[test]
    fn words_used_together_meet() {
        // Columns 0 and 1 always come together, 2 and 3 too: two components; a row with only column 1 lands where
        // rows with column 0 are.
        let rows: Vec<Sparse> =
            (0..20).map(|i| if i % 2 == 0 { vec![(0, 0.8), (1, 0.6)] } else { vec![(2, 0.6), (3, 0.8)] }).collect();
        let refs: Vec<&Sparse> = rows.iter().collect();
        let p = Projection::fit(&refs, 4, 2, 1);
        assert_eq!(p.rank(), 2);
        let a = p.project(&vec![(0, 1.0)]);
        let b = p.project(&vec![(1, 1.0)]);
        let c = p.project(&vec![(3, 1.0)]);
        let dot = |x: &[f64], y: &[f64]| x.iter().zip(y).map(|(p, q)| p * q).sum::<f64>();
        assert!(dot(&a, &b) > 0.99, "{}", dot(&a, &b));
        assert!(dot(&a, &c).abs() < 1e-6);
        assert_eq!(Projection::fit(&refs, 4, 2, 1), p);
    }
}
