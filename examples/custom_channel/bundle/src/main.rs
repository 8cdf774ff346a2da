//! `waymark-feishu`: the whole `waymark` command (check, test, simulate,
//! run, …) with one more channel kind, `feishu`, and no engine change.

fn main() -> std::process::ExitCode {
    waymark_engine::Waymark::new()
        .channel_kind(waymark_feishu::FeishuKind)
        .main()
}
