//! The alpha grids of a ridge fit, their labels, and the warning when a chosen alpha sits at
//! an end of the grid.

/// An alpha with three significant digits, `3.98e3`, `1e-2`.
pub fn alpha_label(a: f64) -> String {
    let s = format!("{a:.2e}");
    match s.split_once('e') {
        Some((m, e)) => format!("{}e{e}", m.trim_end_matches('0').trim_end_matches('.')),
        None => s,
    }
}

/// The default alpha grid: 1e-2 ... 1e7, 5 per decade.
pub fn wide_grid() -> Vec<f64> {
    log_grid(-2.0, 7.0, 46)
}

/// Where the chosen alphas sit in the grid: a warning naming the end and what to widen when
/// any target's alpha is the smallest or the largest of `alphas` (None when all are inside).
pub fn edge_warning(alphas: &[f64], chosen: &[f64]) -> Option<String> {
    let lo = alphas.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = alphas.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if alphas.len() < 2 {
        return None;
    }
    let at_lo = chosen.iter().filter(|&&a| a == lo).count();
    let at_hi = chosen.iter().filter(|&&a| a == hi).count();
    let of = |k: usize| if chosen.len() == 1 || k == chosen.len() { String::new() } else { format!(" for {k} of {} targets", chosen.len()) };
    match (at_lo > 0, at_hi > 0) {
        (false, false) => None,
        (true, false) => Some(format!("alpha {}{} is the smallest of the grid: the best alpha may be smaller; widen the grid downwards (e.g. --alphas with values below {})", alpha_label(lo), of(at_lo), alpha_label(lo))),
        (false, true) => Some(format!("alpha {}{} is the largest of the grid: the best alpha may be larger; widen the grid upwards (e.g. --alphas with values above {})", alpha_label(hi), of(at_hi), alpha_label(hi))),
        (true, true) => Some(format!("alphas at both ends of the grid were chosen ({} for {at_lo}, {} for {at_hi} targets): widen the grid both ways", alpha_label(lo), alpha_label(hi))),
    }
}

/// `count` alphas spaced evenly in log10 from `10^lo` to `10^hi`.
pub fn log_grid(lo: f64, hi: f64, count: usize) -> Vec<f64> {
    (0..count).map(|i| 10f64.powf(lo + (hi - lo) * i as f64 / (count.max(2) - 1) as f64)).collect()
}
