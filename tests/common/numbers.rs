//! Comparing numbers: bit for bit, or within a tolerance.

/// The bits of `values`: equal exactly when the floats are the same, NaNs and signed zeros
/// included.
pub fn bits(values: &[f32]) -> Vec<u32> {
    values.iter().map(|v| v.to_bits()).collect()
}

/// Checks that `actual` is within `tolerance` of `expected`; `what` names them in a failure.
pub fn assert_close(actual: f64, expected: f64, tolerance: f64, what: &str) {
    assert!(
        (actual - expected).abs() <= tolerance,
        "{what}: got {actual}, expected {expected} (within {tolerance:e})"
    );
}

/// The largest difference between `a` and `b`, element by element.
pub fn max_difference(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max)
}
