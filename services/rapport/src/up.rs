//! `rapport up`: every service in one process on loopback, SQLite files under the data folder, one development
//! key set (each service signs with its own key, kept under the data folder), each service's events delivered to the others, and a development token for the CLI.
use std::{net::SocketAddr, path::Path, sync::Arc};

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use rapport_kit::{auth::Role, clock::SystemClock, serve::shutdown_signal, service::Service};
use tokio::sync::watch;

use crate::{cli::UpArgs, output};

/// Where `rapport up` writes the development token for the CLI.
pub fn token_path(data_dir: &str) -> std::path::PathBuf {
    Path::new(data_dir).join("dev-token")
}

fn sqlite(data_dir: &str, service: &str) -> String {
    std::env::var("DATABASE_URL").unwrap_or_else(|_| format!("sqlite://{data_dir}/{service}.db?mode=rwc"))
}

/// Every service's key and the people's issuer's, from RAPPORT_AUTH_DIR or else `<data_dir>/keys` (generated there
/// on the first run and kept, so that tokens and `rapport token issue` stay good across restarts).
fn authenticator(data_dir: &str) -> anyhow::Result<rapport_kit::auth::Authenticator> {
    use rapport_kit::auth::{self, DevelopmentKeys, keys::files};
    let mut settings = auth::Settings::from_env().map_err(anyhow::Error::msg)?;
    if settings.dir.is_none() && settings.services_jwks.is_none() {
        let dir = Path::new(data_dir).join("keys");
        if !dir.join(files::SERVICES_JWKS).exists() {
            DevelopmentKeys::generate().write(&dir).map_err(anyhow::Error::msg)?;
        }
        settings.dir = Some(dir);
    }
    let (auth, _) = auth::from_settings(settings, None, true).map_err(anyhow::Error::msg)?;
    Ok(auth)
}

