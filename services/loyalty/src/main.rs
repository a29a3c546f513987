//! `rapport-loyalty`: serves loyalty (`rapport-loyalty`), or brings its database up to date (`rapport-loyalty migrate`).
use std::sync::Arc;

use rapport_kit::{auth::Role, clock::SystemClock, serve::shutdown_signal};
use rapport_loyalty::app::{Config, Loyalty};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    rapport_kit::config::exit_code("rapport-loyalty", run().await)
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let _telemetry = rapport_telemetry::init("rapport-loyalty")?;
    let config = Config::from_env()?;
    if std::env::args().nth(1).as_deref() == Some("migrate") {
        rapport_kit::db::connect_and_migrate::<rapport_loyalty::migration::Migrator>(&config.database_url).await?;
        println!("loyalty database is up to date");
        return Ok(());
    }
    let (auth, dev) = rapport_kit::auth::from_env(config.listen.ip().is_loopback())?;
    let auth = Arc::new(auth);
    let service = Loyalty::build(config, auth.clone(), Arc::new(SystemClock)).await?;
    println!("rapport-loyalty listening on {}", service.addr());
    if dev {
        println!("development token (sre, 12 h): {}", auth.issue("developer", Role::Sre, 12 * 3600));
    }
    service.run(shutdown_signal()).await?;
    Ok(())
}
