//! `rapport-loyalty`: serves loyalty (`rapport-loyalty`), or brings its database up to date (`rapport-loyalty migrate`).
#[tokio::main]
async fn main() -> std::process::ExitCode {
    rapport_kit::service::main::<rapport_loyalty::app::Loyalty>().await
}
