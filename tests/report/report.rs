//! The report's figures and text against scikit-learn 1.9.1's output (hard-coded, generated
//! once with `classification_report`), the history CSV, and the training plot's pixels.

use crate::common::assert_close;
use minivgg::report::classification::{
    classification_report, confusion_matrix, format_confusion_matrix, ClassMetrics,
    ClassificationReport,
};
use minivgg::report::plot::{plot_history, render_history_png};
use minivgg::train::history::{EpochRecord, History};

fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// How far a figure may be from the hand computation's: rounding alone.
const ROUNDING: f64 = 1e-12;

fn assert_metrics(actual: &ClassMetrics, p: f64, r: f64, f1: f64, support: u64, what: &str) {
    assert_close(actual.precision, p, ROUNDING, &format!("{what} precision"));
    assert_close(actual.recall, r, ROUNDING, &format!("{what} recall"));
    assert_close(actual.f1, f1, ROUNDING, &format!("{what} f1"));
    assert_eq!(actual.support, support, "{what} support");
}

const Y_TRUE: [u8; 10] = [0, 0, 0, 0, 1, 1, 1, 2, 2, 2];
const Y_PRED: [u8; 10] = [0, 0, 1, 2, 1, 1, 0, 2, 2, 1];

#[test]
fn confusion_matrix_counts_true_rows_and_predicted_columns() {
    let cm = confusion_matrix(&Y_TRUE, &Y_PRED, 3);
    assert_eq!(cm, vec![vec![2, 1, 1], vec![1, 2, 0], vec![0, 1, 2]]);
}

#[test]
#[should_panic(expected = "out of range")]
fn confusion_matrix_rejects_a_label_beyond_the_classes() {
    confusion_matrix(&[0, 3], &[0, 1], 3);
}

#[test]
fn report_figures_match_hand_computation() {
    let report = classification_report(
        &Y_TRUE,
        &Y_PRED,
        &names(&["airplane", "automobile", "bird"]),
    );
    // Per class: tp = 2 each; predicted 3, 4, 3; true 4, 3, 3. F1 = 2tp / (true + predicted).
    assert_metrics(
        &report.per_class[0],
        2.0 / 3.0,
        0.5,
        4.0 / 7.0,
        4,
        "airplane",
    );
    assert_metrics(
        &report.per_class[1],
        0.5,
        2.0 / 3.0,
        4.0 / 7.0,
        3,
        "automobile",
    );
    assert_metrics(
        &report.per_class[2],
        2.0 / 3.0,
        2.0 / 3.0,
        2.0 / 3.0,
        3,
        "bird",
    );
    assert_close(report.accuracy, 0.6, ROUNDING, "accuracy");
    assert_metrics(
        &report.macro_avg,
        11.0 / 18.0,
        11.0 / 18.0,
        38.0 / 63.0,
        10,
        "macro avg",
    );
    assert_metrics(
        &report.weighted_avg,
        37.0 / 60.0,
        0.6,
        0.6,
        10,
        "weighted avg",
    );
}

#[test]
fn report_text_matches_sklearn_byte_for_byte() {
    let report = classification_report(
        &Y_TRUE,
        &Y_PRED,
        &names(&["airplane", "automobile", "bird"]),
    );
    let expected = "              precision    recall  f1-score   support\n\
                    \n    airplane       0.67      0.50      0.57         4\n  \
                    automobile       0.50      0.67      0.57         3\n        \
                    bird       0.67      0.67      0.67         3\n\
                    \n    accuracy                           0.60        10\n   \
                    macro avg       0.61      0.61      0.60        10\n\
                    weighted avg       0.62      0.60      0.60        10\n";
    assert_eq!(report.to_string(), expected);
}

#[test]
fn report_with_long_name_and_empty_class_matches_sklearn() {
    // Class "c" is neither true nor predicted: sklearn's zero_division=0 gives 0.00.
    let report = classification_report(
        &[0, 0, 1, 1],
        &[0, 1, 0, 0],
        &names(&["a", "a-very-long-class-name", "c"]),
    );
    assert_metrics(&report.per_class[2], 0.0, 0.0, 0.0, 0, "c");
    let expected = "                        precision    recall  f1-score   support\n\
                    \n                     a       0.33      0.50      0.40         2\n\
                    a-very-long-class-name       0.00      0.00      0.00         2\n                     \
                    c       0.00      0.00      0.00         0\n\
                    \n              accuracy                           0.25         4\n             \
                    macro avg       0.11      0.17      0.13         4\n          \
                    weighted avg       0.17      0.25      0.20         4\n";
    assert_eq!(report.to_string(), expected);
}

