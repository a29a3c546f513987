//! `rapport-feedback`: serves feedback (`rapport-feedback`), or brings its database up to date
//! (`rapport-feedback migrate`).
#[tokio::main]
async fn main() -> std::process::ExitCode {
    rapport_kit::service::main::<rapport_feedback::app::Feedback>().await
}
