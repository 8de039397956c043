//! A confusion matrix over named classes, with accuracy summaries and CSV /
//! Markdown export.
//!
//! Rows are true classes, columns are predicted classes:
//! `counts()[target][predicted]`.

use std::fmt::Write as _;

/// Errors raised when updating or merging a confusion matrix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfusionError {
    /// A target or predicted class index is outside `0..num_classes`.
    #[error("{role} class index {index} is out of range: the matrix has {num_classes} classes")]
    ClassOutOfRange {
        /// `"target"` or `"predicted"`.
        role: &'static str,
        /// The offending index.
        index: i64,
        /// The number of classes of the matrix.
        num_classes: usize,
    },
    /// `add_batch` received slices of different lengths.
    #[error("batch has {targets} targets but {predicted} predictions")]
    LengthMismatch {
        /// Number of targets.
        targets: usize,
        /// Number of predictions.
        predicted: usize,
    },
    /// `merge` was given a matrix over different classes.
    #[error("cannot merge confusion matrices over different classes ({ours:?} vs {theirs:?})")]
    ClassesDiffer {
        /// Class names of the matrix being merged into.
        ours: Vec<String>,
        /// Class names of the other matrix.
        theirs: Vec<String>,
    },
}

/// Counts of (true class, predicted class) pairs.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ConfusionMatrix {
    class_names: Vec<String>,
    counts: Vec<Vec<u64>>,
}

impl ConfusionMatrix {
    /// Creates an all-zero matrix over the given classes.
    pub fn new(class_names: Vec<String>) -> Self {
        let n = class_names.len();
        Self {
            class_names,
            counts: vec![vec![0; n]; n],
        }
    }

    /// The class names, in index order.
    pub fn class_names(&self) -> &[String] {
        &self.class_names
    }

    /// The number of classes.
    pub fn num_classes(&self) -> usize {
        self.class_names.len()
    }

    fn check(&self, role: &'static str, index: i64) -> Result<usize, ConfusionError> {
        usize::try_from(index)
            .ok()
            .filter(|&i| i < self.num_classes())
            .ok_or(ConfusionError::ClassOutOfRange {
                role,
                index,
                num_classes: self.num_classes(),
            })
    }

    /// Records one sample of true class `target` predicted as `predicted`.
    pub fn add(&mut self, target: usize, predicted: usize) -> Result<(), ConfusionError> {
        let as_i64 = |i: usize| i64::try_from(i).unwrap_or(i64::MAX);
        let t = self.check("target", as_i64(target))?;
        let p = self.check("predicted", as_i64(predicted))?;
        self.counts[t][p] += 1;
        Ok(())
    }

    /// Records a batch of samples; nothing is recorded if any index is invalid.
    pub fn add_batch(&mut self, targets: &[i64], predicted: &[i64]) -> Result<(), ConfusionError> {
        if targets.len() != predicted.len() {
            return Err(ConfusionError::LengthMismatch {
                targets: targets.len(),
                predicted: predicted.len(),
            });
        }
        let pairs = targets
            .iter()
            .zip(predicted)
            .map(|(&t, &p)| Ok((self.check("target", t)?, self.check("predicted", p)?)))
            .collect::<Result<Vec<_>, ConfusionError>>()?;
        for (t, p) in pairs {
            self.counts[t][p] += 1;
        }
        Ok(())
    }

    /// Adds all counts of `other`, which must have the same class names.
    pub fn merge(&mut self, other: &ConfusionMatrix) -> Result<(), ConfusionError> {
        if self.class_names != other.class_names {
            return Err(ConfusionError::ClassesDiffer {
                ours: self.class_names.clone(),
                theirs: other.class_names.clone(),
            });
        }
        for (row, other_row) in self.counts.iter_mut().zip(&other.counts) {
            for (c, o) in row.iter_mut().zip(other_row) {
                *c += o;
            }
        }
        Ok(())
    }

    /// The counts, indexed `[target][predicted]`.
    pub fn counts(&self) -> &[Vec<u64>] {
        &self.counts
    }

