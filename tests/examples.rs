//! Every spec in `specs/` passes `qsync check` and has a sample that `qsync plan` turns
//! into rows without rejects.

use crate::support::{repo, Test};

#[test]
fn every_example_has_a_sample_that_maps_cleanly() {
    let dir = repo().join("specs");
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "qsync") {
            continue;
        }
        count += 1;
        let stem = path.file_stem().unwrap().to_str().unwrap().to_owned();
        assert!(
            dir.join("samples").join(format!("{stem}.json")).is_file(),
            "{stem} has no sample"
        );
        let out = Test::new()
            .args(&[
                "plan",
                path.to_str().unwrap(),
                "--at",
                "2024-03-10 12:00:00",
            ])
            .current_dir(&repo())
            .run();
        assert!(
            out.stdout.contains(", 0 rejected)"),
            "{stem}:\n{}",
            out.stdout
        );
        assert!(out.stderr.is_empty(), "{stem} warns:\n{}", out.stderr);
    }
    assert!(count >= 6, "only {count} example specs");
}
