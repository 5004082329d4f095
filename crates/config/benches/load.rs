//! Loading and validating the seed's complete example (`fracta.yaml` with three runtimes and a
//! Bedrock profile). Target: under 5 ms. Run with `cargo bench -p fracta-config --bench load`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::path::Path;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use fracta_config::Found;

const COMPLETE: &str = include_str!("../fixtures/seed/11-complete-example.yaml");

fn lookup(k: &str) -> Option<String> {
    match k {
        "OPENAI_API_KEY" => Some("sk-bench".into()),
        "AWS_BEARER_TOKEN_BEDROCK" => Some("bench".into()),
        _ => None,
    }
}

fn load(c: &mut Criterion) {
    let path = Path::new("fracta.yaml");
    let mut g = c.benchmark_group("complete_example");

    g.bench_function("parse_and_validate", |b| {
        b.iter(|| fracta_config::parse(black_box(COMPLETE), path).unwrap())
    });

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("fracta.yaml");
    std::fs::write(&file, COMPLETE).unwrap();
    g.bench_function("load_path", |b| {
        b.iter(|| fracta_config::load_path(black_box(&file), Found::Flag).unwrap())
    });

    let cfg = fracta_config::parse(COMPLETE, path).unwrap();
    g.bench_function("show", |b| b.iter(|| black_box(&cfg).show(&lookup)));

    g.bench_function("unset_variables", |b| {
        b.iter(|| black_box(&cfg).unset_variables(&lookup))
    });

    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = load
}
criterion_main!(benches);
