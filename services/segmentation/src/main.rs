//! `rapport-segmentation`: serves segmentation, or brings its database up to date (`rapport-segmentation migrate`).
#[tokio::main]
async fn main() -> std::process::ExitCode {
    rapport_kit::service::main::<rapport_segmentation::app::Segmentation>().await
}