    /// The count for one (target, predicted) pair, or `None` if out of range.
    pub fn get(&self, target: usize, predicted: usize) -> Option<u64> {
        self.counts.get(target)?.get(predicted).copied()
    }

    /// The total number of samples recorded.
    pub fn total(&self) -> u64 {
        self.counts.iter().flatten().sum()
    }

    /// The number of correctly classified samples (the diagonal).
    pub fn correct(&self) -> u64 {
        (0..self.num_classes()).map(|i| self.counts[i][i]).sum()
    }

    /// The number of samples of each true class (row sums).
    pub fn class_totals(&self) -> Vec<u64> {
        self.counts.iter().map(|row| row.iter().sum()).collect()
    }

    /// Overall accuracy in `[0, 1]`; `0.0` when no samples were recorded.
    pub fn accuracy(&self) -> f64 {
        ratio(self.correct(), self.total())
    }

    /// Recall of each true class in `[0, 1]`; `0.0` for a class with no samples.
    pub fn per_class_accuracy(&self) -> Vec<f64> {
        self.class_totals()
            .iter()
            .enumerate()
            .map(|(i, &n)| ratio(self.counts[i][i], n))
            .collect()
    }

    /// CSV with a header row of class names; each row starts with the true
    /// class name. The corner cell is `true\predicted`.
    pub fn to_csv(&self) -> String {
        let mut out = String::from("true\\predicted");
        for name in &self.class_names {
            out.push(',');
            out.push_str(&csv_field(name));
        }
        out.push('\n');
        for (name, row) in self.class_names.iter().zip(&self.counts) {
            out.push_str(&csv_field(name));
            for c in row {
                // Writing to a String cannot fail.
                let _ = write!(out, ",{c}");
            }
            out.push('\n');
        }
        out
    }

    /// A Markdown table of the counts with a per-class accuracy column and an
    /// overall accuracy line.
    pub fn to_markdown(&self) -> String {
        let mut out = String::from("| true \\ predicted |");
        for name in &self.class_names {
            let _ = write!(out, " {} |", markdown_cell(name));
        }
        out.push_str(" accuracy |\n|---|");
        for _ in &self.class_names {
            out.push_str("---:|");
        }
        out.push_str("---:|\n");
        let per_class = self.per_class_accuracy();
        for ((name, row), acc) in self.class_names.iter().zip(&self.counts).zip(per_class) {
            let _ = write!(out, "| {} |", markdown_cell(name));
            for c in row {
                let _ = write!(out, " {c} |");
            }
            let _ = writeln!(out, " {:.1} % |", acc * 100.0);
        }
        let _ = writeln!(
            out,
            "\nOverall accuracy: {:.2} % ({} / {})",
            self.accuracy() * 100.0,
            self.correct(),
            self.total()
        );
        out
    }
}

