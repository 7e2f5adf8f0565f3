//! Confusion matrix and scikit-learn's `classification_report`, figure for figure and byte for
//! byte, so a run's printout can be compared with the tutorial's.

use std::fmt;

/// Counts `[true class][predicted class]` over paired labels.
///
/// # Panics
/// If the slices differ in length or a label is not below `num_classes`: both mean the caller
/// paired the wrong arrays, and a silently wrong report would be worse.
pub fn confusion_matrix(y_true: &[u8], y_pred: &[u8], num_classes: usize) -> Vec<Vec<u64>> {
    assert_eq!(
        y_true.len(),
        y_pred.len(),
        "confusion_matrix: {} true labels but {} predictions",
        y_true.len(),
        y_pred.len()
    );
    let mut cm = vec![vec![0u64; num_classes]; num_classes];
    for (&t, &p) in y_true.iter().zip(y_pred) {
        let (t, p) = (usize::from(t), usize::from(p));
        assert!(
            t < num_classes && p < num_classes,
            "confusion_matrix: label {} out of range for {num_classes} classes",
            t.max(p)
        );
        cm[t][p] += 1;
    }
    cm
}

/// One row of the report. For the averages, `support` is the total number of samples.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ClassMetrics {
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    pub support: u64,
}

/// What scikit-learn's `classification_report(..., target_names=class_names)` reports, with
/// `zero_division=0` (an undefined ratio counts as 0.0, as sklearn's default "warn" does).
#[derive(Debug, Clone, PartialEq)]
pub struct ClassificationReport {
    pub class_names: Vec<String>,
    pub per_class: Vec<ClassMetrics>,
    pub accuracy: f64,
    pub macro_avg: ClassMetrics,
    pub weighted_avg: ClassMetrics,
}

impl ClassificationReport {
    /// Builds the report from a square `[true][pred]` matrix whose order matches `class_names`.
    ///
    /// # Panics
    /// If the matrix is not `class_names.len()` square.
    pub fn from_confusion(cm: &[Vec<u64>], class_names: &[String]) -> Self {
        let n = class_names.len();
        assert!(
            cm.len() == n && cm.iter().all(|row| row.len() == n),
            "confusion matrix is not {n}x{n} for {n} class names"
        );
        let per_class: Vec<ClassMetrics> = (0..n)
            .map(|c| {
                let tp = cm[c][c];
                let true_sum: u64 = cm[c].iter().sum();
                let pred_sum: u64 = cm.iter().map(|row| row[c]).sum();
                ClassMetrics {
                    precision: ratio(tp as f64, pred_sum as f64),
                    recall: ratio(tp as f64, true_sum as f64),
                    // sklearn computes F1 from counts, not from the rounded precision and recall.
                    f1: ratio(2.0 * tp as f64, (true_sum + pred_sum) as f64),
                    support: true_sum,
                }
            })
            .collect();
        let total: u64 = per_class.iter().map(|m| m.support).sum();
        let correct: u64 = (0..n).map(|c| cm[c][c]).sum();

        let column =
            |f: fn(&ClassMetrics) -> f64| -> Vec<f64> { per_class.iter().map(f).collect() };
        let weights: Vec<f64> = per_class.iter().map(|m| m.support as f64).collect();
        let mean = |v: &[f64]| {
            if v.is_empty() {
                0.0
            } else {
                numpy_sum(v) / v.len() as f64
            }
        };
        // np.average(a, weights); sklearn falls back to the plain mean when all weights are 0.
        let weighted = |v: &[f64]| {
            let w = numpy_sum(&weights);
            if w == 0.0 {
                mean(v)
            } else {
                let products: Vec<f64> = v.iter().zip(&weights).map(|(a, b)| a * b).collect();
                numpy_sum(&products) / w
            }
        };
        let (p, r, f) = (
            column(|m| m.precision),
            column(|m| m.recall),
            column(|m| m.f1),
        );
        ClassificationReport {
            class_names: class_names.to_vec(),
            accuracy: ratio(correct as f64, total as f64),
            macro_avg: ClassMetrics {
                precision: mean(&p),
                recall: mean(&r),
                f1: mean(&f),
                support: total,
            },
            weighted_avg: ClassMetrics {
                precision: weighted(&p),
                recall: weighted(&r),
                f1: weighted(&f),
                support: total,
            },
            per_class,
        }
    }
}

/// The report for paired labels over all of `class_names` (sklearn with `labels=range(n)`).
pub fn classification_report(
    y_true: &[u8],
    y_pred: &[u8],
    class_names: &[String],
) -> ClassificationReport {
    ClassificationReport::from_confusion(
        &confusion_matrix(y_true, y_pred, class_names.len()),
        class_names,
    )
}

