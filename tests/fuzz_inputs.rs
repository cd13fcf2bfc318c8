//! Every committed fuzz input, run through its target's entry point as a test: the seeds
//! (`fuzz/seeds/TARGET/`) and every input a fuzzer found a crash with
//! (`fuzz/regressions/TARGET/`, each named after what it broke). `scripts/fuzz.sh` runs the
//! fuzzers themselves.

use std::path::Path;

use enim_labore_occaecati::fuzzing;

/// A target's name and its entry point.
type Target = (&'static str, fn(&[u8]));

const TARGETS: [Target; 8] = [
    ("connection", fuzzing::connection),
    ("handshake_request", fuzzing::handshake_request),
    ("handshake_response", fuzzing::handshake_response),
    ("deflate_parameters", fuzzing::deflate_parameters),
    ("header_lists", fuzzing::header_lists),
    ("close_payload", fuzzing::close_payload),
    ("proxy_replies", fuzzing::proxy_replies),
    ("url", fuzzing::url),
];

fn run_inputs(folder: &str) -> usize {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz")
        .join(folder);
    let mut count = 0;
    for (target, entry) in TARGETS {
        let Ok(files) = std::fs::read_dir(root.join(target)) else {
            continue;
        };
        for file in files {
            let path = file.unwrap().path();
            let input = std::fs::read(&path).unwrap();
            // A panic names the input through the test's output.
            eprintln!("{target}: {}", path.display());
            entry(&input);
            count += 1;
        }
    }
    count
}

/// The seeds, and every input a fuzzer found a crash with (none yet: the folder appears with
/// the first, beside its fix).
#[test]
fn every_committed_input_runs_clean() {
    assert!(run_inputs("seeds") >= TARGETS.len(), "seeds missing");
    run_inputs("regressions");
}

/// The fuzz crate lists exactly these targets, each with seeds.
#[test]
fn the_fuzz_crate_has_these_targets() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let manifest = std::fs::read_to_string(root.join("Cargo.toml")).unwrap();
    for (target, _) in TARGETS {
        assert!(
            manifest.contains(&format!("name = \"{target}\"")),
            "{target}"
        );
        assert!(root.join("seeds").join(target).is_dir(), "{target}");
    }
}
