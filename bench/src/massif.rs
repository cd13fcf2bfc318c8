//! `idle --massif`: where an idle connection's bytes go. The server runs under valgrind's
//! massif; `vgdb` takes a detailed heap snapshot after the warm-up connection and another with
//! every connection idle, and the report gives the heap growth per connection by allocation
//! site: the innermost frame of each allocation's stack outside the standard library.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::sys;

/// Sites that hold less than this per connection are summed into one line.
const SHOWN_MIN: f64 = 4.0;

/// The valgrind command line a server runs under, writing its profile into `dir`.
pub fn wrapper(dir: &Path, name: &str) -> Vec<String> {
    vec![
        "valgrind".to_owned(),
        "--tool=massif".to_owned(),
        // Sites down to 0.01 % of the heap are kept apart in a snapshot.
        "--threshold=0.01".to_owned(),
        // Whole source paths, which say whose code a frame is (the standard library's are
        // under `/rustc/`, dependencies' under cargo's registry).
        "--fullpath-after=".to_owned(),
        format!(
            "--massif-out-file={}",
            dir.join(format!("{name}.massif")).display()
        ),
    ]
}

/// Writes a detailed snapshot of the running server's heap into `file`.
pub async fn snapshot(pid: u32, file: &Path) -> Result<(), String> {
    let args = [
        format!("--pid={pid}"),
        "detailed_snapshot".to_owned(),
        file.display().to_string(),
    ];
    sys::run_tool("vgdb", &args, Duration::from_secs(60)).await
}

/// A heap snapshot: bytes asked for, malloc's overhead on them, and bytes by site.
#[derive(Default)]
pub struct Heap {
    useful: u64,
    extra: u64,
    sites: HashMap<String, u64>,
}

/// Reads a detailed snapshot written by [`snapshot`].
pub fn read(file: &Path) -> Result<Heap, String> {
    let text = std::fs::read_to_string(file).map_err(|e| format!("{}: {e}", file.display()))?;
    Ok(parse(&text))
}

/// A detailed snapshot's heap: its totals, and each leaf of its tree charged to its site.
fn parse(text: &str) -> Heap {
    let mut heap = Heap::default();
    // The frames from the allocation function down to the current node, one per depth.
    let mut stack: Vec<&str> = Vec::new();
    for line in text.lines() {
        if let Some(v) = line.strip_prefix("mem_heap_B=") {
            heap.useful = v.trim().parse().unwrap_or(0);
        } else if let Some(v) = line.strip_prefix("mem_heap_extra_B=") {
            heap.extra = v.trim().parse().unwrap_or(0);
        }
        // Tree lines: one space of indent per depth, then `nCHILDREN: BYTES FRAME`.
        let depth = line.len() - line.trim_start_matches(' ').len();
        let Some(node) = line[depth..].strip_prefix('n') else {
            continue;
        };
        let Some((children, rest)) = node.split_once(": ") else {
            continue;
        };
        let (Ok(children), Some((bytes, frame))) =
            (children.parse::<usize>(), rest.split_once(' '))
        else {
            continue;
        };
        let Ok(bytes) = bytes.parse::<u64>() else {
            continue;
        };
        stack.truncate(depth);
        stack.push(frame);
        if children == 0 && depth > 0 {
            *heap.sites.entry(site(&stack[1..])).or_default() += bytes;
        }
    }
    heap
}

/// Names an allocation by its stack (innermost first): the first frame outside the standard
/// library and the allocator, with the next such frame, its caller, for context.
fn site(frames: &[&str]) -> String {
    let Some(first) = frames.iter().position(|frame| !is_plumbing(frame)) else {
        return frames
            .first()
            .map_or_else(|| "?".to_owned(), |f| frame_name(f));
    };
    let caller = frames[first + 1..].iter().find(|frame| !is_plumbing(frame));
    match caller {
        Some(caller) => format!("{} ← {}", frame_name(frames[first]), frame_name(caller)),
        None => frame_name(frames[first]),
    }
}

/// Massif's leaf for the allocations too small to show, whatever their number.
const BELOW_THRESHOLD: &str = "(sites below massif's threshold, together)";

/// `0x4A9FB0: function<generics> (file.rs:12)` as `function (file.rs:12)`, generic arguments
/// cut (`<Type as Trait>::f` keeps its type and trait); massif's leaf for the sites below its
/// threshold (`in 3 places, all below massif's threshold (0.01%)`) as one name.
fn frame_name(frame: &str) -> String {
    if frame.contains("below massif's threshold") {
        return BELOW_THRESHOLD.to_owned();
    }
    let Some((_, rest)) = frame.split_once(": ") else {
        return frame.to_owned();
    };
    let (function, place) = match rest.rfind(" (") {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (rest, ""),
    };
    format!("{} {}", without_generics(function), short_place(place))
        .trim()
        .to_owned()
}

/// `a::B<T>::f<U>` as `a::B::f`, and `<a::B<T> as c::D<U>>::f` as `<a::B as c::D>::f`: a `<`
/// right after a name (or a closure's `{closure#0}`) opens generic arguments (cut, with
/// everything nested in them); any other opens a qualified path (kept).
fn without_generics(function: &str) -> String {
    let mut name = String::new();
    // For each `<` still open: whether it opened generic arguments.
    let mut open: Vec<bool> = Vec::new();
    let mut previous = ' ';
    for c in function.chars() {
        let in_generics = open.contains(&true);
        match c {
            '<' => {
                let generics = previous.is_alphanumeric() || matches!(previous, '_' | '}');
                if !generics && !in_generics {
                    name.push(c);
                }
                open.push(generics);
            }
            '>' => {
                let generics = open.pop();
                if generics == Some(false) && !open.contains(&true) {
                    name.push(c);
                }
            }
            _ if !in_generics => name.push(c),
            _ => {}
        }
        previous = c;
    }
    name
}