/// Runs the suite until Ctrl-C / SIGTERM.
pub async fn run(args: UpArgs) -> anyhow::Result<()> {
    // One process, five services: each span under its own service's name.
    let _telemetry =
        rapport_telemetry::init_suite("rapport", &["segmentation", "loyalty", "referrals", "feedback", "improvement"])?;
    std::fs::create_dir_all(&args.data_dir).with_context(|| format!("creating {}", args.data_dir))?;
    let auth = Arc::new(authenticator(&args.data_dir)?);
    tokio::spawn(auth.clone().watch(rapport_kit::auth::reload_interval_from_env()?));
    let spinner = ProgressBar::new_spinner().with_style(ProgressStyle::with_template("{spinner} {msg}")?);
    spinner.enable_steady_tick(std::time::Duration::from_millis(100));
    // Base port 0: every service on any free port (tests); otherwise consecutive ports.
    let port = |offset: u16| if args.base_port == 0 { 0 } else { args.base_port + offset };
    let seg_addr = SocketAddr::from(([127, 0, 0, 1], port(0)));
    let loyalty_addr = SocketAddr::from(([127, 0, 0, 1], port(1)));
    let referrals_addr = SocketAddr::from(([127, 0, 0, 1], port(2)));
    let feedback_addr = SocketAddr::from(([127, 0, 0, 1], port(3)));
    let improvement_addr = SocketAddr::from(([127, 0, 0, 1], port(4)));

    spinner.set_message("segmentation: migrating the database");
    let mut seg_cfg = rapport_segmentation::app::Config::from_env()?;
    if let Some(tls) = &seg_cfg.common.serve.tls {
        // Mutual TLS between the services here too, if asked: one process, one certificate.
        rapport_kit::tls::set_client(tls.clone());
    }
    seg_cfg.common.listen = seg_addr;
    seg_cfg.common.database_url = sqlite(&args.data_dir, "segmentation").into();
    let mut segmentation =
        rapport_segmentation::app::Segmentation::build(seg_cfg, auth.clone(), Arc::new(SystemClock)).await?;

    // Referrals before feedback and loyalty, which deliver their events to it; it pays through loyalty, built last.
    spinner.set_message("referrals: migrating the database");
    let mut referrals_cfg = rapport_referrals::app::Config::from_env()?;
    referrals_cfg.common.listen = referrals_addr;
    referrals_cfg.common.database_url = sqlite(&args.data_dir, "referrals").into();
    referrals_cfg.set_subscriber_url("segmentation", Some(format!("http://{}", segmentation.addr())));
    let mut referrals =
        rapport_referrals::app::Referrals::build(referrals_cfg, auth.clone(), Arc::new(SystemClock)).await?;

    // Improvement before feedback, which delivers its theme signals to it; it tells feedback what ships.
    spinner.set_message("improvement: migrating the database");
    let mut improvement_cfg = rapport_improvement::app::Config::from_env()?;
    improvement_cfg.common.listen = improvement_addr;
    improvement_cfg.common.database_url = sqlite(&args.data_dir, "improvement").into();
    improvement_cfg.segmentation_url = Some(format!("http://{}", segmentation.addr()));
    let mut improvement =
        rapport_improvement::app::Improvement::build(improvement_cfg, auth.clone(), Arc::new(SystemClock)).await?;

    spinner.set_message("feedback: migrating the database");
    let mut feedback_cfg = rapport_feedback::app::Config::from_env()?;
    feedback_cfg.common.listen = feedback_addr;
    feedback_cfg.common.database_url = sqlite(&args.data_dir, "feedback").into();
    feedback_cfg.set_subscriber_url("segmentation", Some(format!("http://{}", segmentation.addr())));
    feedback_cfg.set_subscriber_url("referrals", Some(format!("http://{}", referrals.addr())));
    feedback_cfg.set_subscriber_url("improvement", Some(format!("http://{}", improvement.addr())));
    let mut feedback =
        rapport_feedback::app::Feedback::build(feedback_cfg, auth.clone(), Arc::new(SystemClock)).await?;
    segmentation.set_subscriber_url("feedback", format!("http://{}", feedback.addr()));
    improvement.set_subscriber_url("feedback", format!("http://{}", feedback.addr()));

    spinner.set_message("loyalty: migrating the database");
    let mut loyalty_cfg = rapport_loyalty::app::Config::from_env()?;
    loyalty_cfg.common.listen = loyalty_addr;
    loyalty_cfg.common.database_url = sqlite(&args.data_dir, "loyalty").into();
    loyalty_cfg.set_subscriber_url("segmentation", Some(format!("http://{}", segmentation.addr())));
    loyalty_cfg.set_subscriber_url("feedback", Some(format!("http://{}", feedback.addr())));
    loyalty_cfg.set_subscriber_url("referrals", Some(format!("http://{}", referrals.addr())));
    let loyalty = rapport_loyalty::app::Loyalty::build(loyalty_cfg, auth.clone(), Arc::new(SystemClock)).await?;
    segmentation.set_loyalty_url(format!("http://{}", loyalty.addr()));
    feedback.set_loyalty_url(format!("http://{}", loyalty.addr()));
    referrals.set_loyalty_url(format!("http://{}", loyalty.addr()));

    spinner.finish_and_clear();

    // A development token when the people's issuer's key is at hand (it is in a development key folder).
    let token = auth.issue("developer", Role::Sre, 12 * 3600).ok();
    if let Some(token) = &token {
        write_token(&args.data_dir, token)?;
    }
    let mut t = output::table(&["service", "address", "database"]);
    t.add_row(vec![
        "segmentation".to_string(),
        format!("http://{}", segmentation.addr()),
        format!("{}/segmentation.db", args.data_dir),
    ]);
    t.add_row(vec![
        "loyalty".to_string(),
        format!("http://{}", loyalty.addr()),
        format!("{}/loyalty.db", args.data_dir),
    ]);
    t.add_row(vec![
        "referrals".to_string(),
        format!("http://{}", referrals.addr()),
        format!("{}/referrals.db", args.data_dir),
    ]);
    t.add_row(vec![
        "feedback".to_string(),
        format!("http://{}", feedback.addr()),
        format!("{}/feedback.db", args.data_dir),
    ]);
    t.add_row(vec![
        "improvement".to_string(),
        format!("http://{}", improvement.addr()),
        format!("{}/improvement.db", args.data_dir),
    ]);
    println!("{t}");
    if let Some(token) = token {
        println!("development token (role sre, 12 h), also in {}:", token_path(&args.data_dir).display());
        println!("{token}");
        println!("more: rapport token issue --role marketing --ttl 8h --subject pat");
    }
    println!("try: rapport gen --customers 2000 && rapport segments train --wait && rapport segments model");

    let (stop_tx, stop_rx) = watch::channel(false);
    let stop = move || {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    };
    tokio::spawn(async move {
        shutdown_signal().await;
        let _ = stop_tx.send(true);
    });
    let (a, b, c, d, e) = tokio::join!(
        segmentation.run(stop()),
        loyalty.run(stop()),
        referrals.run(stop()),
        feedback.run(stop()),
        improvement.run(stop())
    );
    a?;
    b?;
    c?;
    d?;
    e?;
    Ok(())
}

fn write_token(data_dir: &str, token: &str) -> anyhow::Result<()> {
    let path = token_path(data_dir);
    std::fs::write(&path, token).with_context(|| format!("writing {}", path.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(())
}
