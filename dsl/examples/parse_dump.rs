//! Prints the AST (or the diagnostics) of the files given: a debugging aid.
fn main() {
    let mut sources = waymark_dsl::Sources::new();
    for path in std::env::args().skip(1) {
        let text = std::fs::read_to_string(&path).expect("readable file");
        sources.add(path, text);
    }
    let (files, diagnostics) = waymark_dsl::parser::parse_all(&sources);
    for d in &diagnostics {
        let (line, col) = sources.get(d.span().file).line_col(d.span().start as usize);
        println!("{line}:{col} {} {}", d.code, d.message);
    }
    if diagnostics.is_empty() {
        println!("{}", serde_json::to_string(&files).unwrap().len());
    }
}