/// `(/root/.cargo/registry/src/index.crates.io-…/tokio-1.54.1/src/runtime/io/x.rs:12)` as
/// `(tokio-1.54.1/…/io/x.rs:12)`: the crate, and the file with its folder.
fn short_place(place: &str) -> String {
    let inner = place.trim_start_matches('(').trim_end_matches(')');
    let parts: Vec<&str> = inner.split('/').collect();
    if parts.len() <= 3 {
        return place.to_owned();
    }
    let krate = parts
        .iter()
        .position(|p| p.starts_with("index.crates.io"))
        .and_then(|i| parts.get(i + 1));
    let tail = parts[parts.len() - 2..].join("/");
    match krate {
        Some(krate) => format!("({krate}/…/{tail})"),
        None => format!("(…/{tail})"),
    }
}

/// Frames of the standard library (its sources are under `/rustc/…/library/`, the crates it
/// is built with under `/rust/deps/`) and the allocator's.
fn is_plumbing(frame: &str) -> bool {
    let function = frame.split_once(": ").map_or(frame, |(_, rest)| rest);
    frame.contains("/rustc/")
        || frame.contains("/rust/deps/")
        || frame.contains("vg_replace_malloc")
        || function.starts_with("UnknownInlinedFun")
        || [
            "malloc",
            "calloc",
            "realloc",
            "posix_memalign",
            "aligned_alloc",
            "memalign",
        ]
        .iter()
        .any(|f| function.starts_with(f))
}

/// The heap growth per connection from `before` to `after`, by site, largest first.
pub fn print_breakdown(name: &str, before: &Heap, after: &Heap, conns: usize) {
    let per = |b: u64, a: u64| (a as f64 - b as f64) / conns as f64;
    let mut rows: Vec<(&str, f64)> = after
        .sites
        .iter()
        .map(|(site, &a)| (site.as_str(), per(*before.sites.get(site).unwrap_or(&0), a)))
        .collect();
    for (site, &b) in &before.sites {
        if !after.sites.contains_key(site) {
            rows.push((site.as_str(), per(b, 0)));
        }
    }
    rows.sort_by(|x, y| y.1.total_cmp(&x.1));
    println!("\n### {name}: heap per idle connection, by allocation site (massif)\n");
    println!(
        "Heap asked for: {:.0} B per connection; the allocator's overhead on it (massif's \
         estimate: headers and alignment): {:.0} B.\n",
        per(before.useful, after.useful),
        per(before.extra, after.extra)
    );
    println!("| bytes per connection | site ← its caller |");
    println!("|---:|---|");
    let mut rest = 0.0;
    for (site, bytes) in rows {
        if bytes.abs() >= SHOWN_MIN {
            println!("| {bytes:.0} | `{}` |", site.replace('|', "\\|"));
        } else {
            rest += bytes;
        }
    }
    println!("| {rest:.0} | the other sites, each under {SHOWN_MIN:.0} B |");
}

/// Where a server's snapshots go.
pub fn files(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    (
        dir.join(format!("{name}.before")),
        dir.join(format!("{name}.after")),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generic_arguments_go_and_qualified_paths_stay() {
        assert_eq!(without_generics("a::B<T>::f<U>"), "a::B::f");
        assert_eq!(
            without_generics("<a::B<Vec<T>> as c::D<U>>::f"),
            "<a::B as c::D>::f"
        );
        assert_eq!(without_generics("{closure#0}<(A, B)>"), "{closure#0}");
    }

    /// A tree as massif writes it: each leaf goes to its innermost frame outside the standard
    /// library, named with its caller; the leaf of sites below the threshold goes under one
    /// name whatever their number.
    #[test]
    fn leaves_are_charged_to_their_first_frame_of_our_own() {
        let text = "\
mem_heap_B=1000
mem_heap_extra_B=64
heap_tree=detailed
n3: 1000 (heap allocation functions) malloc/new/new[], --alloc-fns, etc.
 n1: 600 0x1: alloc (/rustc/abc/library/alloc/src/alloc.rs:95)
  n2: 600 0x2: tokio::Cell<F>::new (/root/.cargo/registry/src/index.crates.io-1/tokio-1.0/src/task/core.rs:261)
   n0: 500 0x3: my::spawn<X> (/work/src/server/mod.rs:10)
   n0: 100 in 3 places, all below massif's threshold (0.01%)
 n1: 300 0x4: malloc (vg_replace_malloc.c:381)
  n0: 300 0x5: ring::key (/root/.cargo/registry/src/index.crates.io-1/ring-0.17/src/aead.rs:7)
 n0: 100 in 7 places, all below massif's threshold (0.01%)
";
        let heap = parse(text);
        assert_eq!((heap.useful, heap.extra), (1000, 64));
        let cell = "tokio::Cell::new (tokio-1.0/…/task/core.rs:261)";
        let mut sites: Vec<(String, u64)> = heap.sites.into_iter().collect();
        sites.sort();
        assert_eq!(
            sites,
            vec![
                (BELOW_THRESHOLD.to_owned(), 100),
                ("ring::key (ring-0.17/…/src/aead.rs:7)".to_owned(), 300),
                (format!("{cell} ← {BELOW_THRESHOLD}"), 100),
                (format!("{cell} ← my::spawn (…/server/mod.rs:10)"), 500),
            ]
        );
    }
}
