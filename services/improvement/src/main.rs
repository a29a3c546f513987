//! `rapport-improvement`: serves improvement (`rapport-improvement`), or brings its database up to date
//! (`rapport-improvement migrate`).
#[tokio::main]
async fn main() -> std::process::ExitCode {
    rapport_kit::service::main::<rapport_improvement::app::Improvement>().await
}