fn ratio(num: u64, den: u64) -> f64 {
    if den == 0 {
        0.0
    } else {
        num as f64 / den as f64
    }
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn markdown_cell(s: &str) -> String {
    s.replace('|', "\\|").replace(['\n', '\r'], " ")
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn names(n: &[&str]) -> Vec<String> {
        n.iter().map(|s| s.to_string()).collect()
    }

    /// Hand-computed example over 3 classes and 10 samples:
    ///
    /// ```text
    ///            pred cat  dog  bird
    /// true cat        3     1    0     (4 samples, recall 3/4)
    /// true dog        1     2    1     (4 samples, recall 2/4)
    /// true bird       0     0    2     (2 samples, recall 2/2)
    /// ```
    fn example() -> ConfusionMatrix {
        let mut m = ConfusionMatrix::new(names(&["cat", "dog", "bird"]));
        let targets = [0, 0, 0, 0, 1, 1, 1, 1, 2, 2];
        let predicted = [0, 0, 0, 1, 0, 1, 1, 2, 2, 2];
        m.add_batch(&targets, &predicted).unwrap();
        m
    }

    #[test]
    fn hand_computed_example() {
        let m = example();
        assert_eq!(m.counts(), [vec![3, 1, 0], vec![1, 2, 1], vec![0, 0, 2]]);
        assert_eq!(m.total(), 10);
        assert_eq!(m.correct(), 7);
        assert_eq!(m.accuracy(), 0.7);
        assert_eq!(m.per_class_accuracy(), vec![0.75, 0.5, 1.0]);
        assert_eq!(m.class_totals(), vec![4, 4, 2]);
        assert_eq!(m.get(1, 2), Some(1));
        assert_eq!(m.get(3, 0), None);
    }

    #[test]
    fn add_single_and_out_of_range() {
        let mut m = ConfusionMatrix::new(names(&["a", "b"]));
        m.add(1, 0).unwrap();
        assert_eq!(m.counts(), [vec![0, 0], vec![1, 0]]);
        assert_eq!(
            m.add(2, 0),
            Err(ConfusionError::ClassOutOfRange {
                role: "target",
                index: 2,
                num_classes: 2
            })
        );
        let err = m.add(0, 5).unwrap_err();
        assert_eq!(
            err.to_string(),
            "predicted class index 5 is out of range: the matrix has 2 classes"
        );
        assert_eq!(m.total(), 1);
    }

    #[test]
    fn bad_batch_records_nothing() {
        let mut m = ConfusionMatrix::new(names(&["a", "b"]));
        assert!(matches!(
            m.add_batch(&[0, 1, -1], &[0, 1, 1]),
            Err(ConfusionError::ClassOutOfRange {
                role: "target",
                index: -1,
                ..
            })
        ));
        assert!(matches!(
            m.add_batch(&[0, 1], &[0, 2]),
            Err(ConfusionError::ClassOutOfRange {
                role: "predicted",
                index: 2,
                ..
            })
        ));
        assert_eq!(
            m.add_batch(&[0, 1], &[0]),
            Err(ConfusionError::LengthMismatch {
                targets: 2,
                predicted: 1
            })
        );
        assert_eq!(m.total(), 0);
    }

    #[test]
    fn empty_matrix_has_zero_accuracy() {
        let m = ConfusionMatrix::new(names(&["a", "b"]));
        assert_eq!(m.accuracy(), 0.0);
        assert_eq!(m.per_class_accuracy(), vec![0.0, 0.0]);
        assert_eq!(m.total(), 0);
    }

    #[test]
    fn merge_adds_counts() {
        let mut a = example();
        let b = example();
        a.merge(&b).unwrap();
        assert_eq!(a.counts(), [vec![6, 2, 0], vec![2, 4, 2], vec![0, 0, 4]]);
        assert_eq!(a.accuracy(), 0.7);
        let other = ConfusionMatrix::new(names(&["cat", "dog"]));
        assert!(matches!(
            a.merge(&other),
            Err(ConfusionError::ClassesDiffer { .. })
        ));
        assert_eq!(a.total(), 20);
    }

    #[test]
    fn csv_export() {
        assert_eq!(
            example().to_csv(),
            "true\\predicted,cat,dog,bird\ncat,3,1,0\ndog,1,2,1\nbird,0,0,2\n"
        );
        let m = ConfusionMatrix::new(names(&["a,b", "say \"hi\""]));
        assert_eq!(
            m.to_csv(),
            "true\\predicted,\"a,b\",\"say \"\"hi\"\"\"\n\"a,b\",0,0\n\"say \"\"hi\"\"\",0,0\n"
        );
    }

    #[test]
    fn markdown_export() {
        let md = example().to_markdown();
        let expected = "\
| true \\ predicted | cat | dog | bird | accuracy |
|---|---:|---:|---:|---:|
| cat | 3 | 1 | 0 | 75.0 % |
| dog | 1 | 2 | 1 | 50.0 % |
| bird | 0 | 0 | 2 | 100.0 % |

Overall accuracy: 70.00 % (7 / 10)
";
        assert_eq!(md, expected);
    }
}