#[test]
fn cifar10_sized_report_matches_sklearn_to_the_bit() {
    let cm: Vec<Vec<u64>> = vec![
        vec![265, 18, 20, 26, 17, 23, 25, 6, 1, 9],
        vec![8, 198, 27, 0, 14, 24, 3, 23, 3, 14],
        vec![24, 9, 238, 8, 21, 7, 29, 13, 14, 15],
        vec![17, 16, 15, 248, 24, 23, 21, 18, 10, 29],
        vec![13, 6, 25, 4, 146, 18, 3, 1, 13, 1],
        vec![4, 15, 29, 13, 24, 138, 24, 18, 13, 15],
        vec![7, 14, 11, 7, 29, 0, 234, 5, 29, 20],
        vec![26, 6, 21, 11, 14, 0, 18, 201, 19, 4],
        vec![16, 8, 28, 26, 5, 15, 28, 25, 240, 19],
        vec![1, 22, 14, 2, 7, 16, 21, 15, 18, 190],
    ];
    let class_names = names(&minivgg::data::cifar10::CLASS_NAMES);
    let report = ClassificationReport::from_confusion(&cm, &class_names);
    // sklearn's averages (numpy pairwise sums), compared exactly.
    assert_eq!(report.accuracy, 0.6102385107620709);
    let macro_avg = [
        report.macro_avg.precision,
        report.macro_avg.recall,
        report.macro_avg.f1,
    ];
    assert_eq!(
        macro_avg,
        [0.6075594602753739, 0.6093099602568778, 0.6057871737209555]
    );
    let weighted = [
        report.weighted_avg.precision,
        report.weighted_avg.recall,
        report.weighted_avg.f1,
    ];
    assert_eq!(
        weighted,
        [0.6173354177749057, 0.6102385107620709, 0.6112478647040425]
    );
    let expected = "              precision    recall  f1-score   support\n\n    \
        airplane       0.70      0.65      0.67       410\n  \
        automobile       0.63      0.63      0.63       314\n        \
        bird       0.56      0.63      0.59       378\n         \
        cat       0.72      0.59      0.65       421\n        \
        deer       0.49      0.63      0.55       230\n         \
        dog       0.52      0.47      0.50       293\n        \
        frog       0.58      0.66      0.61       356\n       \
        horse       0.62      0.63      0.62       320\n        \
        ship       0.67      0.59      0.62       410\n       \
        truck       0.60      0.62      0.61       306\n\n    \
        accuracy                           0.61      3438\n   \
        macro avg       0.61      0.61      0.61      3438\n\
        weighted avg       0.62      0.61      0.61      3438\n";
    assert_eq!(report.to_string(), expected);
}

#[test]
fn confusion_matrix_text_labels_rows_and_columns() {
    let cm = confusion_matrix(&Y_TRUE, &Y_PRED, 3);
    let text = format_confusion_matrix(&cm, &names(&["airplane", "automobile", "bird"]));
    let expected = "true\\pred  airpl autom  bird\n  \
                    airplane     2     1     1\n\
                    automobile     1     2     0\n      \
                    bird     0     1     2\n";
    assert_eq!(text, expected);
    // Names that 5 characters would not tell apart head their columns whole.
    let text = format_confusion_matrix(&cm, &names(&["class_a", "class_b", "class_cc"]));
    assert!(
        text.starts_with("true\\pred class_a class_b class_c\n"),
        "{text}"
    );
}

fn synthetic_history(epochs: usize) -> History {
    let mut h = History::default();
    for i in 0..epochs {
        let t = i as f64;
        h.push(EpochRecord {
            epoch: i,
            seconds: 12.5 + t / 3.0,
            loss: 0.4 + 1.2 * (-t / 8.0).exp(),
            acc: 0.9 - 0.5 * (-t / 8.0).exp(),
            val_loss: 0.55 + 0.95 * (-t / 10.0).exp(),
            val_acc: 0.83 - 0.4 * (-t / 10.0).exp(),
        });
    }
    h
}

#[test]
fn history_push_and_last() {
    let mut h = History::default();
    assert!(h.last().is_none());
    h = synthetic_history(3);
    assert_eq!(h.last().map(|r| r.epoch), Some(2));
}

#[test]
fn history_csv_has_exact_header_and_round_trips() {
    let mut h = synthetic_history(40);
    h.epochs[5].loss = f64::NAN; // a diverged epoch must survive the round trip too
    let csv = h.to_csv();
    let mut lines = csv.lines();
    assert_eq!(
        lines.next(),
        Some("epoch,seconds,loss,acc,val_loss,val_acc")
    );
    assert_eq!(lines.count(), 40);
    let back = History::from_csv(&csv).unwrap();
    assert_eq!(back.epochs.len(), 40);
    for (a, b) in h.epochs.iter().zip(&back.epochs) {
        let bits =
            |r: &EpochRecord| [r.seconds, r.loss, r.acc, r.val_loss, r.val_acc].map(f64::to_bits);
        assert_eq!(a.epoch, b.epoch);
        assert_eq!(
            bits(a),
            bits(b),
            "epoch {} changed in the round trip",
            a.epoch
        );
    }
}

