//! Writing a benchmark's results: a JSON file with every measurement and the machine, and a
//! Markdown summary, both under the output directory.

use std::path::Path;

use serde::Serialize;

use crate::machine::Machine;

/// A report as written to JSON: the benchmark's own measurements plus the machine.
#[derive(Debug, Serialize)]
pub struct Envelope<'a, T: Serialize> {
    pub benchmark: &'a str,
    pub machine: &'a Machine,
    pub results: &'a T,
}

/// Publishes a benchmark's results: prints `markdown` on stdout and writes
/// `<output>/<benchmark>-sf<scale>.json` (every measurement and the machine) and `.md`,
/// saying so on stderr. Returns the file name stem, for further files such as a chart.
pub fn publish<T: Serialize>(
    output: &Path,
    benchmark: &str,
    scale: f64,
    results: &T,
    markdown: &str,
) -> Result<String, String> {
    println!("{markdown}");
    std::fs::create_dir_all(output)
        .map_err(|e| format!("cannot create {}: {e}", output.display()))?;
    let machine = Machine::describe();
    // Not `Path::with_extension`: a scale such as 0.01 has a dot of its own.
    let stem = format!("{benchmark}-sf{scale}");
    let json_path = output.join(format!("{stem}.json"));
    let envelope = Envelope {
        benchmark,
        machine: &machine,
        results,
    };
    let json = serde_json::to_string_pretty(&envelope).map_err(|e| e.to_string())?;
    std::fs::write(&json_path, json)
        .map_err(|e| format!("cannot write {}: {e}", json_path.display()))?;
    let md_path = output.join(format!("{stem}.md"));
    let text = format!("{markdown}\n\nMachine: {}\n", machine.summary());
    std::fs::write(&md_path, text)
        .map_err(|e| format!("cannot write {}: {e}", md_path.display()))?;
    for path in [json_path, md_path] {
        eprintln!("wrote {}", path.display());
    }
    Ok(stem)
}

/// The median of `values` (NaN when empty).
pub fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    match sorted.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

/// The `p`-th percentile (0–100) of `values`, nearest rank.
pub fn percentile(values: &[f64], p: f64) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}
