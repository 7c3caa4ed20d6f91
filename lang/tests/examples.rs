//! Every `.qnn` file in `examples/` parses and checks without errors or warnings; its AST is
//! snapshotted (`tests/snapshots/examples__<name>.snap`) after the check summary and the checked
//! model (shapes, formats, roundings and arithmetic of every node).

use std::path::Path;

#[test]
fn every_example_checks_cleanly_and_its_ast_matches_the_snapshot() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .expect("examples/ exists")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "qnn"))
        .collect();
    paths.sort();
    assert!(paths.len() >= 7, "expected the seven examples, found {}", paths.len());
    for path in paths {
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        let source = std::fs::read_to_string(&path).unwrap();
        let (module, syntax) = qc_lang::parse(&source);
        let shown = path.display().to_string();
        assert!(syntax.is_empty(), "{}", qc_lang::render(&syntax, &source, &shown, false));
        let module = module.unwrap();
        let (checked, diagnostics) = qc_lang::check(&module);
        assert!(diagnostics.is_empty(), "{}", qc_lang::render(&diagnostics, &source, &shown, false));
        let checked = checked.unwrap();
        insta::assert_snapshot!(name.clone(), format!("{}\n\n{checked}\n{module:#?}", checked.summary()));
    }
}
