//! `rapport-referrals`: serves referrals (`rapport-referrals`), or brings its database up to date
//! (`rapport-referrals migrate`).
#[tokio::main]
async fn main() -> std::process::ExitCode {
    rapport_kit::service::main::<rapport_referrals::app::Referrals>().await
}