#[test]
fn history_csv_written_atomically() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("history.csv");
    let h = synthetic_history(4);
    h.write_csv(&path).unwrap();
    assert_eq!(std::fs::read_to_string(&path).unwrap(), h.to_csv());
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        1,
        "temporary files left behind"
    );
}

#[test]
fn history_from_csv_errors_name_line_and_problem() {
    let header = "epoch,seconds,loss,acc,val_loss,val_acc\n";
    let cases = [
        ("", "empty"),
        ("epoch,loss\n", "line 1: expected header"),
        (
            &format!("{header}0,1,2,3,4\n") as &str,
            "line 2: expected 6 comma-separated fields, found 5",
        ),
        (
            &format!("{header}0,1,2,3,4,5\n1,1,x,3,4,5\n"),
            "line 3: field `loss` = `x` is not a number",
        ),
        (
            &format!("{header}-1,1,2,3,4,5\n"),
            "line 2: field `epoch` = `-1`",
        ),
        (
            &format!("{header}0,1,2,3,4,5\n\n"),
            "line 3: expected 6 comma-separated fields, found 1",
        ),
    ];
    for (text, expected) in cases {
        let err = History::from_csv(text).expect_err(text).to_string();
        assert!(
            err.contains(expected),
            "error for {text:?} was {err:?}, expected it to contain {expected:?}"
        );
    }
}

fn count_colour(img: &image::RgbImage, rgb: [u8; 3]) -> usize {
    img.pixels().filter(|p| p.0 == rgb).count()
}

#[test]
fn plot_renders_lines_panel_and_legend_colours() {
    let png = render_history_png(
        &synthetic_history(40),
        "Training Loss and Accuracy on CIFAR-10",
    )
    .unwrap();
    let img = image::load_from_memory_with_format(&png, image::ImageFormat::Png)
        .unwrap()
        .to_rgb8();
    assert_eq!(img.dimensions(), (800, 600));
    // Each curve is far longer than its 35 px legend handle, so only a drawn curve passes.
    for (name, rgb) in [
        ("train_loss", [0xE2, 0x4A, 0x33]),
        ("val_loss", [0x34, 0x8A, 0xBD]),
        ("train_acc", [0x98, 0x8E, 0xD5]),
        ("val_acc", [0x77, 0x77, 0x77]),
    ] {
        let n = count_colour(&img, rgb);
        assert!(n > 500, "{name} colour {rgb:02X?} on only {n} pixels");
    }
    assert!(
        count_colour(&img, [0xE5, 0xE5, 0xE5]) > 100_000,
        "no ggplot grey panel"
    );
    assert_eq!(
        img.get_pixel(2, 2).0,
        [255, 255, 255],
        "figure background is not white"
    );
    // ggplot has no black frame or black axis lines: nothing pure black outside text.
    let axes_edge_row = (600.0 * (1.0 - 0.11)) as u32;
    assert!(
        (100..720).all(|x| img.get_pixel(x, axes_edge_row).0 != [0, 0, 0]),
        "black axis line"
    );
}

#[test]
fn plot_of_one_epoch_shows_a_point_and_empty_history_is_an_error() {
    let png = render_history_png(&synthetic_history(1), "one").unwrap();
    let img = image::load_from_memory(&png).unwrap().to_rgb8();
    assert_eq!(img.dimensions(), (800, 600));
    // A dot per series at the centre of the x range; y spans 0..1.6 * 1.05 over rows 534..72.
    let row = |v: f64| (534.0 - v / 1.68 * 462.0).round() as u32;
    for (v, rgb) in [
        (1.6, [0xE2, 0x4A, 0x33]),
        (1.5, [0x34, 0x8A, 0xBD]),
        (0.4, [0x98, 0x8E, 0xD5]),
        (0.43, [0x77, 0x77, 0x77]),
    ] {
        assert_eq!(img.get_pixel(410, row(v)).0, rgb, "no dot for value {v}");
    }
    let err = render_history_png(&History::default(), "none").unwrap_err();
    assert!(err.to_string().contains("no epochs"), "{err}");
}

#[test]
fn plot_history_writes_the_png_atomically() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("plot.png");
    plot_history(
        &synthetic_history(40),
        &path,
        "Training Loss and Accuracy on CIFAR-10",
    )
    .unwrap();
    let bytes = std::fs::read(&path).unwrap();
    assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"));
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        1,
        "temporary files left behind"
    );
}