/// sklearn's `zero_division=0`.
fn ratio(num: f64, den: f64) -> f64 {
    if den == 0.0 {
        0.0
    } else {
        num / den
    }
}

/// numpy's pairwise summation (`np.sum` of a contiguous f64 array), so averages agree with
/// sklearn to the last bit and the printed rounding never differs at a tie.
fn numpy_sum(a: &[f64]) -> f64 {
    const BLOCK: usize = 128;
    let n = a.len();
    if n < 8 {
        a.iter().fold(0.0, |s, &x| s + x)
    } else if n <= BLOCK {
        let mut r = [0.0; 8];
        r.copy_from_slice(&a[..8]);
        let unrolled_end = n - n % 8;
        for chunk in a[8..unrolled_end].chunks_exact(8) {
            for (acc, &x) in r.iter_mut().zip(chunk) {
                *acc += x;
            }
        }
        let mut res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        for &x in &a[unrolled_end..] {
            res += x;
        }
        res
    } else {
        let half = n / 2;
        let half = half - half % 8;
        numpy_sum(&a[..half]) + numpy_sum(&a[half..])
    }
}

const DIGITS: usize = 2;

impl fmt::Display for ClassificationReport {
    /// sklearn's text layout with `digits=2`, ending in a newline as sklearn's string does.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let longest = self
            .class_names
            .iter()
            .map(|n| n.chars().count())
            .max()
            .unwrap_or(0);
        let w = longest.max("weighted avg".len()).max(DIGITS);
        let row = |f: &mut fmt::Formatter<'_>, name: &str, m: &ClassMetrics| {
            writeln!(
                f,
                "{name:>w$}  {:>9.DIGITS$} {:>9.DIGITS$} {:>9.DIGITS$} {:>9}",
                m.precision, m.recall, m.f1, m.support
            )
        };
        writeln!(
            f,
            "{:>w$}  {:>9} {:>9} {:>9} {:>9}",
            "", "precision", "recall", "f1-score", "support"
        )?;
        writeln!(f)?;
        for (name, m) in self.class_names.iter().zip(&self.per_class) {
            row(f, name, m)?;
        }
        writeln!(f)?;
        writeln!(
            f,
            "{:>w$}  {:>9} {:>9} {:>9.DIGITS$} {:>9}",
            "accuracy", "", "", self.accuracy, self.weighted_avg.support
        )?;
        row(f, "macro avg", &self.macro_avg)?;
        row(f, "weighted avg", &self.weighted_avg)
    }
}

/// The matrix as a text table: one row per true class (labelled with its name), one column per
/// predicted class (headed by the name's first 5 characters, to keep 10 columns on a terminal,
/// or more where 5 would not tell two classes apart).
pub fn format_confusion_matrix(cm: &[Vec<u64>], class_names: &[String]) -> String {
    const SHORT: usize = 5;
    let label_w = class_names
        .iter()
        .map(|n| n.chars().count())
        .max()
        .unwrap_or(0)
        .max("true\\pred".len());
    let widest_count = cm
        .iter()
        .flatten()
        .map(|c| c.to_string().len())
        .max()
        .unwrap_or(1);
    // Column heads are the names cut to SHORT characters, or to as many as keep them apart
    // (class0, class1, … stay whole).
    let cut = |n: usize| -> Vec<String> {
        class_names
            .iter()
            .map(|name| name.chars().take(n).collect())
            .collect()
    };
    let distinct = |heads: &[String]| {
        let set: std::collections::HashSet<&String> = heads.iter().collect();
        set.len() == heads.len()
    };
    let longest = class_names
        .iter()
        .map(|n| n.chars().count())
        .max()
        .unwrap_or(0);
    let heads = (SHORT..longest)
        .map(cut)
        .find(|heads| distinct(heads))
        .unwrap_or_else(|| cut(longest));
    let widest_head = heads.iter().map(|h| h.chars().count()).max().unwrap_or(0);
    let col_w = widest_count.max(SHORT).max(widest_head);
    let mut out = format!("{:<label_w$}", "true\\pred");
    for short in &heads {
        out.push_str(&format!(" {short:>col_w$}"));
    }
    out.push('\n');
    for (name, row) in class_names.iter().zip(cm) {
        out.push_str(&format!("{name:>label_w$}"));
        for count in row {
            out.push_str(&format!(" {count:>col_w$}"));
        }
        out.push('\n');
    }
    out
}
